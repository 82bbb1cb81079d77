//! GEMM tiles for the float weight types (F16, BF16, F32, each paired with activations of its
//! own type): `R` weight rows × `C` activation rows held as `R·C` vector accumulators. Each
//! step widens `C` activation vectors and `R` weight vectors to f32 once and does `R·C` FMAs,
//! so a weight vector is converted once per tile instead of once per token (the dot-by-dot
//! fallback converted and re-read everything for every (row, token) pair).
//!
//! Generic over the vector width ([`Lanes`]: 8 lanes in ymm for the AVX2 tier, 16 in zmm for
//! the AVX-512 tier) and the element type ([`Elem`]). Numerics: the products are exact in f32
//! (f16/bf16 widen exactly), each accumulator lane sums `k / lanes` of them in sequence, the
//! lanes are summed, then the `k mod lanes` tail in order: a different association from the
//! dot kernels but within the same rounding bound (`tests/kernels_tiers.rs`), and exact where
//! every partial sum is.
//!
//! # Safety (all bodies)
//! `w[r]` and `a[c]` must each point to `n` readable elements of the element type; the caller
//! must hold AVX2, FMA, F16C, and for [`Zmm`] AVX-512 F.

use std::arch::x86_64::*;

use super::common::{hsum_ps, load128, load256, read_f16, read_f32, read_u16};
use super::tile::TileOut;

/// A float vector width.
pub(super) trait Lanes {
    type V: Copy;
    /// f32 lanes per vector.
    const N: usize;
    unsafe fn zero() -> Self::V;
    /// `a * b + c`, fused.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn hsum(v: Self::V) -> f32;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `x` in every lane.
    unsafe fn splat(x: f32) -> Self::V;
    /// Stores the `N` lanes at `out`.
    unsafe fn store(v: Self::V, out: *mut f32);
    /// `N` f16 at `p`, widened.
    unsafe fn f16(p: *const u8) -> Self::V;
    /// `N` bf16 at `p`, widened (a bf16 is the top half of an f32).
    unsafe fn bf16(p: *const u8) -> Self::V;
    /// `N` f32 at `p`.
    unsafe fn f32(p: *const u8) -> Self::V;
}

/// 8 f32 lanes in a ymm register (AVX2 + FMA + F16C).
pub(super) struct Ymm;

impl Lanes for Ymm {
    type V = __m256;
    const N: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: register-only; the caller holds AVX.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: register-only; the caller holds FMA.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        // SAFETY: register-only; the caller holds AVX.
        unsafe { hsum_ps(v) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        // SAFETY: register-only; the caller holds AVX.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        // SAFETY: register-only; the caller holds AVX.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn store(v: __m256, out: *mut f32) {
        // SAFETY: 8 writable f32 at `out` (caller).
        unsafe { _mm256_storeu_ps(out, v) }
    }
    #[inline(always)]
    unsafe fn f16(p: *const u8) -> __m256 {
        // SAFETY: 16 readable bytes at `p` (caller); F16C held.
        unsafe { _mm256_cvtph_ps(load128(p)) }
    }
    #[inline(always)]
    unsafe fn bf16(p: *const u8) -> __m256 {
        // SAFETY: 16 readable bytes at `p` (caller); AVX2 held.
        unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(load128(p)))) }
    }
    #[inline(always)]
    unsafe fn f32(p: *const u8) -> __m256 {
        // SAFETY: 32 readable bytes at `p` (caller); unaligned load.
        unsafe { _mm256_loadu_ps(p.cast()) }
    }
}

/// 16 f32 lanes in a zmm register (AVX-512 F; the tier has 32 of them).
pub(super) struct Zmm;

