//! Packed GEMM tiles for the integer weight types (n > 1): each call repacks its weight rows,
//! [`ROW_SUB`] at a time, into a layout where one vector holds `G` weight rows × 4 consecutive
//! quants (`G` = 16 in zmm, 8 in ymm), so a multiply-accumulate of that vector with 4
//! activation bytes broadcast to every lane advances `G` dot products at once: no horizontal
//! sums, no per-pair decoding, and a whole sub-block's integer sum per row in one lane, scaled
//! by the row's sub-block scale with one vector multiply. Every token of the call then streams
//! past the packed rows (in L2), so the repacking (about one weight pass) is shared by all of
//! them; it is not kept (no copy of the model stays resident).
//!
//! Per weight type ([`PackType`]) a block decodes to unsigned quants plus, for the K-quants,
//! integer sub-block scales, a min term `Σ m16 · bsum16` against the Q8_K activation block
//! sums, and `d`/`-dmin`; for the legacy types, an f32 `d` per block of 32 and a weight offset
//! folded in through the activation block sums. Per instruction set ([`Isa`]): AVX-512 VNNI
//! (`vpdpbusd` into i32 lanes, `vpmulld` by the scale) or AVX2 (`vpmaddubsw` summed in i16
//! lanes for as many groups as cannot overflow, then `vpmaddwd` by the scale).
//!
//! Numerics: every sub-block and super-block integer sum is exact; each super-block (K) or
//! block (legacy) adds `cvt(sumi)·(d_w·d_a)` (and the min term) in f32 to a per-pair
//! accumulator, in block order: another association than the dot kernels', within the same
//! rounding bound, and exact on exact inputs.
//!
//! # Safety (all bodies)
//! The caller must hold AVX2, FMA, F16C and the [`Isa`]'s features; pointers as documented on
//! [`gemm`].

// Register tiles are indexed `[r][c]` in nested loops, which read better than zipped iterators.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::cell::Cell;

use super::common::*;

/// Weight rows packed at once: 64 rows of a 4096-wide Q4_K matrix pack to 336 KiB, which stay
/// in L2 while every token of the call streams past them.
const ROW_SUB: usize = 64;

/// A vector instruction set for the packed tiles.
pub(super) trait Isa {
    type V: Copy;
    type F: Copy;
    /// Weight rows per vector (i32 lanes).
    const G: usize;
    /// Products are summed in i16 lanes between flushes (AVX2 `vpmaddubsw`), so a chain of
    /// groups is bounded by [`PackType::I16_CHAIN`].
    const I16: bool;
    /// A sub-block scale as the lane word [`Isa::flush`] multiplies by.
    fn scale_word(s: i32) -> i32;
    unsafe fn zero() -> Self::V;
    /// `G` × 4 bytes at `p`.
    unsafe fn load(p: *const u8) -> Self::V;
    /// The 4 bytes at `p` in every lane.
    unsafe fn splat4(p: *const u8) -> Self::V;
    /// `t` plus the products of unsigned `w` and signed `a` bytes, lane by lane.
    unsafe fn dot4(t: Self::V, w: Self::V, a: Self::V) -> Self::V;
    /// As [`Isa::dot4`] with signed `w` (only on `I16`, with a chain of one).
    unsafe fn dot4_signed(t: Self::V, w: Self::V, a: Self::V) -> Self::V;
    /// `sumi + t · scale` (i32 lanes; `scale` from [`Isa::scale_word`]).
    unsafe fn flush(sumi: Self::V, t: Self::V, scale: Self::V) -> Self::V;
    /// `sumi + t` (a chain of scale one).
    unsafe fn flush_unit(sumi: Self::V, t: Self::V) -> Self::V;
    /// `acc + madd_epi16(a, b)`.
    unsafe fn madd16(acc: Self::V, a: Self::V, b: Self::V) -> Self::V;
    unsafe fn fzero() -> Self::F;
    /// `acc + cvt(i) · (x · y)`.
    unsafe fn acc(acc: Self::F, i: Self::V, x: Self::F, y: Self::F) -> Self::F;
    /// `G` f32 at `p`.
    unsafe fn loadf(p: *const u8) -> Self::F;
    unsafe fn splatf(x: f32) -> Self::F;
    /// Stores the `G` lanes at `out`.
    unsafe fn store(v: Self::F, out: *mut f32);
}

/// AVX-512 VNNI on zmm: 16 rows per vector.
pub(super) struct Zmm512Vnni;

