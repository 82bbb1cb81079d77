//! Dot products of the K-quant formats (256-element super-blocks) with Q8_K activations,
//! generic over the int8 step ([`Int8Dot`]): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
//!
//! Within a super-block all sums are exact integers (each sub-block's int8 dot times its
//! integer scale, the mins against Q8_K's per-16 sums `bsums`); the super-block's f32 scales
//! apply once, so the only rounding is in those few products and the running f32 sum.

use std::arch::aarch64::*;

use super::simd::{Int8Dot, f16_at, load_i8, load_i16, load_u8};
use crate::dtype::QK_K;

/// Q8_K: d (f32), 256 quants, 16 sums of 16 quants (i16).
const Q8_K_BYTES: usize = 292;
const Q8_K_QS: usize = 4;
const Q8_K_BSUMS: usize = 4 + QK_K;

/// The super-blocks of a weight row and of a Q8_K row for `n` elements (whole blocks only);
/// panics if a row is too short.
fn rows<'a>(
    n: usize,
    w: &'a [u8],
    w_block: usize,
    a: &'a [u8],
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    let blocks = n / QK_K;
    let w = w[..blocks * w_block].chunks_exact(w_block);
    w.zip(a[..blocks * Q8_K_BYTES].chunks_exact(Q8_K_BYTES))
}

#[inline]
fn q8_k_scale(ab: &[u8]) -> f32 {
    f32::from_le_bytes([ab[0], ab[1], ab[2], ab[3]])
}

/// Σ_j bsums[j] * weights[j] over 16 (i16) sums and 16 small integer weights.
#[target_feature(enable = "neon")]
#[inline]
fn weighted_bsums(ab: &[u8], weights: int8x16_t) -> i32 {
    let (low, high) = (load_i16(ab, Q8_K_BSUMS), load_i16(ab, Q8_K_BSUMS + 16));
    let (w_low, w_high) = (vmovl_s8(vget_low_s8(weights)), vmovl_high_s8(weights));
    let mut acc = vmull_s16(vget_low_s16(low), vget_low_s16(w_low));
    acc = vmlal_high_s16(acc, low, w_low);
    acc = vmlal_s16(acc, vget_low_s16(high), vget_low_s16(w_high));
    acc = vmlal_high_s16(acc, high, w_high);
    vaddvq_s32(acc)
}

/// Q4_K/Q5_K's 8 six-bit scales and 8 mins from their 12 packed bytes.
#[inline]
fn unpack_scales_k4(packed: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut scales = [0u8; 8];
    let mut mins = [0u8; 8];
    for j in 0..4 {
        scales[j] = packed[j] & 63;
        mins[j] = packed[j + 4] & 63;
        scales[j + 4] = (packed[j + 8] & 0x0f) | ((packed[j] >> 6) << 4);
        mins[j + 4] = (packed[j + 8] >> 4) | ((packed[j + 4] >> 6) << 4);
    }
    (scales, mins)
}

/// Σ over Q4_K/Q5_K's 8 sub-blocks of min * (sum of that sub-block's 32 activations).
#[target_feature(enable = "neon")]
#[inline]
fn k4_min_sum(ab: &[u8], mins: [u8; 8]) -> i32 {
    // Each min covers two 16-element bsums: spread it over both.
    let spread: [i8; 16] = std::array::from_fn(|j| mins[j / 2] as i8);
    // SAFETY: 16 readable bytes (a local array); `ld1` has no alignment requirement.
    let weights = unsafe { vld1q_s8(spread.as_ptr()) };
    weighted_bsums(ab, weights)
}

/// Q4_K (144 bytes: d, dmin, 12 packed scales/mins, 128 nibble pairs) · Q8_K.
/// Weight = d * scale_j * q - dmin * min_j in sub-block j of 32.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn q4_k_q8_k<D: Int8Dot>(d: D, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    let low_nibble = vdupq_n_u8(0x0f);
    for (wb, ab) in rows(n, w, 144, a) {
        let (scales, mins) = unpack_scales_k4(&wb[4..16]);
        let mut acc = vdupq_n_s32(0);
        for j in 0..4 {
            let (q0, q1) = (load_u8(wb, 16 + 32 * j), load_u8(wb, 32 + 32 * j));
            let at = Q8_K_QS + 64 * j;
            let zero = vdupq_n_s32(0);
            let low = d.dot(
                d.dot(
                    zero,
                    vreinterpretq_s8_u8(vandq_u8(q0, low_nibble)),
                    load_i8(ab, at),
                ),
                vreinterpretq_s8_u8(vandq_u8(q1, low_nibble)),
                load_i8(ab, at + 16),
            );
            let high = d.dot(
                d.dot(
                    zero,
                    vreinterpretq_s8_u8(vshrq_n_u8::<4>(q0)),
                    load_i8(ab, at + 32),
                ),
                vreinterpretq_s8_u8(vshrq_n_u8::<4>(q1)),
                load_i8(ab, at + 48),
            );
            acc = vmlaq_n_s32(acc, low, i32::from(scales[2 * j]));
            acc = vmlaq_n_s32(acc, high, i32::from(scales[2 * j + 1]));
        }
        let da = q8_k_scale(ab);
        let (dw, dmin) = (da * f16_at(wb, 0), da * f16_at(wb, 2));
        sum += dw * vaddvq_s32(acc) as f32 - dmin * k4_min_sum(ab, mins) as f32;
    }
    sum
}

