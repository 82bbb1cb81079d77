//! K-quants with 256-element super-blocks and 16-element sub-blocks, Q2_K, Q3_K, Q6_K, and the
//! activation format Q8_K (Q4_K and Q5_K are in `kquants_k4.rs`).
//!
//! Each function mirrors ggml's `quantize_row_*_reference` / `dequantize_row_*` (QK_K = 256)
//! for one super-block, operation for operation, so results are bit-identical. The quantizers
//! quantize the sub-block scales to 4, 6 or 8 bits against an f16 super-scale, then re-derive
//! every quant from the *rounded* scales (the f16 round trip matters).

use super::blocks::{BlockQ2K, BlockQ3K, BlockQ6K, BlockQ8K, impl_block_format};
use super::c_math::nearest_int;
use super::float::{f16_to_f32, f32_to_f16};
use super::kquants_helpers::{Qkx2Search, make_q3_quants};
use super::kquants_lanes::{Isa, make_qkx2_quants, make_qx_quants_rmse1};
use super::rows::typed_rows;
use crate::dtype::QK_K;

/// Packs 2-bit quants (Q2_K, and the low bits of Q3_K): byte `l` of each 32-byte group holds
/// elements `l`, `l + 32`, `l + 64`, `l + 96` of its 128-element half.
fn pack_2bit(levels: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for j in (0..QK_K).step_by(128) {
        for l in 0..32 {
            qs[j / 4 + l] = levels[j + l]
                | (levels[j + l + 32] << 2)
                | (levels[j + l + 64] << 4)
                | (levels[j + l + 96] << 6);
        }
    }
    qs
}