impl Isa for Zmm512Vnni {
    type V = __m512i;
    type F = __m512;
    const G: usize = 16;
    const I16: bool = false;
    fn scale_word(s: i32) -> i32 {
        s
    }
    #[inline(always)]
    unsafe fn zero() -> __m512i {
        // SAFETY: register-only; the caller holds AVX-512 F.
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512i {
        // SAFETY: 64 readable bytes at `p` (caller); unaligned load.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    unsafe fn splat4(p: *const u8) -> __m512i {
        // SAFETY: 4 readable bytes at `p` (caller).
        unsafe { _mm512_set1_epi32(read_u32(p) as i32) }
    }
    #[inline(always)]
    unsafe fn dot4(t: __m512i, w: __m512i, a: __m512i) -> __m512i {
        // SAFETY: register-only; the caller holds AVX-512 VNNI.
        unsafe { _mm512_dpbusd_epi32(t, w, a) }
    }
    #[inline(always)]
    unsafe fn dot4_signed(t: __m512i, w: __m512i, a: __m512i) -> __m512i {
        // SAFETY: as dot4 (never reached: VNNI packs signed weights with an offset).
        unsafe { Self::dot4(t, w, a) }
    }
    #[inline(always)]
    unsafe fn flush(sumi: __m512i, t: __m512i, scale: __m512i) -> __m512i {
        // SAFETY: register-only; the caller holds AVX-512 F.
        unsafe { _mm512_add_epi32(sumi, _mm512_mullo_epi32(t, scale)) }
    }
    #[inline(always)]
    unsafe fn flush_unit(sumi: __m512i, t: __m512i) -> __m512i {
        // SAFETY: register-only; the caller holds AVX-512 F.
        unsafe { _mm512_add_epi32(sumi, t) }
    }
    #[inline(always)]
    unsafe fn madd16(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: register-only; the caller holds AVX-512 VNNI.
        unsafe { _mm512_dpwssd_epi32(acc, a, b) }
    }
    #[inline(always)]
    unsafe fn fzero() -> __m512 {
        // SAFETY: register-only.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn acc(acc: __m512, i: __m512i, x: __m512, y: __m512) -> __m512 {
        // SAFETY: register-only; the caller holds AVX-512 F.
        unsafe { _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(x, y), acc) }
    }
    #[inline(always)]
    unsafe fn loadf(p: *const u8) -> __m512 {
        // SAFETY: 64 readable bytes at `p` (caller).
        unsafe { _mm512_loadu_ps(p.cast()) }
    }
    #[inline(always)]
    unsafe fn splatf(x: f32) -> __m512 {
        // SAFETY: register-only.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn store(v: __m512, out: *mut f32) {
        // SAFETY: 16 writable f32 at `out` (caller).
        unsafe { _mm512_storeu_ps(out, v) }
    }
}

/// AVX2 on ymm: 8 rows per vector, products summed in i16 lanes.
pub(super) struct Ymm256I16;

impl Isa for Ymm256I16 {
    type V = __m256i;
    type F = __m256;
    const G: usize = 8;
    const I16: bool = true;
    fn scale_word(s: i32) -> i32 {
        let half = u32::from(s as i16 as u16);
        (half | (half << 16)) as i32
    }
    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: register-only.
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        // SAFETY: 32 readable bytes at `p` (caller).
        unsafe { load256(p) }
    }
    #[inline(always)]
    unsafe fn splat4(p: *const u8) -> __m256i {
        // SAFETY: 4 readable bytes at `p` (caller).
        unsafe { _mm256_set1_epi32(read_u32(p) as i32) }
    }
    #[inline(always)]
    unsafe fn dot4(t: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // SAFETY: register-only; the caller holds AVX2.
        unsafe { _mm256_add_epi16(t, _mm256_maddubs_epi16(w, a)) }
    }
    #[inline(always)]
    unsafe fn dot4_signed(t: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // SAFETY: register-only; the caller holds AVX2.
        unsafe {
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
            _mm256_add_epi16(t, p)
        }
    }
    #[inline(always)]
    unsafe fn flush(sumi: __m256i, t: __m256i, scale: __m256i) -> __m256i {
        // SAFETY: register-only; the caller holds AVX2.
        unsafe { _mm256_add_epi32(sumi, _mm256_madd_epi16(t, scale)) }
    }
    #[inline(always)]
    unsafe fn flush_unit(sumi: __m256i, t: __m256i) -> __m256i {
        // SAFETY: register-only; the caller holds AVX2.
        unsafe { _mm256_add_epi32(sumi, _mm256_madd_epi16(t, _mm256_set1_epi16(1))) }
    }
    #[inline(always)]
    unsafe fn madd16(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only; the caller holds AVX2.
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)) }
    }
    #[inline(always)]
    unsafe fn fzero() -> __m256 {
        // SAFETY: register-only.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn acc(acc: __m256, i: __m256i, x: __m256, y: __m256) -> __m256 {
        // SAFETY: register-only; the caller holds AVX + FMA.
        unsafe { _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(x, y), acc) }
    }
    #[inline(always)]
    unsafe fn loadf(p: *const u8) -> __m256 {
        // SAFETY: 32 readable bytes at `p` (caller).
        unsafe { _mm256_loadu_ps(p.cast()) }
    }
    #[inline(always)]
    unsafe fn splatf(x: f32) -> __m256 {
        // SAFETY: register-only.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn store(v: __m256, out: *mut f32) {
        // SAFETY: 8 writable f32 at `out` (caller).
        unsafe { _mm256_storeu_ps(out, v) }
    }
}

/// One block of a weight type, decoded for packing.
pub(super) struct Decoded {
    /// Unsigned quants in element order (the first `SB` used).
    pub q: [u8; 256],
    /// Integer scale per sub-block (K-quants).
    pub scales: [i32; 16],
    /// Min per 16 elements, against the Q8_K `bsums` (K-quants).
    pub mins: [i32; 16],
    pub d: f32,
    /// `-dmin` (K-quants): the min term's factor.
    pub neg_dmin: f32,
}

impl Decoded {
    /// All zeros: the buffer a packing loop decodes each block into.
    pub(super) const EMPTY: Decoded = Decoded {
        q: [0; 256],
        scales: [0; 16],
        mins: [0; 16],
        d: 0.0,
        neg_dmin: 0.0,
    };
}