impl Lanes for Zmm {
    type V = __m512;
    const N: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: register-only; the caller holds AVX-512 F.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: register-only; the caller holds AVX-512 F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn hsum(v: __m512) -> f32 {
        // SAFETY: register-only; the caller holds AVX-512 F and AVX.
        unsafe {
            let half = _mm256_add_ps(
                _mm512_castps512_ps256(v),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
            );
            hsum_ps(half)
        }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        // SAFETY: register-only; the caller holds AVX-512 F.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        // SAFETY: register-only; the caller holds AVX-512 F.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn store(v: __m512, out: *mut f32) {
        // SAFETY: 16 writable f32 at `out` (caller).
        unsafe { _mm512_storeu_ps(out, v) }
    }
    #[inline(always)]
    unsafe fn f16(p: *const u8) -> __m512 {
        // SAFETY: 32 readable bytes at `p` (caller); AVX-512 F held.
        unsafe { _mm512_cvtph_ps(load256(p)) }
    }
    #[inline(always)]
    unsafe fn bf16(p: *const u8) -> __m512 {
        // SAFETY: 32 readable bytes at `p` (caller); AVX-512 F held.
        unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(load256(p)))) }
    }
    #[inline(always)]
    unsafe fn f32(p: *const u8) -> __m512 {
        // SAFETY: 64 readable bytes at `p` (caller); unaligned load.
        unsafe { _mm512_loadu_ps(p.cast()) }
    }
}

/// A float element type of weights and activations alike.
pub(super) trait Elem {
    const BYTES: usize;
    /// `L::N` elements at `p`, widened.
    unsafe fn load<L: Lanes>(p: *const u8) -> L::V;
    /// One element at `p`, widened.
    unsafe fn read(p: *const u8) -> f32;
}

pub(super) struct F16;
pub(super) struct Bf16;
pub(super) struct F32;

impl Elem for F16 {
    const BYTES: usize = 2;
    #[inline(always)]
    unsafe fn load<L: Lanes>(p: *const u8) -> L::V {
        // SAFETY: forwarded (caller).
        unsafe { L::f16(p) }
    }
    #[inline(always)]
    unsafe fn read(p: *const u8) -> f32 {
        // SAFETY: forwarded (caller).
        unsafe { read_f16(p) }
    }
}

impl Elem for Bf16 {
    const BYTES: usize = 2;
    #[inline(always)]
    unsafe fn load<L: Lanes>(p: *const u8) -> L::V {
        // SAFETY: forwarded (caller).
        unsafe { L::bf16(p) }
    }
    #[inline(always)]
    unsafe fn read(p: *const u8) -> f32 {
        // SAFETY: forwarded (caller).
        f32::from_bits(u32::from(unsafe { read_u16(p) }) << 16)
    }
}

impl Elem for F32 {
    const BYTES: usize = 4;
    #[inline(always)]
    unsafe fn load<L: Lanes>(p: *const u8) -> L::V {
        // SAFETY: forwarded (caller).
        unsafe { L::f32(p) }
    }
    #[inline(always)]
    unsafe fn read(p: *const u8) -> f32 {
        // SAFETY: forwarded (caller).
        unsafe { read_f32(p) }
    }
}

/// One `R × C` tile over `n` elements.
#[inline(always)]
unsafe fn tile<L: Lanes, E: Elem, const R: usize, const C: usize>(
    n: usize,
    w: [*const u8; R],
    a: [*const u8; C],
) -> TileOut<R, C> {
    // SAFETY: see the module's contract; every access is below element `n`.
    unsafe {
        let mut acc = [[L::zero(); C]; R];
        let mut at = 0;
        while at + L::N <= n {
            let mut x = [L::zero(); C];
            for c in 0..C {
                x[c] = E::load::<L>(a[c].add(E::BYTES * at));
            }
            for r in 0..R {
                let v = E::load::<L>(w[r].add(E::BYTES * at));
                for c in 0..C {
                    acc[r][c] = L::fma(v, x[c], acc[r][c]);
                }
            }
            at += L::N;
        }
        let mut out = [[0.0; C]; R];
        for r in 0..R {
            for c in 0..C {
                let mut sum = L::hsum(acc[r][c]);
                for i in at..n {
                    sum += E::read(w[r].add(E::BYTES * i)) * E::read(a[c].add(E::BYTES * i));
                }
                out[r][c] = sum;
            }
        }
        out
    }
}

