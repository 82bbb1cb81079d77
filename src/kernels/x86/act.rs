//! Activation quantizers (f32 row -> Q8_0, Q8_1, Q8_K, F16, BF16 bytes) with AVX2 + F16C,
//! byte-identical to the scalar reference in `crate::quant` (ggml's `*_reference` functions).
//!
//! Exactness: the same f32 operations in the same order (no FMA); C's `roundf` (half away from
//! zero) as truncation plus a correction, ggml's `nearest_int` with the same 1.5·2^23 bias. A
//! block holding a NaN or an infinity goes through the scalar reference, whose comparison
//! order decides what such a block becomes; so does a block whose inverse scale overflows (a
//! subnormal maximum).

use std::arch::x86_64::*;

use super::common::load256;
use crate::quant::{self, BlockQ8_0, BlockQ8_1, BlockQ8K};

/// Q8_0/Q8_1 block bytes: f16 scale (+ f16 sum for Q8_1) then 32 quants.
const Q8_0_BYTES: usize = 34;
const Q8_1_BYTES: usize = 36;
const Q8_K_BYTES: usize = 292;

/// Loads 8 floats at `x[at..]`.
///
/// # Safety
/// `at + 8 <= x.len()`; AVX enabled.
#[inline(always)]
unsafe fn load_ps(x: &[f32], at: usize) -> __m256 {
    debug_assert!(at + 8 <= x.len());
    // SAFETY: in bounds (caller); loadu has no alignment requirement.
    unsafe { _mm256_loadu_ps(x.as_ptr().add(at)) }
}

/// All lanes of |v| below infinity (false for NaN or ±inf).
#[inline(always)]
unsafe fn all_finite(abs: __m256) -> bool {
    // SAFETY: register-only.
    unsafe {
        _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(
            abs,
            _mm256_set1_ps(f32::INFINITY),
        )) == 0xff
    }
}

#[inline(always)]
unsafe fn abs_ps(v: __m256) -> __m256 {
    // SAFETY: register-only.
    unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), v) }
}

#[inline(always)]
unsafe fn hmax_ps(v: __m256) -> f32 {
    // SAFETY: register-only.
    unsafe {
        let x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let x = _mm_max_ps(x, _mm_movehl_ps(x, x));
        let x = _mm_max_ss(x, _mm_movehdup_ps(x));
        _mm_cvtss_f32(x)
    }
}

/// C's `(int)roundf(y)` for finite |y| < 2^31: truncate, then step away from zero when the
/// dropped fraction is at least one half (the fraction `y - trunc(y)` is exact).
#[inline(always)]
unsafe fn roundf_epi32(y: __m256) -> __m256i {
    // SAFETY: register-only.
    unsafe {
        let t = _mm256_cvttps_epi32(y);
        let frac = _mm256_sub_ps(y, _mm256_cvtepi32_ps(t));
        let up = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5)));
        let down = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(frac, _mm256_set1_ps(-0.5)));
        // Masks are -1 where true.
        _mm256_add_epi32(_mm256_sub_epi32(t, up), down)
    }
}

/// Packs 4×8 i32 (each in i8 range) into 32 i8 in element order.
#[inline(always)]
unsafe fn pack_i8(i: [__m256i; 4]) -> __m256i {
    // SAFETY: register-only.
    unsafe {
        let a = _mm256_packs_epi32(i[0], i[1]);
        let b = _mm256_packs_epi32(i[2], i[3]);
        let p = _mm256_packs_epi16(a, b);
        // The packs interleave 128-bit lanes: dwords come out as 0 4 1 5 2 6 3 7.
        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }
}

/// One Q8_0/Q8_1 block's quants and scale, or None for a non-finite block.
///
/// # Safety
/// `at + 32 <= x.len()`; AVX2 + F16C enabled.
#[inline(always)]
unsafe fn q8_block(x: &[f32], at: usize) -> Option<(__m256i, [__m256i; 4], f32)> {
    // SAFETY: four in-bounds loads (caller); the rest is register-only.
    unsafe {
        let v = [
            load_ps(x, at),
            load_ps(x, at + 8),
            load_ps(x, at + 16),
            load_ps(x, at + 24),
        ];
        let a = [abs_ps(v[0]), abs_ps(v[1]), abs_ps(v[2]), abs_ps(v[3])];
        if !(all_finite(a[0]) && all_finite(a[1]) && all_finite(a[2]) && all_finite(a[3])) {
            return None;
        }
        let amax = hmax_ps(_mm256_max_ps(
            _mm256_max_ps(a[0], a[1]),
            _mm256_max_ps(a[2], a[3]),
        ));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        if !id.is_finite() {
            // A subnormal scale: x·id overflows and C's (int) of ±inf is what decides.
            return None;
        }
        let idv = _mm256_set1_ps(id);
        // No closures here: they would not inherit the caller's target features.
        let i = [
            roundf_epi32(_mm256_mul_ps(v[0], idv)),
            roundf_epi32(_mm256_mul_ps(v[1], idv)),
            roundf_epi32(_mm256_mul_ps(v[2], idv)),
            roundf_epi32(_mm256_mul_ps(v[3], idv)),
        ];
        Some((pack_i8(i), i, d))
    }
}