/// A weight type the packed tiles serve.
pub(super) trait PackType {
    /// Elements per block (256 for the K-quants, 32 for the legacy types).
    const SB: usize;
    const W_BYTES: usize;
    const A_BYTES: usize;
    /// K-quant (Q8_K activations, integer sub-block scales, min term) or legacy (Q8_0).
    const KQUANT: bool;
    /// Groups of 4 quants per scale sub-block (K-quants; `SB / 4` for legacy).
    const SUBG: usize;
    /// Groups whose `vpmaddubsw` pair sums may be added in i16 without overflow:
    /// `2·CHAIN·max(q)·128 < 2^15`.
    const I16_CHAIN: usize;
    /// Legacy: the value subtracted from each stored quant (folded in as `-OFFSET·Σa`).
    const OFFSET: i32;
    /// Legacy: signed stored quants (Q8_0): kept signed on `I16` (with `OFFSET` 0),
    /// shifted by 128 to unsigned elsewhere.
    const SIGNED: bool;
    /// Decodes the block at `wb`; `keep_signed`: leave signed quants as they are.
    unsafe fn decode(wb: *const u8, keep_signed: bool, out: &mut Decoded);
    /// As [`pack_group`], from the type's layout of 8 rows per block (`crate::kernels::repack`):
    /// `count` (≤ G, a multiple of 8) rows at `w`, groups of 8 rows `8 · w_stride` apart
    /// (`w_stride` = `W_BYTES` · `nb`), into the same records. Only the types with such a
    /// layout (Q4_K, Q6_K, Q8_0) are ever asked.
    #[inline(always)]
    unsafe fn pack_x8<I: Isa>(
        nb: usize,
        w: *const u8,
        w_stride: usize,
        count: usize,
        out: *mut u8,
    ) {
        let _ = (nb, w, w_stride, count, out);
        unreachable!("no layout of 8 rows per block");
    }
}

/// Stores 32 bytes at `out[at..]`.
#[inline(always)]
unsafe fn put32(out: &mut [u8; 256], at: usize, v: __m256i) {
    debug_assert!(at + 32 <= 256);
    // SAFETY: at + 32 ≤ 256 (callers store whole 32-byte groups of a 256-byte block).
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(at).cast(), v) }
}

/// The 8 scales (bytes 0..8) and 8 mins (8..16) of a Q4_K/Q5_K block's 12 packed bytes.
#[inline(always)]
unsafe fn k4_scales_mins(p: *const u8, out: &mut Decoded) {
    // SAFETY: 12 readable bytes (caller).
    let sm = unsafe { super::dot::k4_scales_mins(p) };
    let mut b = [0u8; 16];
    // SAFETY: 16 writable bytes.
    unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), sm) };
    for j in 0..8 {
        out.scales[j] = i32::from(b[j]);
        out.mins[2 * j] = i32::from(b[8 + j]);
        out.mins[2 * j + 1] = i32::from(b[8 + j]);
    }
}

pub(super) struct Q4K;
pub(super) struct Q5K;
pub(super) struct Q6K;
pub(super) struct Q4_0;
pub(super) struct Q5_0;
pub(super) struct Q8_0;

impl PackType for Q4K {
    const SB: usize = 256;
    const W_BYTES: usize = 144;
    const A_BYTES: usize = 292;
    const KQUANT: bool = true;
    const SUBG: usize = 8;
    const I16_CHAIN: usize = 8;
    const OFFSET: i32 = 0;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn decode(wb: *const u8, _: bool, out: &mut Decoded) {
        // SAFETY: a whole Q4_K block at `wb` (caller).
        unsafe {
            let m4 = _mm256_set1_epi8(0x0f);
            for j in 0..4 {
                let bits = load256(wb.add(16 + 32 * j));
                put32(&mut out.q, 64 * j, _mm256_and_si256(bits, m4));
                put32(
                    &mut out.q,
                    64 * j + 32,
                    _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4),
                );
            }
            k4_scales_mins(wb.add(4), out);
            out.d = read_f16(wb);
            out.neg_dmin = -read_f16(wb.add(2));
        }
    }
    #[inline(always)]
    unsafe fn pack_x8<I: Isa>(
        nb: usize,
        w: *const u8,
        w_stride: usize,
        count: usize,
        out: *mut u8,
    ) {
        // SAFETY: forwarded contract.
        unsafe { pack_group_q4_k_x8::<I>(nb, w, w_stride, count, out) }
    }
}

impl PackType for Q5K {
    const SB: usize = 256;
    const W_BYTES: usize = 176;
    const A_BYTES: usize = 292;
    const KQUANT: bool = true;
    const SUBG: usize = 8;
    const I16_CHAIN: usize = 4;
    const OFFSET: i32 = 0;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn decode(wb: *const u8, _: bool, out: &mut Decoded) {
        // SAFETY: a whole Q5_K block at `wb` (caller).
        unsafe {
            let m4 = _mm256_set1_epi8(0x0f);
            let b4 = _mm256_set1_epi8(0x10);
            let mut hbits = load256(wb.add(16));
            for j in 0..4 {
                let bits = load256(wb.add(48 + 32 * j));
                // Bits 0 and 1 of `hbits` are the fifth bits of sub-blocks 2j and 2j + 1.
                let h0 = _mm256_and_si256(_mm256_slli_epi16::<4>(hbits), b4);
                let h1 = _mm256_and_si256(_mm256_slli_epi16::<3>(hbits), b4);
                hbits = _mm256_srli_epi16::<2>(hbits);
                put32(
                    &mut out.q,
                    64 * j,
                    _mm256_or_si256(_mm256_and_si256(bits, m4), h0),
                );
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
                put32(&mut out.q, 64 * j + 32, _mm256_or_si256(hi, h1));
            }
            k4_scales_mins(wb.add(4), out);
            out.d = read_f16(wb);
            out.neg_dmin = -read_f16(wb.add(2));
        }
    }
}

