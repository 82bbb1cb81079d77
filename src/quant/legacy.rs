//! The legacy 32-element formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the activation format Q8_1.
//!
//! Each function mirrors ggml's `quantize_row_*_reference` / `dequantize_row_*` for one block,
//! operation for operation in f32 (no FMA, same order), so results are bit-identical.

use super::blocks::{
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, impl_block_format,
};
use super::c_math::{c_f32_to_int, c_roundf};
use super::float::{f16_to_f32, f32_to_f16};
use super::rows::typed_rows;

const QK: usize = 32;

/// The value of largest magnitude (first one wins ties), as `max` in ggml's symmetric formats.
fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// (min, max) as ggml's asymmetric formats find them, starting from (FLT_MAX, -FLT_MAX).
fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// ggml's `d ? 1.0f/d : 0.0f`.
fn inverse_or_zero(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// C's `MIN(limit, (int8_t)(x))` stored into a `uint8_t`.
fn trunc_i8_capped(x: f32, limit: i32) -> u8 {
    let v = i32::from(c_f32_to_int(x) as i8);
    (if limit < v { limit } else { v }) as u8
}

pub fn quantize_block_q4_0(x: &[f32; QK]) -> BlockQ4_0 {
    let max = signed_absmax(x);
    let d = max / -8.0;
    let id = inverse_or_zero(d);
    let mut qs = [0u8; QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        let xi0 = trunc_i8_capped(x[j] * id + 8.5, 15);
        let xi1 = trunc_i8_capped(x[j + QK / 2] * id + 8.5, 15);
        *q = xi0 | (xi1 << 4);
    }
    BlockQ4_0 {
        d: f32_to_f16(d),
        qs,
    }
}

pub fn dequantize_block_q4_0(b: &BlockQ4_0, y: &mut [f32; QK]) {
    let d = f16_to_f32(b.d);
    for (j, &q) in b.qs.iter().enumerate() {
        y[j] = (i32::from(q & 0x0f) - 8) as f32 * d;
        y[j + QK / 2] = (i32::from(q >> 4) - 8) as f32 * d;
    }
}

pub fn quantize_block_q4_1(x: &[f32; QK]) -> BlockQ4_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse_or_zero(d);
    let mut qs = [0u8; QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        let xi0 = trunc_i8_capped((x[j] - min) * id + 0.5, 15);
        let xi1 = trunc_i8_capped((x[j + QK / 2] - min) * id + 0.5, 15);
        *q = xi0 | (xi1 << 4);
    }
    BlockQ4_1 {
        d: f32_to_f16(d),
        m: f32_to_f16(min),
        qs,
    }
}

pub fn dequantize_block_q4_1(b: &BlockQ4_1, y: &mut [f32; QK]) {
    let d = f16_to_f32(b.d);
    let m = f16_to_f32(b.m);
    for (j, &q) in b.qs.iter().enumerate() {
        y[j] = f32::from(q & 0x0f) * d + m;
        y[j + QK / 2] = f32::from(q >> 4) * d + m;
    }
}

/// Packs 32 five-bit quants: low nibbles into `qs`, bit 4 of quant j into bit j of `qh`.
fn pack_5bit(l: &[u8; QK]) -> ([u8; 4], [u8; QK / 2]) {
    let mut qh = 0u32;
    let mut qs = [0u8; QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        let (xi0, xi1) = (l[j], l[j + QK / 2]);
        *q = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
        qh |= u32::from((xi0 & 0x10) >> 4) << j;
        qh |= u32::from((xi1 & 0x10) >> 4) << (j + QK / 2);
    }
    (qh.to_le_bytes(), qs)
}

/// The 5-bit quants of a Q5_0/Q5_1 block, in element order.
fn unpack_5bit(qh: [u8; 4], qs: &[u8; QK / 2]) -> [u8; QK] {
    let qh = u32::from_le_bytes(qh);
    let mut l = [0u8; QK];
    for (j, &q) in qs.iter().enumerate() {
        let xh_0 = (((qh >> j) << 4) & 0x10) as u8;
        let xh_1 = ((qh >> (j + 12)) & 0x10) as u8;
        l[j] = (q & 0x0f) | xh_0;
        l[j + QK / 2] = (q >> 4) | xh_1;
    }
    l
}

pub fn quantize_block_q5_0(x: &[f32; QK]) -> BlockQ5_0 {
    let max = signed_absmax(x);
    let d = max / -16.0;
    let id = inverse_or_zero(d);
    let l: [u8; QK] = std::array::from_fn(|j| trunc_i8_capped(x[j] * id + 16.5, 31));
    let (qh, qs) = pack_5bit(&l);
    BlockQ5_0 {
        d: f32_to_f16(d),
        qh,
        qs,
    }
}

pub fn dequantize_block_q5_0(b: &BlockQ5_0, y: &mut [f32; QK]) {
    let d = f16_to_f32(b.d);
    for (out, q) in y.iter_mut().zip(unpack_5bit(b.qh, &b.qs)) {
        *out = (i32::from(q) - 16) as f32 * d;
    }
}

pub fn quantize_block_q5_1(x: &[f32; QK]) -> BlockQ5_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse_or_zero(d);
    // ggml casts straight to uint8_t here, without the MIN of the other formats.
    let l: [u8; QK] = std::array::from_fn(|j| c_f32_to_int((x[j] - min) * id + 0.5) as u8);
    let (qh, qs) = pack_5bit(&l);
    BlockQ5_1 {
        d: f32_to_f16(d),
        m: f32_to_f16(min),
        qh,
        qs,
    }
}