#[inline(always)]
unsafe fn f16_bits(x: f32) -> u16 {
    // SAFETY: register-only; F16C enabled in the caller.
    unsafe {
        _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(x))) as u16
    }
}

/// # Safety
/// `out.len() == x.len() / 32 * 34`, `x.len() % 32 == 0`; AVX2 + F16C enabled.
#[inline(always)]
pub(super) unsafe fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
    for (b, dst) in out.chunks_exact_mut(Q8_0_BYTES).enumerate() {
        // SAFETY: block b lies within x (caller's length contract); the store writes 32 bytes
        // inside `dst`.
        unsafe {
            match q8_block(x, 32 * b) {
                Some((q, _, d)) => {
                    dst[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
                    _mm256_storeu_si256(dst.as_mut_ptr().add(2).cast(), q);
                }
                None => dst.copy_from_slice(&scalar_q8_0(x, b).encode()),
            }
        }
    }
}

/// # Safety
/// `out.len() == x.len() / 32 * 36`, `x.len() % 32 == 0`; AVX2 + F16C enabled.
#[inline(always)]
pub(super) unsafe fn quantize_q8_1(x: &[f32], out: &mut [u8]) {
    for (b, dst) in out.chunks_exact_mut(Q8_1_BYTES).enumerate() {
        // SAFETY: as quantize_q8_0.
        unsafe {
            match q8_block(x, 32 * b) {
                Some((q, i, d)) => {
                    let s = _mm256_add_epi32(
                        _mm256_add_epi32(i[0], i[1]),
                        _mm256_add_epi32(i[2], i[3]),
                    );
                    let sum = super::common::hsum_epi32(s);
                    dst[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
                    dst[2..4].copy_from_slice(&f16_bits(sum as f32 * d).to_le_bytes());
                    _mm256_storeu_si256(dst.as_mut_ptr().add(4).cast(), q);
                }
                None => dst.copy_from_slice(&scalar_q8_1(x, b).encode()),
            }
        }
    }
}

fn block_of<const N: usize>(x: &[f32], b: usize) -> &[f32; N] {
    x[N * b..N * b + N]
        .try_into()
        .unwrap_or_else(|_| unreachable!("slice of length N"))
}

fn scalar_q8_0(x: &[f32], b: usize) -> BlockQ8_0 {
    quant::quantize_block_q8_0(block_of::<32>(x, b))
}

fn scalar_q8_1(x: &[f32], b: usize) -> BlockQ8_1 {
    quant::quantize_block_q8_1(block_of::<32>(x, b))
}

fn scalar_q8_k(x: &[f32], b: usize) -> BlockQ8K {
    quant::quantize_block_q8_k(block_of::<256>(x, b))
}

/// # Safety
/// `out.len() == x.len() / 256 * 292`, `x.len() % 256 == 0`; AVX2 + F16C enabled.
#[inline(always)]
pub(super) unsafe fn quantize_q8_k(x: &[f32], out: &mut [u8]) {
    for (b, dst) in out.chunks_exact_mut(Q8_K_BYTES).enumerate() {
        // SAFETY: block b lies within x (caller's contract); loads stay inside it, stores
        // inside `dst` (4 + 8·32 = 260 bytes of quants, then 32 bytes of sums).
        unsafe {
            let base = 256 * b;
            let mut vmax = _mm256_setzero_ps();
            let mut finite = true;
            for c in 0..32 {
                let a = abs_ps(load_ps(x, base + 8 * c));
                finite &= all_finite(a);
                vmax = _mm256_max_ps(vmax, a);
            }
            let amax = hmax_ps(vmax);
            if !finite || amax == 0.0 {
                dst.copy_from_slice(&scalar_q8_k(x, b).encode());
                continue;
            }
            // ggml keeps the first element of largest magnitude, with its sign.
            let target = _mm256_set1_ps(amax);
            let mut max = amax;
            for c in 0..32 {
                let v = load_ps(x, base + 8 * c);
                let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(abs_ps(v), target));
                if hit != 0 {
                    max = x[base + 8 * c + hit.trailing_zeros() as usize];
                    break;
                }
            }
            let iscale = -127.0 / max;
            if !iscale.is_finite() {
                // A subnormal maximum: as in q8_block, the overflowing products decide.
                dst.copy_from_slice(&scalar_q8_k(x, b).encode());
                continue;
            }
            let iv = _mm256_set1_ps(iscale);
            let bias = _mm256_set1_ps(12_582_912.0);
            let mantissa = _mm256_set1_epi32(0x007f_ffff);
            let offset = _mm256_set1_epi32(0x0040_0000);
            let cap = _mm256_set1_epi32(127);
            let qs = dst.as_mut_ptr().add(4);
            for g in 0..8 {
                let mut i = [_mm256_setzero_si256(); 4];
                for (k, ik) in i.iter_mut().enumerate() {
                    let v = load_ps(x, base + 32 * g + 8 * k);
                    // nearest_int(iscale * x): multiply, then add the bias, as two roundings.
                    let biased = _mm256_add_ps(_mm256_mul_ps(iv, v), bias);
                    let bits = _mm256_and_si256(_mm256_castps_si256(biased), mantissa);
                    *ik = _mm256_min_epi32(_mm256_sub_epi32(bits, offset), cap);
                }
                _mm256_storeu_si256(qs.add(32 * g).cast(), pack_i8(i));
            }
            // Sums of 16 quants: bias to unsigned, sum 8 bytes at a time with vpsadbw.
            let flip = _mm256_set1_epi8(-128);
            let mut sums = [0u64; 4];
            for g in 0..8 {
                let q = load256(qs.add(32 * g));
                let s = _mm256_sad_epu8(_mm256_xor_si256(q, flip), _mm256_setzero_si256());
                _mm256_storeu_si256(sums.as_mut_ptr().cast(), s);
                for h in 0..2 {
                    let total = (sums[2 * h] + sums[2 * h + 1]) as i32 - 16 * 128;
                    let at = 260 + 2 * (2 * g + h);
                    dst[at..at + 2].copy_from_slice(&(total as i16).to_le_bytes());
                }
            }
            dst[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
        }
    }
}

/// f32 -> f16 (round to nearest even, F16C), 8 at a time.
///
/// # Safety
/// `out.len() == 2 * x.len()`; AVX + F16C enabled.
#[inline(always)]
pub(super) unsafe fn convert_f16(x: &[f32], out: &mut [u8]) {
    let whole = x.len() / 8 * 8;
    for at in (0..whole).step_by(8) {
        // SAFETY: in bounds: 8 floats in, 16 bytes out.
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(load_ps(x, at));
            _mm_storeu_si128(out.as_mut_ptr().add(2 * at).cast(), h);
        }
    }
    for at in whole..x.len() {
        // SAFETY: register-only conversion.
        let h = unsafe { f16_bits(x[at]) };
        out[2 * at..2 * at + 2].copy_from_slice(&h.to_le_bytes());
    }
}