pub fn quantize_block_q2_k(x: &[f32; QK_K]) -> BlockQ2K {
    const Q4SCALE: f32 = 15.0;
    let search = Qkx2Search {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let mut levels = [0u8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut mins = [0.0f32; 16];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    let isa = Isa::best();
    let sub_levels = levels.as_chunks_mut::<16>().0;
    for (j, (xs, ls)) in x.as_chunks::<16>().0.iter().zip(sub_levels).enumerate() {
        let weights: [f32; 16] = std::array::from_fn(|l| xs[l].abs());
        let (scale, min) = make_qkx2_quants(isa, xs, &weights, ls, &search);
        (scales[j], mins[j]) = (scale, min);
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let mut packed_scales = [0u8; 16];
    let d = if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for (p, &s) in packed_scales.iter_mut().zip(&scales) {
            *p = nearest_int(iscale * s) as u8;
        }
        f32_to_f16(max_scale / Q4SCALE)
    } else {
        f32_to_f16(0.0)
    };
    let dmin = if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for (p, &m) in packed_scales.iter_mut().zip(&mins) {
            *p = (i32::from(*p) | (nearest_int(iscale * m) << 4)) as u8;
        }
        f32_to_f16(max_min / Q4SCALE)
    } else {
        f32_to_f16(0.0)
    };

    for j in 0..QK_K / 16 {
        let dl = f16_to_f32(d) * f32::from(packed_scales[j] & 0x0f);
        if dl == 0.0 {
            continue;
        }
        let dm = f16_to_f32(dmin) * f32::from(packed_scales[j] >> 4);
        for ii in 0..16 {
            let l = nearest_int((x[16 * j + ii] + dm) / dl);
            levels[16 * j + ii] = l.clamp(0, 3) as u8;
        }
    }
    BlockQ2K {
        scales: packed_scales,
        qs: pack_2bit(&levels),
        d,
        dmin,
    }
}

pub fn dequantize_block_q2_k(b: &BlockQ2K, y: &mut [f32; QK_K]) {
    let d = f16_to_f32(b.d);
    let min = f16_to_f32(b.dmin);
    let mut out = 0;
    let mut is = 0;
    for half in 0..2 {
        let q = &b.qs[32 * half..32 * half + 32];
        for shift in [0, 2, 4, 6] {
            for group in [0, 16] {
                let sc = b.scales[is];
                is += 1;
                let dl = d * f32::from(sc & 0x0f);
                let ml = min * f32::from(sc >> 4);
                for l in 0..16 {
                    y[out] = dl * f32::from((q[group + l] >> shift) & 3) - ml;
                    out += 1;
                }
            }
        }
    }
}

/// Q3_K's 6-bit scale `j` (0..16), still biased by 32.
fn q3k_scale(scales: &[u8; 12], j: usize) -> i8 {
    let low = if j < 8 {
        scales[j] & 0x0f
    } else {
        scales[j - 8] >> 4
    };
    let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i8
}

pub fn quantize_block_q3_k(x: &[f32; QK_K]) -> BlockQ3K {
    let mut levels = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut max_scale = 0.0f32;
    let mut amax = 0.0f32;
    for j in 0..QK_K / 16 {
        scales[j] = make_q3_quants(&x[16 * j..16 * j + 16], 4, &mut levels[16 * j..16 * j + 16]);
        let scale = scales[j].abs();
        if scale > amax {
            amax = scale;
            max_scale = scales[j];
        }
    }

    let mut packed = [0u8; 12];
    let d = if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            // ggml stores nearest_int into an int8_t before clamping.
            let l = (i32::from(nearest_int(iscale * s) as i8).clamp(-32, 31) + 32) as u8;
            if j < 8 {
                packed[j] = l & 0x0f;
            } else {
                packed[j - 8] |= (l & 0x0f) << 4;
            }
            packed[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
        }
        f32_to_f16(1.0 / iscale)
    } else {
        f32_to_f16(0.0)
    };

    for j in 0..QK_K / 16 {
        let sc = i32::from(q3k_scale(&packed, j)) - 32;
        let dl = f16_to_f32(d) * sc as f32;
        if dl == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let l = nearest_int(x[16 * j + ii] / dl);
            levels[16 * j + ii] = (l.clamp(-4, 3) + 4) as i8;
        }
    }

    // The high bit of quant j goes to bit j / 32 of hmask[j % 32].
    let mut hmask = [0u8; QK_K / 8];
    let mut low = [0u8; QK_K];
    for (j, &l) in levels.iter().enumerate() {
        let mut l = l as u8;
        if l > 3 {
            hmask[j % 32] |= 1 << (j / 32);
            l -= 4;
        }
        low[j] = l;
    }
    BlockQ3K {
        hmask,
        qs: pack_2bit(&low),
        scales: packed,
        d,
    }
}

pub fn dequantize_block_q3_k(b: &BlockQ3K, y: &mut [f32; QK_K]) {
    let d_all = f16_to_f32(b.d);
    let mut out = 0;
    let mut is = 0;
    let mut m = 1u8;
    for half in 0..2 {
        let q = &b.qs[32 * half..32 * half + 32];
        for shift in [0, 2, 4, 6] {
            for group in [0, 16] {
                let dl = d_all * (i32::from(q3k_scale(&b.scales, is)) - 32) as f32;
                is += 1;
                for l in 0..16 {
                    let low = i32::from((q[group + l] >> shift) & 3);
                    let high_missing = if b.hmask[group + l] & m != 0 { 0 } else { 4 };
                    y[out] = dl * (low - high_missing) as f32;
                    out += 1;
                }
            }
            m <<= 1;
        }
    }
}

