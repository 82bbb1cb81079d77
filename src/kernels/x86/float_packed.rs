//! Packed GEMM tiles for the float weight types (F16, BF16, F32), n > 1: each call widens its
//! tokens' activations to f32 once and repacks its weight rows, `R·N` at a time, to f32 with
//! one vector holding `N` rows at one position of k (`N` = 16 in zmm, 8 in ymm). A step of k
//! is then `R` weight loads and `C` activation broadcasts for `R·C` FMAs, with no widening in
//! the loop and no horizontal sums (the float tiles of `float_tile.rs` widen `R + C` vectors
//! per `R·C` FMAs and sum lanes at the end).
//!
//! The widened activations are laid out in panels of `C` tokens, and within a panel in blocks
//! of [`KB`] steps of k with each token's `KB` values together: a micro-tile reads one
//! sequential stream, every broadcast at a fixed offset from one pointer (with one row pointer
//! per token, the compiler ran out of registers and spilled them in the inner loop).
//!
//! Numerics: products are exact in f32; each lane sums [`KB`] consecutive products in order,
//! then adds that partial sum to the total: at most `KB + ⌈k / KB⌉` additions deep, within the
//! bound the tests allow (`⌈k / 4⌉ + 8`) for every k. Padding (k to a multiple of `KB`, tokens
//! to a whole panel) only adds zero products.
//!
//! # Safety (all bodies)
//! The caller must hold AVX2, FMA, F16C, and for [`Zmm`](super::float_tile::Zmm) AVX-512 F.

// Register tiles are indexed `[r][c]` in nested loops, which read better than zipped iterators.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::cell::Cell;

use super::float_tile::{Elem, Lanes, Ymm};

/// Steps of k summed per partial sum, and the k-block of the activation panels.
const KB: usize = 16;
/// Steps of k packed at once: a band of 32 rows × 2048 f32 is 256 KiB, which stays in L2
/// while the tokens stream past; the k-chunks' results are added in `out`. A multiple of KB.
const KC: usize = 2048;
/// Tokens widened at once, at most (bounds the activation buffer).
const TOKEN_CHUNK: usize = 512;
/// Bytes of widened activations per token chunk, at most: every band of rows streams the
/// whole chunk again, so it must stay in the last-level cache (32 MiB on Zen 4, shared with
/// the weights). 512 tokens × 4096 f32 = 8 MiB stays; 512 × 11008 = 22 MiB did not, and
/// F16 n = 512 at k = 11008 ran at half the speed of k = 4096.
const ACT_CHUNK_BYTES: usize = 8 << 20;