/// bf16 bits of 8 floats, zero-extended to i32 lanes.
#[inline(always)]
unsafe fn bf16_round(v: __m256) -> __m256i {
    // SAFETY: register-only.
    unsafe {
        let bits = _mm256_castps_si256(v);
        let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
        let rounded = _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
        let nan = _mm256_cmpgt_epi32(
            _mm256_and_si256(bits, _mm256_set1_epi32(0x7fff_ffff)),
            _mm256_set1_epi32(0x7f80_0000),
        );
        let quiet = _mm256_or_si256(bits, _mm256_set1_epi32(0x0040_0000));
        _mm256_srli_epi32::<16>(_mm256_blendv_epi8(rounded, quiet, nan))
    }
}

/// f32 -> bf16 bits as ggml's `ggml_compute_fp32_to_bf16` (ties to even, NaN quieted, no
/// flushing of subnormals: unlike `vcvtneps2bf16`), 8 at a time.
///
/// # Safety
/// `out.len() == 2 * x.len()`; AVX2 enabled.
#[inline(always)]
pub(super) unsafe fn convert_bf16(x: &[f32], out: &mut [u8]) {
    let whole = x.len() / 16 * 16;
    for at in (0..whole).step_by(16) {
        // SAFETY: in bounds: 16 floats in, 32 bytes out; the rest is register-only.
        unsafe {
            let lo = bf16_round(load_ps(x, at));
            let hi = bf16_round(load_ps(x, at + 8));
            // packus keeps 16-bit values (all ≤ 0xffff) in 128-bit-lane order: fix with a permute.
            let p = _mm256_packus_epi32(lo, hi);
            let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(p);
            _mm256_storeu_si256(out.as_mut_ptr().add(2 * at).cast(), p);
        }
    }
    for at in whole..x.len() {
        out[2 * at..2 * at + 2].copy_from_slice(&quant::f32_to_bf16(x[at]).to_le_bytes());
    }
}