impl PackType for Q6K {
    const SB: usize = 256;
    const W_BYTES: usize = 210;
    const A_BYTES: usize = 292;
    const KQUANT: bool = true;
    const SUBG: usize = 4;
    const I16_CHAIN: usize = 2;
    const OFFSET: i32 = 0;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn decode(wb: *const u8, _: bool, out: &mut Decoded) {
        // SAFETY: a whole Q6_K block at `wb` (caller).
        unsafe {
            for (r, q) in super::dot::q6_k_quants(wb).into_iter().enumerate() {
                put32(&mut out.q, 32 * r, q);
            }
            // Σ sc (q - 32) y = Σ sc q y - 32 Σ sc bsum: the -32 is a min term with dmin = d.
            for s in 0..16 {
                let sc = i32::from(*wb.add(192 + s) as i8);
                out.scales[s] = sc;
                out.mins[s] = 32 * sc;
            }
            out.d = read_f16(wb.add(208));
            out.neg_dmin = -out.d;
        }
    }
    #[inline(always)]
    unsafe fn pack_x8<I: Isa>(
        nb: usize,
        w: *const u8,
        w_stride: usize,
        count: usize,
        out: *mut u8,
    ) {
        // SAFETY: forwarded contract.
        unsafe { pack_group_q6_k_x8::<I>(nb, w, w_stride, count, out) }
    }
}

impl PackType for Q4_0 {
    const SB: usize = 32;
    const W_BYTES: usize = 18;
    const A_BYTES: usize = 34;
    const KQUANT: bool = false;
    const SUBG: usize = 8;
    const I16_CHAIN: usize = 8;
    const OFFSET: i32 = 8;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn decode(wb: *const u8, _: bool, out: &mut Decoded) {
        // SAFETY: a whole Q4_0 block at `wb` (caller).
        unsafe {
            put32(&mut out.q, 0, nibbles32(wb.add(2)));
            out.d = read_f16(wb);
        }
    }
}

impl PackType for Q5_0 {
    const SB: usize = 32;
    const W_BYTES: usize = 22;
    const A_BYTES: usize = 34;
    const KQUANT: bool = false;
    const SUBG: usize = 8;
    const I16_CHAIN: usize = 4;
    const OFFSET: i32 = 16;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn decode(wb: *const u8, _: bool, out: &mut Decoded) {
        // SAFETY: a whole Q5_0 block at `wb` (caller).
        unsafe {
            let high = _mm256_and_si256(bits_to_bytes32(wb.add(2)), _mm256_set1_epi8(0x10));
            put32(&mut out.q, 0, _mm256_or_si256(nibbles32(wb.add(6)), high));
            out.d = read_f16(wb);
        }
    }
}

impl PackType for Q8_0 {
    const SB: usize = 32;
    const W_BYTES: usize = 34;
    const A_BYTES: usize = 34;
    const KQUANT: bool = false;
    const SUBG: usize = 8;
    const I16_CHAIN: usize = 1;
    const OFFSET: i32 = 128;
    const SIGNED: bool = true;
    #[inline(always)]
    unsafe fn decode(wb: *const u8, keep_signed: bool, out: &mut Decoded) {
        // SAFETY: a whole Q8_0 block at `wb` (caller).
        unsafe {
            let q = load256(wb.add(2));
            let q = if keep_signed {
                q
            } else {
                _mm256_xor_si256(q, _mm256_set1_epi8(-128))
            };
            put32(&mut out.q, 0, q);
            out.d = read_f16(wb);
        }
    }
    #[inline(always)]
    unsafe fn pack_x8<I: Isa>(
        nb: usize,
        w: *const u8,
        w_stride: usize,
        count: usize,
        out: *mut u8,
    ) {
        // SAFETY: forwarded contract.
        unsafe { pack_group_q8_0_x8::<I>(nb, w, w_stride, count, out) }
    }
}

/// Whether the stored quants stay signed (Q8_0 on AVX2) and the offset folded in through the
/// activation sums.
const fn signed_kept<I: Isa, T: PackType>() -> bool {
    I::I16 && T::SIGNED
}

const fn offset<I: Isa, T: PackType>() -> i32 {
    if signed_kept::<I, T>() { 0 } else { T::OFFSET }
}

/// Byte offsets within one packed record (one group of `G` rows, one block).
struct Layout {
    scales: usize,
    mins: usize,
    d: usize,
    neg_dmin: usize,
    bytes: usize,
}

const fn layout<I: Isa, T: PackType>() -> Layout {
    let g = I::G;
    let scales = T::SB * g;
    if T::KQUANT {
        let mins = scales + T::SB / 4 / T::SUBG * g * 4;
        let d = mins + 8 * g * 4;
        Layout {
            scales,
            mins,
            d,
            neg_dmin: d + g * 4,
            bytes: d + 2 * g * 4,
        }
    } else {
        Layout {
            scales,
            mins: scales,
            d: scales,
            neg_dmin: scales,
            bytes: scales + g * 4,
        }
    }
}

/// Packs `count` (≤ G) rows of `nb` blocks from `w` (row stride `w_stride`) into `nb` records
/// at `out`; missing rows are zero (their lanes compute zeros nobody reads).
#[inline(always)]
unsafe fn pack_group<I: Isa, T: PackType>(
    nb: usize,
    w: *const u8,
    w_stride: usize,
    count: usize,
    out: *mut u8,
) {
    let l = layout::<I, T>();
    let mut dec = Decoded::EMPTY;
    let g = I::G;
    // SAFETY: `count` rows of `nb` blocks behind `w`, `nb` records of `l.bytes` at `out`
    // (caller); every write below is inside record `b`.
    unsafe {
        for b in 0..nb {
            let rec = out.add(b * l.bytes);
            std::ptr::write_bytes(rec, 0, l.bytes);
            for i in 0..count {
                T::decode(
                    w.add(i * w_stride + b * T::W_BYTES),
                    signed_kept::<I, T>(),
                    &mut dec,
                );
                let q = rec.cast::<u32>();
                for grp in 0..T::SB / 4 {
                    let word = dec.q.as_ptr().add(4 * grp).cast::<u32>().read_unaligned();
                    q.add(grp * g + i).write_unaligned(word);
                }
                put_row_meta::<I, T>(rec, i, &dec);
            }
        }
    }
}

