//! Dot products of the 32-element formats with their activation type, generic over the int8
//! step ([`Int8Dot`]) so that the NEON and dotprod tiers share them: Q4_0, Q5_0, Q8_0 with
//! Q8_0; Q4_1, Q5_1 with Q8_1.
//!
//! Each block's integer dot is exact; the block's scale product multiplies it into a vector of
//! f32 partial sums (two, alternating blocks, for instruction-level parallelism), added up at
//! the end. The float rounding therefore differs slightly from the scalar reference's order.

use std::arch::aarch64::*;

use super::simd::{Int8Dot, expand_bits, f16_at, load_i8, load_u8};

const QK: usize = 32;
const Q8_0_BYTES: usize = 34;
const Q8_1_BYTES: usize = 36;

/// The blocks of a weight row and of an activation row for `n` elements (whole blocks only).
/// Panics if a row is too short: the table entries are safe functions, so lengths are checked.
fn rows<'a>(
    n: usize,
    w: &'a [u8],
    w_block: usize,
    a: &'a [u8],
    a_block: usize,
) -> (
    std::slice::ChunksExact<'a, u8>,
    std::slice::ChunksExact<'a, u8>,
) {
    let blocks = n / QK;
    (
        w[..blocks * w_block].chunks_exact(w_block),
        a[..blocks * a_block].chunks_exact(a_block),
    )
}

/// Sums, over blocks, `scale(block) * int_dot(block)`, where `block_dot` gives both.
#[target_feature(enable = "neon")]
#[inline]
fn sum_blocks<'a>(
    blocks: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    mut block_dot: impl FnMut(&[u8], &[u8]) -> (int32x4_t, f32),
) -> f32 {
    let mut acc = [vdupq_n_f32(0.0); 2];
    for (i, (wb, ab)) in blocks.enumerate() {
        let (dot, scale) = block_dot(wb, ab);
        acc[i & 1] = vmlaq_n_f32(acc[i & 1], vcvtq_f32_s32(dot), scale);
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1]))
}

/// The 32 quants of a 4-bit block as unsigned bytes (low nibbles are elements 0..16).
#[target_feature(enable = "neon")]
#[inline]
fn nibbles(wb: &[u8], at: usize) -> (int8x16_t, int8x16_t) {
    let q = load_u8(wb, at);
    let low = vandq_u8(q, vdupq_n_u8(0x0f));
    let high = vshrq_n_u8::<4>(q);
    (vreinterpretq_s8_u8(low), vreinterpretq_s8_u8(high))
}

/// The integer dot of 32 weight quants with a Q8 block's quants at `ab[at..at + 32]`.
#[inline(always)]
fn dot32<D: Int8Dot>(d: D, (low, high): (int8x16_t, int8x16_t), ab: &[u8], at: usize) -> int32x4_t {
    // SAFETY: NEON is in the aarch64 baseline (the loads are bounds-checked).
    let (a_low, a_high, zero) = unsafe { (load_i8(ab, at), load_i8(ab, at + 16), vdupq_n_s32(0)) };
    d.dot(d.dot(zero, low, a_low), high, a_high)
}

/// Q4_0 (18 bytes: d, 16 nibble pairs; weight = d * (q - 8)) · Q8_0.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn q4_0_q8_0<D: Int8Dot>(d: D, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = rows(n, w, 18, a, Q8_0_BYTES);
    let eight = vdupq_n_s8(8);
    sum_blocks(w.zip(a), |wb, ab| {
        let (low, high) = nibbles(wb, 2);
        let q = (vsubq_s8(low, eight), vsubq_s8(high, eight));
        (dot32(d, q, ab, 2), f16_at(wb, 0) * f16_at(ab, 0))
    })
}

/// Q5_0 (22 bytes: d, 32 fifth bits, 16 nibble pairs; weight = d * (q - 16)) · Q8_0.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn q5_0_q8_0<D: Int8Dot>(d: D, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = rows(n, w, 22, a, Q8_0_BYTES);
    let sixteen = vdupq_n_s8(16);
    sum_blocks(w.zip(a), |wb, ab| {
        let (low, high) = nibbles(wb, 6);
        let (bit_low, bit_high) = expand_bits(u32::from_le_bytes([wb[2], wb[3], wb[4], wb[5]]), 16);
        let q = (
            vsubq_s8(vorrq_s8(low, vreinterpretq_s8_u8(bit_low)), sixteen),
            vsubq_s8(vorrq_s8(high, vreinterpretq_s8_u8(bit_high)), sixteen),
        );
        (dot32(d, q, ab, 2), f16_at(wb, 0) * f16_at(ab, 0))
    })
}

/// Q8_0 (34 bytes: d, 32 signed quants) · Q8_0.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn q8_0_q8_0<D: Int8Dot>(d: D, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = rows(n, w, Q8_0_BYTES, a, Q8_0_BYTES);
    sum_blocks(w.zip(a), |wb, ab| {
        let q = (load_i8(wb, 2), load_i8(wb, 18));
        (dot32(d, q, ab, 2), f16_at(wb, 0) * f16_at(ab, 0))
    })
}

/// Q4_1 (20 bytes: d, m, 16 nibble pairs; weight = d * q + m) · Q8_1 (d, s = d * Σq, quants):
/// Σ = d_w d_a Σ q_w q_a + m_w s_a per block.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn q4_1_q8_1<D: Int8Dot>(d: D, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = rows(n, w, 20, a, Q8_1_BYTES);
    let mut offsets = 0.0f32;
    let scaled = sum_blocks(w.zip(a), |wb, ab| {
        offsets += f16_at(wb, 2) * f16_at(ab, 2);
        (
            dot32(d, nibbles(wb, 4), ab, 4),
            f16_at(wb, 0) * f16_at(ab, 0),
        )
    });
    scaled + offsets
}

/// Q5_1 (24 bytes: d, m, 32 fifth bits, 16 nibble pairs; weight = d * q + m) · Q8_1.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn q5_1_q8_1<D: Int8Dot>(d: D, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = rows(n, w, 24, a, Q8_1_BYTES);
    let mut offsets = 0.0f32;
    let scaled = sum_blocks(w.zip(a), |wb, ab| {
        offsets += f16_at(wb, 2) * f16_at(ab, 2);
        let (low, high) = nibbles(wb, 8);
        let (bit_low, bit_high) = expand_bits(u32::from_le_bytes([wb[4], wb[5], wb[6], wb[7]]), 16);
        let q = (
            vorrq_s8(low, vreinterpretq_s8_u8(bit_low)),
            vorrq_s8(high, vreinterpretq_s8_u8(bit_high)),
        );
        (dot32(d, q, ab, 4), f16_at(wb, 0) * f16_at(ab, 0))
    });
    scaled + offsets
}