thread_local! {
    /// Per-thread buffer (packed weights, widened activations), reused across calls.
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Tokens of the narrow micro-tile, which serves a last panel of at most this many real
/// tokens (a full-width tile there would multiply mostly padding).
const NARROW: usize = 4;

/// `R` packed row groups × the first `C` tokens of a panel `PC` tokens wide over `kblocks`
/// blocks of [`KB`] steps of k: group `r` holds `kblocks·KB × N` f32 at
/// `packed + r·group_stride`, the panel `kblocks × PC × KB` f32 at `panel`.
#[inline(always)]
unsafe fn micro<L: Lanes, const R: usize, const C: usize, const PC: usize>(
    kblocks: usize,
    packed: *const f32,
    group_stride: usize,
    panel: *const f32,
) -> [[L::V; C]; R] {
    // SAFETY: the groups and the panel hold what the doc says (caller).
    unsafe {
        let mut total = [[L::zero(); C]; R];
        for b in 0..kblocks {
            let wb = packed.add(b * KB * L::N);
            let ab = panel.add(b * PC * KB);
            let mut part = [[L::zero(); C]; R];
            for j in 0..KB {
                let w: [L::V; R] =
                    std::array::from_fn(|r| L::f32(wb.add(r * group_stride + j * L::N).cast()));
                for c in 0..C {
                    let a = L::splat(*ab.add(c * KB + j));
                    for r in 0..R {
                        part[r][c] = L::fma(w[r], a, part[r][c]);
                    }
                }
            }
            for r in 0..R {
                for c in 0..C {
                    total[r][c] = L::add(total[r][c], part[r][c]);
                }
            }
        }
        total
    }
}

/// The micro-tile of panel `panel` (its first `width` tokens real, the first at `col`),
/// written to `out` (the band's first `valid` rows), or added to it (`add`: a later k-chunk).
/// Row-major (`TOKEN_MAJOR` false): row `i` of the band, token `t` at `out[i·out_stride + t]`;
/// token-major: at `out[t·out_stride + i]`, where each vector (N rows of one token) is one
/// store.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn run<L: Lanes, const R: usize, const C: usize, const TOKEN_MAJOR: bool>(
    kblocks: usize,
    packed: *const f32,
    group_stride: usize,
    panel: *const f32,
    width: usize,
    valid: usize,
    out: &mut [f32],
    out_stride: usize,
    col: usize,
    add: bool,
) {
    if C > NARROW && width <= NARROW {
        // SAFETY: forwarded (the packed rows and the panel exist).
        // The caller holds the features of `L` (store's contract).
        unsafe {
            let res = micro::<L, R, NARROW, C>(kblocks, packed, group_stride, panel);
            store::<L, R, NARROW, TOKEN_MAJOR>(&res, width, valid, out, out_stride, col, add);
        }
    } else {
        // SAFETY: as above.
        unsafe {
            let res = micro::<L, R, C, C>(kblocks, packed, group_stride, panel);
            store::<L, R, C, TOKEN_MAJOR>(&res, width, valid, out, out_stride, col, add);
        }
    }
}

/// Writes (or adds, `add`) a micro-tile's first `width` tokens and `valid` rows as [`run`]
/// says.
///
/// # Safety
/// The caller holds the features of `L`.
#[inline(always)]
unsafe fn store<L: Lanes, const R: usize, const C: usize, const TOKEN_MAJOR: bool>(
    res: &[[L::V; C]; R],
    width: usize,
    valid: usize,
    out: &mut [f32],
    out_stride: usize,
    col: usize,
    add: bool,
) {
    let mut lanes = [0f32; 16];
    if TOKEN_MAJOR {
        for c in 0..width {
            let token = &mut out[(col + c) * out_stride..];
            for (r, row) in res.iter().enumerate() {
                let first = r * L::N;
                if first >= valid {
                    break;
                }
                let cells = &mut token[first..first + L::N.min(valid - first)];
                if cells.len() == L::N {
                    let at = cells.as_mut_ptr();
                    // SAFETY: `cells` holds the N f32 loaded and stored; the caller holds
                    // the features of `L`.
                    unsafe {
                        let v = if add {
                            L::add(L::f32(at.cast_const().cast()), row[c])
                        } else {
                            row[c]
                        };
                        L::store(v, at);
                    }
                } else {
                    // SAFETY: `lanes` holds 16 ≥ N f32.
                    unsafe { L::store(row[c], lanes.as_mut_ptr()) };
                    for (cell, &x) in cells.iter_mut().zip(&lanes) {
                        *cell = if add { *cell + x } else { x };
                    }
                }
            }
        }
        return;
    }
    for (r, row) in res.iter().enumerate() {
        for (c, &v) in row.iter().enumerate().take(width) {
            // SAFETY: `lanes` holds 16 ≥ N f32.
            unsafe { L::store(v, lanes.as_mut_ptr()) };
            for (i, &x) in lanes[..L::N].iter().enumerate() {
                let row_in = r * L::N + i;
                if row_in < valid {
                    let cell = &mut out[row_in * out_stride + col + c];
                    *cell = if add { *cell + x } else { x };
                }
            }
        }
    }
}