/// Row `i`'s scales, mins, `-dmin` (K-quants) and `d` from `dec` into the record at `rec`.
#[inline(always)]
unsafe fn put_row_meta<I: Isa, T: PackType>(rec: *mut u8, i: usize, dec: &Decoded) {
    let l = layout::<I, T>();
    let g = I::G;
    // SAFETY: a whole record at `rec` and `i < G` (caller): every write is inside it.
    unsafe {
        if T::KQUANT {
            for s in 0..T::SB / 4 / T::SUBG {
                let at = rec.add(l.scales + (s * g + i) * 4).cast::<i32>();
                at.write_unaligned(I::scale_word(dec.scales[s]));
            }
            for p in 0..8 {
                let pair =
                    (dec.mins[2 * p] as u16 as u32) | ((dec.mins[2 * p + 1] as u16 as u32) << 16);
                rec.add(l.mins + (p * g + i) * 4)
                    .cast::<u32>()
                    .write_unaligned(pair);
            }
            rec.add(l.neg_dmin + 4 * i)
                .cast::<f32>()
                .write_unaligned(dec.neg_dmin);
        }
        rec.add(l.d + 4 * i).cast::<f32>().write_unaligned(dec.d);
    }
}

/// Bytes of one Q4_K×8 block (block `b` of 8 rows, `crate::kernels::repack`): the `d`s at 0,
/// the `dmin`s at 16, scale byte `j` of row `r` at `32 + 8j + r`, nibble piece `p` (ggml's
/// `qs[4p..4p + 4]`) of row `r` at `128 + 32p + 4r`.
const Q4K_X8_BLOCK: usize = crate::kernels::repack::Q4K_X8_BLOCK_BYTES;

/// [`PackType::pack_x8`] for Q4_K: the x8 blocks' nibble pieces already hold the same 4
/// bytes of 8 rows side by side, so a piece's low nibbles are word `16(p / 8) + p % 8` of
/// those 8 rows, its high nibbles the word 8 on; the scales are gathered per row.
#[inline(always)]
unsafe fn pack_group_q4_k_x8<I: Isa>(
    nb: usize,
    w: *const u8,
    w_stride: usize,
    count: usize,
    out: *mut u8,
) {
    let l = layout::<I, Q4K>();
    let g = I::G;
    let mut dec = Decoded::EMPTY;
    // SAFETY: `count / 8` groups of `nb` x8 blocks behind `w`, `nb` records of `l.bytes` at
    // `out` (caller); the words stored are `(word · G + 8 · half) · 4 + 32 ≤ 256 · G` bytes
    // into record `b` (word < 64, 8 · half + 8 ≤ G), the rest by `put_row_meta`.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0f);
        for b in 0..nb {
            let rec = out.add(b * l.bytes);
            std::ptr::write_bytes(rec, 0, l.bytes);
            for half in 0..count / 8 {
                let x8 = w.add(8 * half * w_stride + b * Q4K_X8_BLOCK);
                for p in 0..32 {
                    let bits = load256(x8.add(128 + 32 * p));
                    let word = 16 * (p / 8) + p % 8;
                    let at = |word: usize| rec.add((word * g + 8 * half) * 4).cast::<__m256i>();
                    _mm256_storeu_si256(at(word), _mm256_and_si256(bits, m4));
                    let high = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
                    _mm256_storeu_si256(at(word + 8), high);
                }
                for r in 0..8 {
                    let mut scale_bytes = [0u8; 16];
                    for (j, byte) in scale_bytes[..12].iter_mut().enumerate() {
                        *byte = *x8.add(32 + 8 * j + r);
                    }
                    k4_scales_mins(scale_bytes.as_ptr(), &mut dec);
                    dec.d = read_f16(x8.add(2 * r));
                    dec.neg_dmin = -read_f16(x8.add(16 + 2 * r));
                    put_row_meta::<I, Q4K>(rec, 8 * half + r, &dec);
                }
            }
        }
    }
}

/// Bytes of one Q8_0×8 block (block `b` of 8 rows, `crate::kernels::repack`): the `d`s at 0,
/// quant piece `p` (ggml's `qs[4p..4p + 4]`) of row `r` at `16 + 32p + 4r`.
const Q8_0_X8_BLOCK: usize = crate::kernels::repack::Q8_0_X8_BLOCK_BYTES;

/// [`PackType::pack_x8`] for Q8_0: an x8 block's quant piece `p` is already word `p` of its
/// 8 rows side by side (flipped to unsigned where [`pack_group`] flips them), the `d`s are
/// widened per row.
#[inline(always)]
unsafe fn pack_group_q8_0_x8<I: Isa>(
    nb: usize,
    w: *const u8,
    w_stride: usize,
    count: usize,
    out: *mut u8,
) {
    let l = layout::<I, Q8_0>();
    let g = I::G;
    // SAFETY: `count / 8` groups of `nb` x8 blocks behind `w`, `nb` records of `l.bytes` at
    // `out` (caller); the words stored are `(p · G + 8 · half) · 4 + 32 ≤ 32 · G` bytes into
    // record `b` (p < 8, 8 · half + 8 ≤ G), the `d`s inside it at `l.d + 4 · row`.
    unsafe {
        let flip = if signed_kept::<I, Q8_0>() {
            _mm256_setzero_si256()
        } else {
            _mm256_set1_epi8(-128)
        };
        for b in 0..nb {
            let rec = out.add(b * l.bytes);
            std::ptr::write_bytes(rec, 0, l.bytes);
            for half in 0..count / 8 {
                let x8 = w.add(8 * half * w_stride + b * Q8_0_X8_BLOCK);
                for p in 0..8 {
                    let q = _mm256_xor_si256(load256(x8.add(16 + 32 * p)), flip);
                    let at = rec.add((p * g + 8 * half) * 4).cast::<__m256i>();
                    _mm256_storeu_si256(at, q);
                }
                for r in 0..8 {
                    let d = rec.add(l.d + 4 * (8 * half + r)).cast::<f32>();
                    d.write_unaligned(read_f16(x8.add(2 * r)));
                }
            }
        }
    }
}