pub fn quantize_block_q6_k(x: &[f32; QK_K]) -> BlockQ6K {
    let mut levels = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    let isa = Isa::best();
    let sub_levels = levels.as_chunks_mut::<16>().0;
    for (ib, (xs, ls)) in x.as_chunks::<16>().0.iter().zip(sub_levels).enumerate() {
        let scale = make_qx_quants_rmse1(isa, xs, 32, ls);
        scales[ib] = scale;
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = scale;
        }
    }
    if max_abs_scale == 0.0 {
        return BlockQ6K {
            ql: [0; QK_K / 2],
            qh: [0; QK_K / 4],
            scales: [0; 16],
            d: f32_to_f16(0.0),
        };
    }

    let iscale = -128.0 / max_scale;
    let d = f32_to_f16(1.0 / iscale);
    // C's MIN(127, nearest_int(.)) stored into an int8_t.
    let packed: [i8; 16] =
        std::array::from_fn(|ib| nearest_int(iscale * scales[ib]).min(127) as i8);
    for j in 0..QK_K / 16 {
        let dl = f16_to_f32(d) * f32::from(packed[j]);
        if dl == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let l = nearest_int(x[16 * j + ii] / dl);
            levels[16 * j + ii] = (l.clamp(-32, 31) + 32) as i8;
        }
    }

    let mut ql = [0u8; QK_K / 2];
    let mut qh = [0u8; QK_K / 4];
    for half in 0..2 {
        let l_at = |k: usize| levels[128 * half + k] as u8;
        for l in 0..32 {
            let (q1, q2, q3, q4) = (l_at(l), l_at(l + 32), l_at(l + 64), l_at(l + 96));
            ql[64 * half + l] = (q1 & 0x0f) | ((q3 & 0x0f) << 4);
            ql[64 * half + l + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4);
            qh[32 * half + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
    BlockQ6K {
        ql,
        qh,
        scales: packed,
        d,
    }
}

pub fn dequantize_block_q6_k(b: &BlockQ6K, y: &mut [f32; QK_K]) {
    let d = f16_to_f32(b.d);
    for half in 0..2 {
        let ql = &b.ql[64 * half..64 * half + 64];
        let qh = &b.qh[32 * half..32 * half + 32];
        let sc = &b.scales[8 * half..8 * half + 8];
        let out = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            out[l] = d * f32::from(sc[is]) * f32::from(q1);
            out[l + 32] = d * f32::from(sc[is + 2]) * f32::from(q2);
            out[l + 64] = d * f32::from(sc[is + 4]) * f32::from(q3);
            out[l + 96] = d * f32::from(sc[is + 6]) * f32::from(q4);
        }
    }
}

/// ggml's `quantize_row_q8_K_reference`. For an all-zero block ggml leaves `bsums` unwritten;
/// here they are zero (the true sums).
pub fn quantize_block_q8_k(x: &[f32; QK_K]) -> BlockQ8K {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        return BlockQ8K {
            d: 0.0,
            qs: [0; QK_K],
            bsums: [0; 16],
        };
    }
    let iscale = -127.0 / max;
    let qs: [i8; QK_K] = std::array::from_fn(|j| nearest_int(iscale * x[j]).min(127) as i8);
    let bsums = std::array::from_fn(|j| {
        qs[16 * j..16 * j + 16]
            .iter()
            .map(|&q| i32::from(q))
            .sum::<i32>() as i16
    });
    BlockQ8K {
        d: 1.0 / iscale,
        qs,
        bsums,
    }
}

/// ggml's `dequantize_row_q8_K` (not a `to_float` in ggml b2757; it is the definition).
pub fn dequantize_block_q8_k(b: &BlockQ8K, y: &mut [f32; QK_K]) {
    for (out, &q) in y.iter_mut().zip(&b.qs) {
        *out = b.d * f32::from(q);
    }
}

impl_block_format!(BlockQ2K, quantize_block_q2_k, dequantize_block_q2_k);
impl_block_format!(BlockQ3K, quantize_block_q3_k, dequantize_block_q3_k);
impl_block_format!(BlockQ6K, quantize_block_q6_k, dequantize_block_q6_k);
impl_block_format!(BlockQ8K, quantize_block_q8_k, dequantize_block_q8_k);

typed_rows!(BlockQ2K, quantize_row_q2_k, dequantize_row_q2_k, "Q2_K");
typed_rows!(BlockQ3K, quantize_row_q3_k, dequantize_row_q3_k, "Q3_K");
typed_rows!(BlockQ6K, quantize_row_q6_k, dequantize_row_q6_k, "Q6_K");
typed_rows!(BlockQ8K, quantize_row_q8_k, dequantize_row_q8_k, "Q8_K");
