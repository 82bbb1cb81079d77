//! Activation quantizers with NEON: Q8_0, Q8_1, Q8_K, F16 and BF16 rows, byte-identical to the
//! scalar reference (`crate::quant`, itself ggml's reference quantizers).
//!
//! The reference rounds Q8_0/Q8_1 with `roundf` (half away from zero: `fcvtas`, not ggml's
//! own NEON `fcvtns`) and Q8_K with `nearest_int` (ties to even: `fcvtns`). Where a block holds
//! values whose scalar conversion is platform-specific (NaN, infinities, a scale so small that
//! its inverse overflows), the block goes to the scalar reference, which defines those bytes.

use std::arch::aarch64::*;

use super::simd::{f32x8_to_f16, load_f32, narrow_to_i8, store_u8};
use crate::quant::{
    BlockFormat, f32_to_bf16, f32_to_f16, quantize_block_q8_0, quantize_block_q8_1,
    quantize_block_q8_k,
};

const QK8: usize = 32;
const Q8_0_BYTES: usize = 34;
const Q8_1_BYTES: usize = 36;
const QK_K: usize = crate::dtype::QK_K;
const Q8_K_BYTES: usize = 292;

/// Panics unless `x` is whole blocks and `out` holds their bytes (a caller's bug, not data).
fn check_lengths(what: &str, x: &[f32], block: usize, out: &[u8], block_bytes: usize) {
    assert!(
        x.len().is_multiple_of(block) && out.len() == x.len() / block * block_bytes,
        "{what}: {} floats into {} bytes is not whole {block}-element blocks",
        x.len(),
        out.len()
    );
}

/// The largest |x| of 32 floats, NaN if any is NaN.
#[target_feature(enable = "neon")]
#[inline]
fn abs_max32(v: &[float32x4_t; 8]) -> f32 {
    let mut m = vabsq_f32(v[0]);
    for lane in &v[1..] {
        m = vmaxq_f32(m, vabsq_f32(*lane));
    }
    vmaxvq_f32(m)
}

/// Rounds `v * inverse` half away from zero into 32 bytes at `out[at..]`; returns their sum.
#[target_feature(enable = "neon")]
#[inline]
fn round_q8_32(v: &[float32x4_t; 8], inverse: f32, out: &mut [u8], at: usize) -> i32 {
    let q: [int32x4_t; 8] = std::array::from_fn(|j| vcvtaq_s32_f32(vmulq_n_f32(v[j], inverse)));
    let low = narrow_to_i8([q[0], q[1], q[2], q[3]]);
    let high = narrow_to_i8([q[4], q[5], q[6], q[7]]);
    store_u8(out, at, vreinterpretq_u8_s8(low));
    store_u8(out, at + 16, vreinterpretq_u8_s8(high));
    let sum = q
        .iter()
        .fold(vdupq_n_s32(0), |acc, lane| vaddq_s32(acc, *lane));
    vaddvq_s32(sum)
}

/// The scale and its inverse for a Q8_0/Q8_1 block, or `None` where the block must go to the
/// scalar reference (a NaN, or an inverse scale that overflows to infinity).
fn q8_scale(amax: f32) -> Option<(f32, f32)> {
    let d = amax / 127.0;
    let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
    (!amax.is_nan() && inverse.is_finite()).then_some((d, inverse))
}

#[target_feature(enable = "neon")]
fn quantize_row_q8_0_neon(x: &[f32], out: &mut [u8]) {
    check_lengths("Q8_0 activations", x, QK8, out, Q8_0_BYTES);
    for (xb, ob) in x
        .as_chunks::<QK8>()
        .0
        .iter()
        .zip(out.chunks_exact_mut(Q8_0_BYTES))
    {
        let v: [float32x4_t; 8] = std::array::from_fn(|j| load_f32(xb, 4 * j));
        match q8_scale(abs_max32(&v)) {
            Some((d, inverse)) => {
                ob[..2].copy_from_slice(&f32_to_f16(d).to_bits().to_le_bytes());
                round_q8_32(&v, inverse, ob, 2);
            }
            None => {
                ob.copy_from_slice(&quantize_block_q8_0(xb).to_bytes());
            }
        }
    }
}

#[target_feature(enable = "neon")]
fn quantize_row_q8_1_neon(x: &[f32], out: &mut [u8]) {
    check_lengths("Q8_1 activations", x, QK8, out, Q8_1_BYTES);
    for (xb, ob) in x
        .as_chunks::<QK8>()
        .0
        .iter()
        .zip(out.chunks_exact_mut(Q8_1_BYTES))
    {
        let v: [float32x4_t; 8] = std::array::from_fn(|j| load_f32(xb, 4 * j));
        match q8_scale(abs_max32(&v)) {
            Some((d, inverse)) => {
                let sum = round_q8_32(&v, inverse, ob, 4);
                ob[..2].copy_from_slice(&f32_to_f16(d).to_bits().to_le_bytes());
                ob[2..4].copy_from_slice(&f32_to_f16(sum as f32 * d).to_bits().to_le_bytes());
            }
            None => {
                ob.copy_from_slice(&quantize_block_q8_1(xb).to_bytes());
            }
        }
    }
}

/// The value of largest magnitude of a Q8_K block whose largest magnitude is `amax` (finite,
/// non-zero), the first one where both signs reach it: as the reference picks it.
#[target_feature(enable = "neon")]
#[inline]
fn signed_max(x: &[f32], v: &[float32x4_t; 64], amax: f32) -> f32 {
    let mut high = v[0];
    let mut low = v[0];
    for lane in &v[1..] {
        high = vmaxq_f32(high, *lane);
        low = vminq_f32(low, *lane);
    }
    let (high, low) = (vmaxvq_f32(high), vminvq_f32(low));
    match (high == amax, -low == amax) {
        (true, false) => high,
        (false, true) => low,
        // Both signs reach amax (rare): the first occurrence wins.
        _ => x.iter().copied().find(|v| v.abs() == amax).unwrap_or(high),
    }
}