/// Bytes of one Q6_K×8 block (block `b` of 8 rows, `crate::kernels::repack`): the `d`s at 0,
/// scale `s` of row `r` at `16 + 8s + r`, piece `(h, g)` at `144 + 96 (8h + g)`: three runs
/// `A0`, `A1`, `B` of 32 bytes, byte `4r + t` of each row `r`'s, holding the levels `q_k` of
/// elements `128h + 32k + 4g + t` as `A0 = q_0 | (q_2 >> 4) << 6`, `A1 = q_1 | (q_3 >> 4) << 6`,
/// `B = (q_2 & 15) | (q_3 & 15) << 4`.
const Q6K_X8_BLOCK: usize = crate::kernels::repack::Q6K_X8_BLOCK_BYTES;

/// [`PackType::pack_x8`] for Q6_K: the levels of a piece come out as 4 packed words of 8 rows
/// each (word `32h + 8k + g`), the scales and `d`s gathered per row.
#[inline(always)]
unsafe fn pack_group_q6_k_x8<I: Isa>(
    nb: usize,
    w: *const u8,
    w_stride: usize,
    count: usize,
    out: *mut u8,
) {
    let l = layout::<I, Q6K>();
    let g = I::G;
    let mut dec = Decoded::EMPTY;
    // SAFETY: `count / 8` groups of `nb` x8 blocks behind `w`, `nb` records of `l.bytes` at
    // `out` (caller); the words stored are `(word · G + 8 · half) · 4 + 32 ≤ 256 · G` bytes
    // into record `b` (word < 64, 8 · half + 8 ≤ G), the rest by `put_row_meta`.
    unsafe {
        let (low4, low6, bits45) = (
            _mm256_set1_epi8(0x0f),
            _mm256_set1_epi8(0x3f),
            _mm256_set1_epi8(0x30),
        );
        for b in 0..nb {
            let rec = out.add(b * l.bytes);
            std::ptr::write_bytes(rec, 0, l.bytes);
            for half in 0..count / 8 {
                let x8 = w.add(8 * half * w_stride + b * Q6K_X8_BLOCK);
                for h in 0..2 {
                    for gg in 0..8 {
                        let piece = x8.add(144 + 96 * (8 * h + gg));
                        let (a0, a1, bb) = (
                            load256(piece),
                            load256(piece.add(32)),
                            load256(piece.add(64)),
                        );
                        // Bits 6..8 of A0/A1 to bits 4..6 (the 16-bit shift's spill from the
                        // next byte lands in bits 6..8, masked off).
                        let top = |a: __m256i| _mm256_and_si256(_mm256_srli_epi16::<2>(a), bits45);
                        let q = [
                            _mm256_and_si256(a0, low6),
                            _mm256_and_si256(a1, low6),
                            _mm256_or_si256(_mm256_and_si256(bb, low4), top(a0)),
                            _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16::<4>(bb), low4),
                                top(a1),
                            ),
                        ];
                        for (k, v) in q.into_iter().enumerate() {
                            let word = 32 * h + 8 * k + gg;
                            _mm256_storeu_si256(rec.add((word * g + 8 * half) * 4).cast(), v);
                        }
                    }
                }
                for r in 0..8 {
                    for s in 0..16 {
                        let sc = i32::from(*x8.add(16 + 8 * s + r) as i8);
                        dec.scales[s] = sc;
                        dec.mins[s] = 32 * sc;
                    }
                    dec.d = read_f16(x8.add(2 * r));
                    dec.neg_dmin = -dec.d;
                    put_row_meta::<I, Q6K>(rec, 8 * half + r, &dec);
                }
            }
        }
    }
}