/// Q5_K (176 bytes: d, dmin, 12 packed scales/mins, 32 bytes of fifth bits, 128 nibble pairs)
/// · Q8_K. Bit 2j of qh[l] is the fifth bit of element 64j + l, bit 2j+1 of element 64j+32+l.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn q5_k_q8_k<D: Int8Dot>(d: D, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    let (low_nibble, one, two) = (vdupq_n_u8(0x0f), vdupq_n_u8(1), vdupq_n_u8(2));
    for (wb, ab) in rows(n, w, 176, a) {
        let (scales, mins) = unpack_scales_k4(&wb[4..16]);
        let mut qh = [load_u8(wb, 16), load_u8(wb, 32)];
        let mut acc = vdupq_n_s32(0);
        for j in 0..4 {
            let (q0, q1) = (load_u8(wb, 48 + 32 * j), load_u8(wb, 64 + 32 * j));
            let q = [
                vorrq_u8(
                    vandq_u8(q0, low_nibble),
                    vshlq_n_u8::<4>(vandq_u8(qh[0], one)),
                ),
                vorrq_u8(
                    vandq_u8(q1, low_nibble),
                    vshlq_n_u8::<4>(vandq_u8(qh[1], one)),
                ),
                vorrq_u8(vshrq_n_u8::<4>(q0), vshlq_n_u8::<3>(vandq_u8(qh[0], two))),
                vorrq_u8(vshrq_n_u8::<4>(q1), vshlq_n_u8::<3>(vandq_u8(qh[1], two))),
            ];
            qh = [vshrq_n_u8::<2>(qh[0]), vshrq_n_u8::<2>(qh[1])];
            let at = Q8_K_QS + 64 * j;
            let zero = vdupq_n_s32(0);
            let q = q.map(|v| vreinterpretq_s8_u8(v));
            let low = d.dot(
                d.dot(zero, q[0], load_i8(ab, at)),
                q[1],
                load_i8(ab, at + 16),
            );
            let high = d.dot(
                d.dot(zero, q[2], load_i8(ab, at + 32)),
                q[3],
                load_i8(ab, at + 48),
            );
            acc = vmlaq_n_s32(acc, low, i32::from(scales[2 * j]));
            acc = vmlaq_n_s32(acc, high, i32::from(scales[2 * j + 1]));
        }
        let da = q8_k_scale(ab);
        let (dw, dmin) = (da * f16_at(wb, 0), da * f16_at(wb, 2));
        sum += dw * vaddvq_s32(acc) as f32 - dmin * k4_min_sum(ab, mins) as f32;
    }
    sum
}

/// Q6_K (210 bytes: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 signed scales, d)
/// · Q8_K. Weight = d * scale_j * (q - 32) in sub-block j of 16; the -32 is applied once per
/// sub-block through bsums.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn q6_k_q8_k<D: Int8Dot>(d: D, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    let (low_nibble, two_bits) = (vdupq_n_u8(0x0f), vdupq_n_u8(3));
    for (wb, ab) in rows(n, w, 210, a) {
        let scales = load_i8(wb, 192);
        let mut acc = vdupq_n_s32(0);
        for half in 0..2 {
            let ql = [0, 16, 32, 48].map(|at| load_u8(wb, 64 * half + at));
            let qh = [0, 16].map(|at| load_u8(wb, 128 + 32 * half + at));
            // Element 128 half + 32 k + l (k = 0..4, l = 0..32): ql nibble from byte
            // l + 32 (k & 1), low for k < 2 else high; bits 2k..2k+2 of qh[l].
            for k in 0..4 {
                for part in 0..2 {
                    let low = ql[2 * (k & 1) + part];
                    let low = if k < 2 {
                        vandq_u8(low, low_nibble)
                    } else {
                        vshrq_n_u8::<4>(low)
                    };
                    let high = match k {
                        0 => qh[part],
                        1 => vshrq_n_u8::<2>(qh[part]),
                        2 => vshrq_n_u8::<4>(qh[part]),
                        _ => vshrq_n_u8::<6>(qh[part]),
                    };
                    let q = vorrq_u8(low, vshlq_n_u8::<4>(vandq_u8(high, two_bits)));
                    let element = 128 * half + 32 * k + 16 * part;
                    let p = d.dot(
                        vdupq_n_s32(0),
                        vreinterpretq_s8_u8(q),
                        load_i8(ab, Q8_K_QS + element),
                    );
                    let scale = wb[192 + element / 16] as i8;
                    acc = vmlaq_n_s32(acc, p, i32::from(scale));
                }
            }
        }
        let isum = vaddvq_s32(acc) - 32 * weighted_bsums(ab, scales);
        sum += q8_k_scale(ab) * f16_at(wb, 208) * isum as f32;
    }
    sum
}

