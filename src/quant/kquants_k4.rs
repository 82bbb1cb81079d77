//! Q4_K and Q5_K: 256-element super-blocks of 8 sub-blocks of 32, each with a 6-bit scale and
//! a 6-bit min against f16 super-scales `d` and `dmin`.
//!
//! Mirrors ggml's `quantize_row_q4_K_reference` / `quantize_row_q5_K_reference` and their
//! `dequantize_row_*` (QK_K = 256) for one super-block, operation for operation.

use super::blocks::{BlockQ4K, BlockQ5K, impl_block_format};
use super::c_math::nearest_int;
use super::float::{f16_to_f32, f32_to_f16};
use super::kquants_helpers::{Qkx2Search, get_scale_min_k4, pack_scale_min_k4};
use super::kquants_lanes::{Isa, make_qkx2_quants};
use super::rows::typed_rows;
use crate::dtype::QK_K;

/// The 6-bit sub-block scales of Q4_K/Q5_K: `(d, dmin, packed scales)` from the per-sub-block
/// `scales` and `mins` found by `make_qkx2_quants`.
fn quantize_scale_mins_k4(scales: &[f32; 8], mins: &[f32; 8]) -> (half::f16, half::f16, [u8; 12]) {
    let max_scale = scales
        .iter()
        .fold(0.0f32, |acc, &s| if s > acc { s } else { acc });
    let max_min = mins
        .iter()
        .fold(0.0f32, |acc, &m| if m > acc { m } else { acc });
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    // ggml stores nearest_int into a uint8_t before MIN(63, .).
    let ls: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_scale * scales[j]) as u8).min(63));
    let lm: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_min * mins[j]) as u8).min(63));
    (
        f32_to_f16(max_scale / 63.0),
        f32_to_f16(max_min / 63.0),
        pack_scale_min_k4(&ls, &lm),
    )
}

/// The Q4_K/Q5_K first pass: per 32-element sub-block, weights `rms(x) + |x|` and a
/// `make_qkx2_quants` fit. Returns (scales, mins), filling `levels`.
fn fit_sub_blocks_k4(
    x: &[f32; QK_K],
    search: &Qkx2Search,
    levels: &mut [u8; QK_K],
) -> ([f32; 8], [f32; 8]) {
    let isa = Isa::best();
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    let sub_levels = levels.as_chunks_mut::<32>().0;
    for (j, (xs, ls)) in x.as_chunks::<32>().0.iter().zip(sub_levels).enumerate() {
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|l| av_x + xs[l].abs());
        (scales[j], mins[j]) = make_qkx2_quants(isa, xs, &weights, ls, search);
    }
    (scales, mins)
}

/// Re-derives the quants of each sub-block from the rounded scales (levels `0..=nmax`);
/// sub-blocks whose scale rounds to zero keep their first-pass quants, as in ggml.
fn requantize_k4(
    x: &[f32; QK_K],
    d: half::f16,
    dmin: half::f16,
    packed: &[u8; 12],
    nmax: i32,
    levels: &mut [u8; QK_K],
) {
    for j in 0..QK_K / 32 {
        let (sc, m) = get_scale_min_k4(j, packed);
        let dl = f16_to_f32(d) * f32::from(sc);
        if dl == 0.0 {
            continue;
        }
        let dm = f16_to_f32(dmin) * f32::from(m);
        for ii in 0..32 {
            let l = nearest_int((x[32 * j + ii] + dm) / dl);
            levels[32 * j + ii] = l.clamp(0, nmax) as u8;
        }
    }
}

pub fn quantize_block_q4_k(x: &[f32; QK_K]) -> BlockQ4K {
    let search = Qkx2Search {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    let mut levels = [0u8; QK_K];
    let (scales, mins) = fit_sub_blocks_k4(x, &search, &mut levels);
    let (d, dmin, packed) = quantize_scale_mins_k4(&scales, &mins);
    requantize_k4(x, d, dmin, &packed, 15, &mut levels);
    let mut qs = [0u8; QK_K / 2];
    for (j, chunk) in qs.chunks_exact_mut(32).enumerate() {
        for (l, q) in chunk.iter_mut().enumerate() {
            *q = levels[64 * j + l] | (levels[64 * j + l + 32] << 4);
        }
    }
    BlockQ4K {
        d,
        dmin,
        scales: packed,
        qs,
    }
}

pub fn dequantize_block_q4_k(b: &BlockQ4K, y: &mut [f32; QK_K]) {
    let d = f16_to_f32(b.d);
    let min = f16_to_f32(b.dmin);
    for (j, q) in b.qs.chunks_exact(32).enumerate() {
        let (sc, m) = get_scale_min_k4(2 * j, &b.scales);
        let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
        let (sc, m) = get_scale_min_k4(2 * j + 1, &b.scales);
        let (d2, m2) = (d * f32::from(sc), min * f32::from(m));
        for l in 0..32 {
            y[64 * j + l] = d1 * f32::from(q[l] & 0x0f) - m1;
            y[64 * j + 32 + l] = d2 * f32::from(q[l] >> 4) - m2;
        }
    }
}

pub fn quantize_block_q5_k(x: &[f32; QK_K]) -> BlockQ5K {
    let search = Qkx2Search {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    let mut levels = [0u8; QK_K];
    let (scales, mins) = fit_sub_blocks_k4(x, &search, &mut levels);
    let (d, dmin, packed) = quantize_scale_mins_k4(&scales, &mins);
    requantize_k4(x, d, dmin, &packed, 31, &mut levels);
    // Low nibbles as in Q4_K; bit 4 of quant (64 n + j) in bit 2n of qh[j], of (64 n + 32 + j)
    // in bit 2n + 1.
    let mut qh = [0u8; QK_K / 8];
    let mut qs = [0u8; QK_K / 2];
    for (n, chunk) in qs.chunks_exact_mut(32).enumerate() {
        for (j, q) in chunk.iter_mut().enumerate() {
            let mut l1 = levels[64 * n + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= 1 << (2 * n);
            }
            let mut l2 = levels[64 * n + j + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= 2 << (2 * n);
            }
            *q = l1 | (l2 << 4);
        }
    }
    BlockQ5K {
        d,
        dmin,
        scales: packed,
        qh,
        qs,
    }
}

pub fn dequantize_block_q5_k(b: &BlockQ5K, y: &mut [f32; QK_K]) {
    let d = f16_to_f32(b.d);
    let min = f16_to_f32(b.dmin);
    for (j, ql) in b.qs.chunks_exact(32).enumerate() {
        let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
        let (sc, m) = get_scale_min_k4(2 * j, &b.scales);
        let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
        let (sc, m) = get_scale_min_k4(2 * j + 1, &b.scales);
        let (d2, m2) = (d * f32::from(sc), min * f32::from(m));
        for l in 0..32 {
            let h1 = if b.qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if b.qh[l] & u2 != 0 { 16 } else { 0 };
            y[64 * j + l] = d1 * f32::from((ql[l] & 0x0f) + h1) - m1;
            y[64 * j + 32 + l] = d2 * f32::from((ql[l] >> 4) + h2) - m2;
        }
    }
}

impl_block_format!(BlockQ4K, quantize_block_q4_k, dequantize_block_q4_k);
impl_block_format!(BlockQ5K, quantize_block_q5_k, dequantize_block_q5_k);

typed_rows!(BlockQ4K, quantize_row_q4_k, dequantize_row_q4_k, "Q4_K");
typed_rows!(BlockQ5K, quantize_row_q5_k, dequantize_row_q5_k, "Q5_K");