/// `R` packed row groups × `C` tokens over `nb` K-quant blocks: per block, sub-block sums
/// scaled in i32, the min term through the activations' `bsums`, then `d`·`d_a` in f32.
#[inline(always)]
unsafe fn micro_k<I: Isa, T: PackType, const R: usize, const C: usize>(
    nb: usize,
    packed: [*const u8; R],
    a: [*const u8; C],
) -> [[I::F; C]; R] {
    let l = layout::<I, T>();
    let g = I::G;
    let chain = if I::I16 { T::I16_CHAIN } else { T::SUBG };
    // SAFETY: `nb` records behind each `packed[r]`, `nb` activation blocks behind each `a[c]`
    // (caller).
    unsafe {
        let mut facc = [[I::fzero(); C]; R];
        for b in 0..nb {
            let rp: [*const u8; R] = std::array::from_fn(|r| packed[r].add(b * l.bytes));
            let ap: [*const u8; C] = std::array::from_fn(|c| a[c].add(b * T::A_BYTES));
            let mut sumi = [[I::zero(); C]; R];
            for s in 0..T::SB / 4 / T::SUBG {
                let sc: [I::V; R] =
                    std::array::from_fn(|r| I::load(rp[r].add(l.scales + s * g * 4)));
                let mut t = [[I::zero(); C]; R];
                for grp in 0..T::SUBG {
                    let kg = s * T::SUBG + grp;
                    let w: [I::V; R] = std::array::from_fn(|r| I::load(rp[r].add(kg * g * 4)));
                    for c in 0..C {
                        let av = I::splat4(ap[c].add(4 + 4 * kg));
                        for r in 0..R {
                            t[r][c] = I::dot4(t[r][c], w[r], av);
                        }
                    }
                    if (grp + 1) % chain == 0 {
                        for r in 0..R {
                            for c in 0..C {
                                sumi[r][c] = I::flush(sumi[r][c], t[r][c], sc[r]);
                                t[r][c] = I::zero();
                            }
                        }
                    }
                }
            }
            let mut m = [[I::zero(); C]; R];
            for p in 0..8 {
                let mv: [I::V; R] = std::array::from_fn(|r| I::load(rp[r].add(l.mins + p * g * 4)));
                for c in 0..C {
                    let bs = I::splat4(ap[c].add(260 + 4 * p));
                    for r in 0..R {
                        m[r][c] = I::madd16(m[r][c], mv[r], bs);
                    }
                }
            }
            let d: [I::F; R] = std::array::from_fn(|r| I::loadf(rp[r].add(l.d)));
            let dm: [I::F; R] = std::array::from_fn(|r| I::loadf(rp[r].add(l.neg_dmin)));
            for c in 0..C {
                let da = I::splatf(read_f32(ap[c]));
                for r in 0..R {
                    facc[r][c] = I::acc(facc[r][c], sumi[r][c], d[r], da);
                    facc[r][c] = I::acc(facc[r][c], m[r][c], dm[r], da);
                }
            }
        }
        facc
    }
}

/// `R` packed row groups × `C` tokens over `nb` legacy blocks of 32: per block, the integer
/// sum started at `-OFFSET·Σa` (`neg_bsums[c]`, one i32 per block), then `d`·`d_a` in f32.
#[inline(always)]
unsafe fn micro_legacy<I: Isa, T: PackType, const R: usize, const C: usize>(
    nb: usize,
    packed: [*const u8; R],
    a: [*const u8; C],
    neg_bsums: [*const i32; C],
) -> [[I::F; C]; R] {
    let l = layout::<I, T>();
    let g = I::G;
    let chain = if I::I16 { T::I16_CHAIN } else { T::SUBG };
    // SAFETY: `nb` records behind each `packed[r]`, `nb` activation blocks and sums behind each
    // `a[c]`/`neg_bsums[c]` (caller).
    unsafe {
        let mut facc = [[I::fzero(); C]; R];
        for b in 0..nb {
            let rp: [*const u8; R] = std::array::from_fn(|r| packed[r].add(b * l.bytes));
            let ap: [*const u8; C] = std::array::from_fn(|c| a[c].add(b * T::A_BYTES));
            let mut sumi = [[I::zero(); C]; R];
            if offset::<I, T>() != 0 {
                for c in 0..C {
                    let init = I::splat4(neg_bsums[c].add(b).cast());
                    for r in 0..R {
                        sumi[r][c] = init;
                    }
                }
            }
            let mut t = [[I::zero(); C]; R];
            for kg in 0..T::SUBG {
                let w: [I::V; R] = std::array::from_fn(|r| I::load(rp[r].add(kg * g * 4)));
                for c in 0..C {
                    let av = I::splat4(ap[c].add(2 + 4 * kg));
                    for r in 0..R {
                        t[r][c] = if signed_kept::<I, T>() {
                            I::dot4_signed(t[r][c], w[r], av)
                        } else {
                            I::dot4(t[r][c], w[r], av)
                        };
                    }
                }
                if (kg + 1) % chain == 0 {
                    for r in 0..R {
                        for c in 0..C {
                            sumi[r][c] = I::flush_unit(sumi[r][c], t[r][c]);
                            t[r][c] = I::zero();
                        }
                    }
                }
            }
            let d: [I::F; R] = std::array::from_fn(|r| I::loadf(rp[r].add(l.d)));
            for c in 0..C {
                let da = I::splatf(read_f16(ap[c]));
                for r in 0..R {
                    facc[r][c] = I::acc(facc[r][c], sumi[r][c], d[r], da);
                }
            }
        }
        facc
    }
}

thread_local! {
    /// Per-thread packing buffer, reused across calls (no allocation per call once grown).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// `R × C` micro-tile at row group `rg`, token `c0`, written into `out`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn run<I: Isa, T: PackType, const R: usize, const C: usize>(
    nb: usize,
    packed: *const u8,
    rg: usize,
    valid_rows: usize,
    a: *const u8,
    a_stride: usize,
    neg_bsums: *const i32,
    c0: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let l = layout::<I, T>();
    let g = I::G;
    // SAFETY: forwarded contract (the caller's row groups and tokens exist).
    unsafe {
        let pp: [*const u8; R] = std::array::from_fn(|r| packed.add((rg + r) * nb * l.bytes));
        let ap: [*const u8; C] = std::array::from_fn(|c| a.add((c0 + c) * a_stride));
        let res = if T::KQUANT {
            micro_k::<I, T, R, C>(nb, pp, ap)
        } else {
            let bp: [*const i32; C] = std::array::from_fn(|c| neg_bsums.add((c0 + c) * nb));
            micro_legacy::<I, T, R, C>(nb, pp, ap, bp)
        };
        let mut lanes = [0f32; 16];
        for (r, row) in res.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                I::store(v, lanes.as_mut_ptr());
                let first = (rg + r) * g;
                for (i, &x) in lanes[..g].iter().enumerate() {
                    if first + i < valid_rows {
                        out[(first + i) * out_stride + c0 + c] = x;
                    }
                }
            }
        }
    }
}