/// Q2_K (84 bytes: 16 scale/min bytes, 64 bytes of 2-bit quants, d, dmin) · Q8_K.
/// Element 128 h + 32 s + l (l = 0..32) is bits 2s..2s+2 of qs[32 h + l]; sub-block j of 16
/// has scale scales[j] & 15 and min scales[j] >> 4.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn q2_k_q8_k<D: Int8Dot>(d: D, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    let two_bits = vdupq_n_u8(3);
    for (wb, ab) in rows(n, w, 84, a) {
        let packed = load_u8(wb, 0);
        let mins = vreinterpretq_s8_u8(vshrq_n_u8::<4>(packed));
        let mut acc = vdupq_n_s32(0);
        for h in 0..2 {
            let mut q = [load_u8(wb, 16 + 32 * h), load_u8(wb, 32 + 32 * h)];
            for s in 0..4 {
                for (part, bits) in q.iter().enumerate() {
                    let element = 128 * h + 32 * s + 16 * part;
                    let p = d.dot(
                        vdupq_n_s32(0),
                        vreinterpretq_s8_u8(vandq_u8(*bits, two_bits)),
                        load_i8(ab, Q8_K_QS + element),
                    );
                    acc = vmlaq_n_s32(acc, p, i32::from(wb[element / 16] & 0x0f));
                }
                q = [vshrq_n_u8::<2>(q[0]), vshrq_n_u8::<2>(q[1])];
            }
        }
        let da = q8_k_scale(ab);
        let (dw, dmin) = (da * f16_at(wb, 80), da * f16_at(wb, 82));
        sum += dw * vaddvq_s32(acc) as f32 - dmin * weighted_bsums(ab, mins) as f32;
    }
    sum
}

/// Q3_K's 16 six-bit scales (biased by 32) from their 12 packed bytes.
#[inline]
fn unpack_scales_q3_k(packed: &[u8]) -> [i32; 16] {
    std::array::from_fn(|j| {
        let low = if j < 8 {
            packed[j] & 0x0f
        } else {
            packed[j - 8] >> 4
        };
        let high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        i32::from(low | (high << 4)) - 32
    })
}

/// Q3_K (110 bytes: 32 bytes of high bits, 64 of 2-bit quants, 12 packed scales, d) · Q8_K.
/// Element 128 h + 32 s + l: low bits as Q2_K, value (low | high << 2) - 4 where `high` is bit
/// 4h + s of hmask[l]; the -4 goes through bsums.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn q3_k_q8_k<D: Int8Dot>(d: D, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0.0f32;
    let (two_bits, one) = (vdupq_n_u8(3), vdupq_n_u8(1));
    for (wb, ab) in rows(n, w, 110, a) {
        let scales = unpack_scales_q3_k(&wb[96..108]);
        let mut hmask = [load_u8(wb, 0), load_u8(wb, 16)];
        let mut acc = 0i32;
        for h in 0..2 {
            let mut q = [load_u8(wb, 32 + 32 * h), load_u8(wb, 48 + 32 * h)];
            for s in 0..4 {
                for part in 0..2 {
                    let element = 128 * h + 32 * s + 16 * part;
                    let high = vshlq_n_u8::<2>(vandq_u8(hmask[part], one));
                    let value = vorrq_u8(vandq_u8(q[part], two_bits), high);
                    let p = d.dot(
                        vdupq_n_s32(0),
                        vreinterpretq_s8_u8(value),
                        load_i8(ab, Q8_K_QS + element),
                    );
                    let bsum_at = Q8_K_BSUMS + 2 * (element / 16);
                    let bsum = i32::from(i16::from_le_bytes([ab[bsum_at], ab[bsum_at + 1]]));
                    acc += scales[element / 16] * (vaddvq_s32(p) - 4 * bsum);
                }
                q = [vshrq_n_u8::<2>(q[0]), vshrq_n_u8::<2>(q[1])];
                hmask = [vshrq_n_u8::<1>(hmask[0]), vshrq_n_u8::<1>(hmask[1])];
            }
        }
        sum += q8_k_scale(ab) * f16_at(wb, 108) * acc as f32;
    }
    sum
}