#[target_feature(enable = "neon")]
fn quantize_row_q8_k_neon(x: &[f32], out: &mut [u8]) {
    check_lengths("Q8_K activations", x, QK_K, out, Q8_K_BYTES);
    for (xb, ob) in x
        .as_chunks::<QK_K>()
        .0
        .iter()
        .zip(out.chunks_exact_mut(Q8_K_BYTES))
    {
        let v: [float32x4_t; 64] = std::array::from_fn(|j| load_f32(xb, 4 * j));
        let mut m = vabsq_f32(v[0]);
        for lane in &v[1..] {
            m = vmaxq_f32(m, vabsq_f32(*lane));
        }
        let amax = vmaxvq_f32(m);
        // Zero, NaN and infinite blocks, and scales whose inverse overflows: the reference.
        let iscale = if amax.is_finite() && amax != 0.0 {
            -127.0 / signed_max(xb, &v, amax)
        } else {
            f32::NAN
        };
        if !iscale.is_finite() {
            ob.copy_from_slice(&quantize_block_q8_k(xb).to_bytes());
            continue;
        }
        ob[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
        let limit = vdupq_n_s32(127);
        for group in 0..QK_K / 16 {
            let q: [int32x4_t; 4] = std::array::from_fn(|j| {
                let scaled = vmulq_n_f32(v[4 * group + j], iscale);
                vminq_s32(vcvtnq_s32_f32(scaled), limit)
            });
            store_u8(ob, 4 + 16 * group, vreinterpretq_u8_s8(narrow_to_i8(q)));
            let sum = vaddvq_s32(vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3])));
            let at = 4 + QK_K + 2 * group;
            ob[at..at + 2].copy_from_slice(&(sum as i16).to_le_bytes());
        }
    }
}

#[target_feature(enable = "neon")]
fn convert_row_f16_neon(x: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 2 * x.len(), "F16 activations: output size");
    let (chunks, tail) = x.as_chunks::<8>();
    for (i, chunk) in chunks.iter().enumerate() {
        let h = f32x8_to_f16(load_f32(chunk, 0), load_f32(chunk, 4));
        store_u8(out, 16 * i, vreinterpretq_u8_u16(h));
    }
    let done = 8 * chunks.len();
    for (i, &v) in tail.iter().enumerate() {
        let at = 2 * (done + i);
        out[at..at + 2].copy_from_slice(&f32_to_f16(v).to_bits().to_le_bytes());
    }
}

#[target_feature(enable = "neon")]
fn convert_row_bf16_neon(x: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 2 * x.len(), "BF16 activations: output size");
    let (chunks, tail) = x.as_chunks::<4>();
    let (quiet_bit, abs_mask) = (vdup_n_u16(0x40), vdupq_n_u32(0x7fff_ffff));
    let (infinity, half_minus_one) = (vdupq_n_u32(0x7f80_0000), vdupq_n_u32(0x7fff));
    for (i, chunk) in chunks.iter().enumerate() {
        let bits = vreinterpretq_u32_f32(load_f32(chunk, 0));
        // Round to nearest even on the raw bits; NaNs keep their top bits, made quiet.
        let lowest_kept = vandq_u32(vshrq_n_u32::<16>(bits), vdupq_n_u32(1));
        let rounded = vshrn_n_u32::<16>(vaddq_u32(bits, vaddq_u32(half_minus_one, lowest_kept)));
        let nan = vorr_u16(vshrn_n_u32::<16>(bits), quiet_bit);
        let is_nan = vmovn_u32(vcgtq_u32(vandq_u32(bits, abs_mask), infinity));
        let h = vbsl_u16(is_nan, nan, rounded);
        let at = 8 * i;
        out[at..at + 8].copy_from_slice(&vget_lane_u64::<0>(vreinterpret_u64_u16(h)).to_le_bytes());
    }
    let done = 4 * chunks.len();
    for (i, &v) in tail.iter().enumerate() {
        let at = 2 * (done + i);
        out[at..at + 2].copy_from_slice(&f32_to_bf16(v).to_le_bytes());
    }
}

/// Q8_0 activations (`x.len()` a multiple of 32; `out` its Q8_0 bytes).
pub(super) fn quantize_row_q8_0(x: &[f32], out: &mut [u8]) {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { quantize_row_q8_0_neon(x, out) }
}

/// Q8_1 activations (`x.len()` a multiple of 32; `out` its Q8_1 bytes).
pub(super) fn quantize_row_q8_1(x: &[f32], out: &mut [u8]) {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { quantize_row_q8_1_neon(x, out) }
}

/// Q8_K activations (`x.len()` a multiple of 256; `out` its Q8_K bytes).
pub(super) fn quantize_row_q8_k(x: &[f32], out: &mut [u8]) {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { quantize_row_q8_k_neon(x, out) }
}

/// F16 activations (`out` holds `2 * x.len()` bytes).
pub(super) fn convert_row_f16(x: &[f32], out: &mut [u8]) {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { convert_row_f16_neon(x, out) }
}

/// BF16 activations (`out` holds `2 * x.len()` bytes).
pub(super) fn convert_row_bf16(x: &[f32], out: &mut [u8]) {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { convert_row_bf16_neon(x, out) }
}