/// The packed tile: `out[r * out_stride + c] = dot(w row r, a row c)` for `rows × cols`, each
/// row `nb` blocks of `T` and each activation row `nb` blocks of its activation type.
/// Register tile: `R` groups of `G` rows × `C` tokens.
///
/// # Safety
/// `rows` rows of `nb` blocks at `w` (stride `w_stride`), `cols` rows at `a` (stride
/// `a_stride`); `out` holds the tile; AVX2 + FMA + F16C and `I`'s features held.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn gemm<I: Isa, T: PackType, const R: usize, const C: usize>(
    nb: usize,
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
        gemm_from::<I, T, R, C, false>(nb, w, w_stride, rows, a, a_stride, cols, out, out_stride)
    }
}

/// As [`gemm`] for rows stored 8 per block (Q4_K×8, Q6_K×8: `crate::kernels::repack`),
/// packed straight from them ([`PackType::pack_x8`]): the same records, so the same results
/// bit for bit.
///
/// # Safety
/// As [`gemm`], `T` a type with such a layout. Panics unless `rows` is a multiple of 8 and
/// `w_stride` is a row's `W_BYTES · nb` (a group of 8 rows is 8 rows' bytes).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn gemm_x8<I: Isa, T: PackType, const R: usize, const C: usize>(
    nb: usize,
    w: *const u8,
    w_stride: usize,
    rows: usize,
    a: *const u8,
    a_stride: usize,
    cols: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    assert!(
        rows.is_multiple_of(8) && w_stride == nb * T::W_BYTES,
        "x8 tile: {rows} rows of stride {w_stride} are not whole groups of {nb} blocks"
    );
    // SAFETY: forwarded contract; whole groups (checked above).
    unsafe {
        gemm_from::<I, T, R, C, true>(nb, w, w_stride, rows, a, a_stride, cols, out, out_stride)
    }
}

/// The body of [`gemm`] (`X8`: of [`gemm_x8`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn gemm_from<I: Isa, T: PackType, const R: usize, const C: usize, const X8: bool>(
    nb: usize,
    w: *const u8,
    w_stride: usize,
    rows: usize,
    a: *const u8,
    a_stride: usize,
    cols: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let l = layout::<I, T>();
    let g = I::G;
    let groups_max = ROW_SUB / g;
    let packed_bytes = groups_max * nb * l.bytes;
    let bsum_bytes = if T::KQUANT { 0 } else { cols * nb * 4 };
    // Taken out of the thread-local and put back after: the work must not run inside a
    // closure, which would not inherit this function's target features (no inlined intrinsics).
    let mut scratch = SCRATCH.with(|cell| cell.take());
    {
        let need = packed_bytes + bsum_bytes + 64;
        if scratch.len() < need {
            scratch.resize(need, 0);
        }
        let base = scratch.as_mut_ptr();
        // 64-byte alignment for the packed records' vector loads.
        let packed = base.wrapping_add(base.align_offset(64));
        // SAFETY: the scratch holds `need` bytes: up to 64 of alignment, the packed records,
        // then the i32 block sums (4-byte aligned: records are multiples of 4 bytes).
        unsafe {
            let bsums = packed.add(packed_bytes).cast::<i32>();
            if !T::KQUANT && offset::<I, T>() != 0 {
                for c in 0..cols {
                    for b in 0..nb {
                        let q = load256(a.add(c * a_stride + b * T::A_BYTES + 2));
                        *bsums.add(c * nb + b) = -offset::<I, T>() * block_sum(q);
                    }
                }
            }
            let mut r0 = 0;
            while r0 < rows {
                let sub = ROW_SUB.min(rows - r0);
                let groups = sub.div_ceil(g);
                for grp in 0..groups {
                    let count = g.min(sub - grp * g);
                    let (from, to) = (
                        w.add((r0 + grp * g) * w_stride),
                        packed.add(grp * nb * l.bytes),
                    );
                    if X8 {
                        T::pack_x8::<I>(nb, from, w_stride, count, to);
                    } else {
                        pack_group::<I, T>(nb, from, w_stride, count, to);
                    }
                }
                let o = &mut out[r0 * out_stride..];
                let mut c0 = 0;
                while c0 < cols {
                    let wide = cols - c0 >= C;
                    let mut rg = 0;
                    while rg < groups {
                        let tall = groups - rg >= R;
                        match (tall, wide) {
                            (true, true) => run::<I, T, R, C>(
                                nb, packed, rg, sub, a, a_stride, bsums, c0, o, out_stride,
                            ),
                            (true, false) => run::<I, T, R, 1>(
                                nb, packed, rg, sub, a, a_stride, bsums, c0, o, out_stride,
                            ),
                            (false, true) => run::<I, T, 1, C>(
                                nb, packed, rg, sub, a, a_stride, bsums, c0, o, out_stride,
                            ),
                            (false, false) => run::<I, T, 1, 1>(
                                nb, packed, rg, sub, a, a_stride, bsums, c0, o, out_stride,
                            ),
                        }
                        rg += if tall { R } else { 1 };
                    }
                    c0 += if wide { C } else { 1 };
                }
                r0 += sub;
            }
        }
    }
    SCRATCH.with(|cell| cell.replace(scratch));
}

/// Sum of 32 signed bytes.
#[inline(always)]
unsafe fn block_sum(q: __m256i) -> i32 {
    // SAFETY: register-only; the caller holds AVX2.
    unsafe {
        // Bias to unsigned, sum with vpsadbw, unbias.
        let biased = _mm256_xor_si256(q, _mm256_set1_epi8(-128));
        let s = _mm256_sad_epu8(biased, _mm256_setzero_si256());
        hsum_epi32(s) - 128 * 32
    }
}