/// Packs `valid` weight rows (`klen` elements each, `w_stride` bytes apart from `w`) as `R`
/// groups of `N` rows: group g, position kk, lane i at `packed[g·group_stride + kk·N + i]`,
/// widened to f32; rows past `valid` and positions from `klen` to `group_stride / N` are 0.
/// Whole 8 × 8 blocks go through a register transpose (a scalar scatter here cost a tenth of
/// a CLIP encode).
///
/// # Safety
/// As [`gemm`]'s; `packed` holds `R·group_stride` f32.
#[inline(always)]
unsafe fn pack_band<L: Lanes, E: Elem, const R: usize>(
    w: *const u8,
    w_stride: usize,
    valid: usize,
    klen: usize,
    group_stride: usize,
    packed: *mut f32,
) {
    let whole = klen / 8 * 8;
    let padded = group_stride / L::N;
    // SAFETY: reads stay within the `valid` rows' `klen` elements, writes within the groups.
    unsafe {
        for g in 0..R {
            let group = packed.add(g * group_stride);
            for i0 in (0..L::N).step_by(8) {
                let first = g * L::N + i0;
                let mut kk = 0;
                while kk < whole {
                    let rows: [__m256; 8] = std::array::from_fn(|i| {
                        if first + i < valid {
                            E::load::<Ymm>(w.add((first + i) * w_stride + kk * E::BYTES))
                        } else {
                            _mm256_setzero_ps()
                        }
                    });
                    let cols = transpose8(rows);
                    for (j, &col) in cols.iter().enumerate() {
                        _mm256_storeu_ps(group.add((kk + j) * L::N + i0), col);
                    }
                    kk += 8;
                }
                for kk in whole..padded {
                    for i in 0..8 {
                        let row = first + i;
                        *group.add(kk * L::N + i0 + i) = if row < valid && kk < klen {
                            E::read(w.add(row * w_stride + kk * E::BYTES))
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// The 8 × 8 transpose: lane j of `rows[i]` becomes lane i of the result's vector j.
///
/// # Safety
/// The caller holds AVX.
#[inline(always)]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    // SAFETY: register-only (AVX held by the caller).
    unsafe {
        // Pairs of rows interleaved: (r0 r1) lanes 0 1 4 5 and 2 3 6 7, and so on.
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        // Quads of rows: columns (0, 4), (1, 5), (2, 6), (3, 7) of rows 0-3 and 4-7.
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        // Low 128-bit halves give columns 0-3, high halves columns 4-7.
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }
}

/// [`gemm_into`] writing `Yᵀ` (`out[r * out_stride + c]`).
///
/// # Safety
/// As [`gemm_into`]'s.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn gemm<L: Lanes, E: Elem, const R: usize, const C: usize>(
    k: usize,
    w: *const u8,
    w_stride: usize,
    rows: usize,
    a: *const u8,
    a_stride: usize,
    cols: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        gemm_into::<L, E, R, C, false>(k, w, w_stride, rows, a, a_stride, cols, out, out_stride)
    }
}

/// [`gemm_into`] writing `Y` (`out[c * out_stride + r]`).
///
/// # Safety
/// As [`gemm_into`]'s.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn gemm_token_major<L: Lanes, E: Elem, const R: usize, const C: usize>(
    k: usize,
    w: *const u8,
    w_stride: usize,
    rows: usize,
    a: *const u8,
    a_stride: usize,
    cols: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    // SAFETY: forwarded contract.
    unsafe {
        gemm_into::<L, E, R, C, true>(k, w, w_stride, rows, a, a_stride, cols, out, out_stride)
    }
}

/// The packed float tile: `out[r * out_stride + c] = dot(w row r, a row c)` (`TOKEN_MAJOR`:
/// `out[c * out_stride + r]`, the layout of `Y = X·Wᵀ` itself), `k` elements of `E` each;
/// register tile `R` groups of `N` rows × `C` tokens.
///
/// # Safety
/// `rows` rows of `k` elements at `w` (stride `w_stride` bytes), `cols` at `a`; `out` holds
/// the tile; the caller holds the features of `L`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn gemm_into<
    L: Lanes,
    E: Elem,
    const R: usize,
    const C: usize,
    const TOKEN_MAJOR: bool,
>(
    k: usize,
    w: *const u8,
    w_stride: usize,
    rows: usize,
    a: *const u8,
    a_stride: usize,
    cols: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let band = R * L::N;
    let fits = (ACT_CHUNK_BYTES / (4 * k.max(1))) / C * C;
    let chunk = fits.clamp(C, TOKEN_CHUNK).min(cols);
    let kblocks = k.div_ceil(KB);
    // One panel: every k-block of C tokens.
    let panel_len = kblocks * C * KB;
    let max_panels = chunk.div_ceil(C);
    // Out of the thread-local and back after: the work must not run in a closure, which would
    // not inherit this function's target features.
    let mut scratch = SCRATCH.with(|cell| cell.take());
    let packed_len = band * KC;
    let need = packed_len + max_panels * panel_len;
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    let (packed, acts) = scratch.split_at_mut(packed_len);
    let mut t0 = 0;
    while t0 < cols {
        let tc = chunk.min(cols - t0);
        let panels = tc.div_ceil(C);
        // Tokens missing from the last panel read as 0 (zeroing only them: a fill of the
        // whole buffer cost 5% of a CLIP encode).
        let last = &mut acts[(panels - 1) * panel_len..panels * panel_len];
        for c in tc - (panels - 1) * C..C {
            for b in 0..kblocks {
                last[(b * C + c) * KB..][..KB].fill(0.0);
            }
        }
        for t in 0..tc {
            let src = a.wrapping_add((t0 + t) * a_stride);
            let (p, c) = (t / C, t % C);
            let dst = &mut acts[p * panel_len..(p + 1) * panel_len];
            let whole = k / KB;
            // SAFETY: token t0 + t has `k` elements at `src` (caller); `dst` holds the panel,
            // and block b of token c is dst[(b·C + c)·KB ..][..KB].
            unsafe {
                for b in 0..whole {
                    let out = dst.as_mut_ptr().add((b * C + c) * KB);
                    let mut j = 0;
                    while j < KB {
                        L::store(E::load::<L>(src.add((b * KB + j) * E::BYTES)), out.add(j));
                        j += L::N;
                    }
                }
                // The last block, partial: its positions from k on read as 0.
                for kk in whole * KB..kblocks * KB {
                    dst[(whole * C + c) * KB + kk - whole * KB] = if kk < k {
                        E::read(src.add(kk * E::BYTES))
                    } else {
                        0.0
                    };
                }
            }
        }
        let mut r0 = 0;
        while r0 < rows {
            let valid = band.min(rows - r0);
            let o = if TOKEN_MAJOR {
                &mut out[r0..]
            } else {
                &mut out[r0 * out_stride..]
            };
            let mut k0 = 0;
            while k0 < k {
                let klen = KC.min(k - k0);
                let kb_chunk = klen.div_ceil(KB);
                let group_stride = kb_chunk * KB * L::N;
                // SAFETY: rows r0..r0 + valid have `k` elements at `w + row·w_stride`; the
                // groups fit in `packed` (R·group_stride ≤ band·KC).
                unsafe {
                    pack_band::<L, E, R>(
                        w.wrapping_add(r0 * w_stride + k0 * E::BYTES),
                        w_stride,
                        valid,
                        klen,
                        group_stride,
                        packed.as_mut_ptr(),
                    )
                };
                let pp = packed.as_ptr();
                let add = k0 > 0;
                for p in 0..panels {
                    let panel = acts[p * panel_len + (k0 / KB) * C * KB..].as_ptr();
                    let width = C.min(tc - p * C);
                    // SAFETY: the band is packed and the panel widened above; `kb_chunk`
                    // blocks from k0 / KB lie within the panel's `kblocks`.
                    unsafe {
                        run::<L, R, C, TOKEN_MAJOR>(
                            kb_chunk,
                            pp,
                            group_stride,
                            panel,
                            width,
                            valid,
                            o,
                            out_stride,
                            t0 + p * C,
                            add,
                        )
                    };
                }
                k0 += klen;
            }
            r0 += band;
        }
        t0 += tc;
    }
    SCRATCH.with(|cell| cell.replace(scratch));
}