/// An `H × W` tile at weight row `r`, activation row `c`, written to `out`.
///
/// # Safety
/// Rows `r..r + H` of `w` and `c..c + W` of `a` exist (`n` elements each); `out` holds the
/// tile's cells (checked by the slice indexing).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn place<L: Lanes, E: Elem, const H: usize, const W: usize>(
    n: usize,
    w: *const u8,
    w_stride: usize,
    r: usize,
    a: *const u8,
    a_stride: usize,
    c: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    // SAFETY: the rows exist (caller), so each pointer has `n` elements behind it.
    let t = unsafe {
        let wp: [*const u8; H] = std::array::from_fn(|k| w.add((r + k) * w_stride));
        let ap: [*const u8; W] = std::array::from_fn(|k| a.add((c + k) * a_stride));
        tile::<L, E, H, W>(n, wp, ap)
    };
    for (k, row) in t.iter().enumerate() {
        out[(r + k) * out_stride + c..][..W].copy_from_slice(row);
    }
}

/// The tiles of `H` rows across `cols` activation rows: full `H × C` tiles, then one
/// `H × (cols mod C)` tile (C ≤ 6), so the leftover tokens still share each weight vector.
///
/// # Safety
/// As [`place`], for rows `r..r + H` and activation rows `0..cols`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn row_band<L: Lanes, E: Elem, const H: usize, const C: usize>(
    n: usize,
    w: *const u8,
    w_stride: usize,
    r: usize,
    a: *const u8,
    a_stride: usize,
    cols: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    const { assert!(C >= 1 && C <= 6) };
    let full = cols / C * C;
    // SAFETY (both blocks): the tiles lie within rows r..r + H and activation rows 0..cols.
    let mut c = 0;
    while c < full {
        unsafe { place::<L, E, H, C>(n, w, w_stride, r, a, a_stride, c, out, out_stride) };
        c += C;
    }
    unsafe {
        match cols - full {
            0 => {}
            1 => place::<L, E, H, 1>(n, w, w_stride, r, a, a_stride, c, out, out_stride),
            2 => place::<L, E, H, 2>(n, w, w_stride, r, a, a_stride, c, out, out_stride),
            3 => place::<L, E, H, 3>(n, w, w_stride, r, a, a_stride, c, out, out_stride),
            4 => place::<L, E, H, 4>(n, w, w_stride, r, a, a_stride, c, out, out_stride),
            _ => place::<L, E, H, 5>(n, w, w_stride, r, a, a_stride, c, out, out_stride),
        }
    }
}

/// Tiles `rows × cols` with `R × C` tiles; leftover weight rows one at a time (the matmul
/// driver's row tiles are multiples of the tile heights used).
///
/// # Safety
/// `rows` rows of `n` elements at `w` (stride `w_stride` bytes), `cols` at `a`; the caller
/// holds the features of `L`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm<L: Lanes, E: Elem, const R: usize, const C: usize>(
    n: usize,
    w: *const u8,
    w_stride: usize,
    rows: usize,
    a: *const u8,
    a_stride: usize,
    cols: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let full = rows / R * R;
    let mut r = 0;
    // SAFETY (both loops): every band lies within rows 0..rows and activation rows 0..cols.
    while r < full {
        unsafe { row_band::<L, E, R, C>(n, w, w_stride, r, a, a_stride, cols, out, out_stride) };
        r += R;
    }
    while r < rows {
        unsafe { row_band::<L, E, 1, C>(n, w, w_stride, r, a, a_stride, cols, out, out_stride) };
        r += 1;
    }
}