pub fn dequantize_block_q5_1(b: &BlockQ5_1, y: &mut [f32; QK]) {
    let d = f16_to_f32(b.d);
    let m = f16_to_f32(b.m);
    for (out, q) in y.iter_mut().zip(unpack_5bit(b.qh, &b.qs)) {
        *out = f32::from(q) * d + m;
    }
}

/// (d, 1/d or 0) of the 8-bit formats: d = amax / 127.
fn q8_scale(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    for &v in x {
        // C's MAX(amax, fabsf(v)).
        amax = if amax > v.abs() { amax } else { v.abs() };
    }
    let d = amax / 127.0;
    (d, inverse_or_zero(d))
}

pub fn quantize_block_q8_0(x: &[f32; QK]) -> BlockQ8_0 {
    let (d, id) = q8_scale(x);
    let qs = std::array::from_fn(|j| c_f32_to_int(c_roundf(x[j] * id)) as i8);
    BlockQ8_0 {
        d: f32_to_f16(d),
        qs,
    }
}

pub fn dequantize_block_q8_0(b: &BlockQ8_0, y: &mut [f32; QK]) {
    let d = f16_to_f32(b.d);
    for (out, &q) in y.iter_mut().zip(&b.qs) {
        *out = f32::from(q) * d;
    }
}

pub fn quantize_block_q8_1(x: &[f32; QK]) -> BlockQ8_1 {
    let (d, id) = q8_scale(x);
    let qs: [i8; QK] = std::array::from_fn(|j| c_f32_to_int(c_roundf(x[j] * id)) as i8);
    let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
    BlockQ8_1 {
        d: f32_to_f16(d),
        s: f32_to_f16(sum as f32 * d),
        qs,
    }
}

/// Q8_1 has no `to_float` in ggml; by the format's definition a weight is `d * q` (`s` is only
/// a precomputed sum for dot products).
pub fn dequantize_block_q8_1(b: &BlockQ8_1, y: &mut [f32; QK]) {
    let d = f16_to_f32(b.d);
    for (out, &q) in y.iter_mut().zip(&b.qs) {
        *out = f32::from(q) * d;
    }
}

impl_block_format!(BlockQ4_0, quantize_block_q4_0, dequantize_block_q4_0);
impl_block_format!(BlockQ4_1, quantize_block_q4_1, dequantize_block_q4_1);
impl_block_format!(BlockQ5_0, quantize_block_q5_0, dequantize_block_q5_0);
impl_block_format!(BlockQ5_1, quantize_block_q5_1, dequantize_block_q5_1);
impl_block_format!(BlockQ8_0, quantize_block_q8_0, dequantize_block_q8_0);
impl_block_format!(BlockQ8_1, quantize_block_q8_1, dequantize_block_q8_1);

typed_rows!(BlockQ4_0, quantize_row_q4_0, dequantize_row_q4_0, "Q4_0");
typed_rows!(BlockQ4_1, quantize_row_q4_1, dequantize_row_q4_1, "Q4_1");
typed_rows!(BlockQ5_0, quantize_row_q5_0, dequantize_row_q5_0, "Q5_0");
typed_rows!(BlockQ5_1, quantize_row_q5_1, dequantize_row_q5_1, "Q5_1");
typed_rows!(BlockQ8_0, quantize_row_q8_0, dequantize_row_q8_0, "Q8_0");
typed_rows!(BlockQ8_1, quantize_row_q8_1, dequantize_row_q8_1, "Q8_1");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_uses_the_signed_extreme_and_saturates() {
        let mut x = [0.0f32; QK];
        x[3] = -4.0;
        x[5] = 2.0;
        x[20] = 3.0;
        let b = quantize_block_q4_0(&x);
        // d = max / -8 with max = -4.
        assert_eq!(b.d.to_f32(), 0.5);
        // -4 * (1 / 0.5) + 8.5 = 0.5 -> 0; 2 * 2 + 8.5 = 12.5 -> 12; 3 * 2 + 8.5 = 14.5 -> 14.
        assert_eq!(b.qs[3] & 0x0f, 0);
        assert_eq!(b.qs[5] & 0x0f, 12);
        assert_eq!(b.qs[4] >> 4, 14);
        let mut y = [0.0f32; QK];
        dequantize_block_q4_0(&b, &mut y);
        assert_eq!((y[3], y[5], y[20], y[0]), (-4.0, 2.0, 3.0, 0.0));
    }

    #[test]
    fn q5_bits_round_trip() {
        let l: [u8; QK] = std::array::from_fn(|j| (j * 7 % 32) as u8);
        let (qh, qs) = pack_5bit(&l);
        assert_eq!(unpack_5bit(qh, &qs), l);
    }

    #[test]
    fn q8_1_sum_is_d_times_sum_of_quants() {
        let x: [f32; QK] = std::array::from_fn(|j| j as f32 - 10.0);
        let b = quantize_block_q8_1(&x);
        // amax is 21, so d = 21/127 and the largest element quantizes to 127.
        let d = 21.0f32 / 127.0;
        assert_eq!(b.d, f32_to_f16(d));
        assert_eq!(b.qs[31], 127);
        assert_eq!(b.qs[0], -60); // round(-10 * 127 / 21) = round(-60.48)
        let sum: i32 = b.qs.iter().map(|&q| i32::from(q)).sum();
        assert_eq!(b.s, f32_to_f16(sum as f32 * d));
    }
}
