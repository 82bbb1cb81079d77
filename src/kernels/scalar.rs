//! The scalar reference kernels: the table every tier starts from and is tested against.
//!
//! The dot products are ggml's reference ones (`ggml_vec_dot_*_generic` in
//! ggml-cpu/quants.c): integer products summed exactly within a block (or, for the K-quants,
//! within 8 interleaved integer lanes), then scaled by the block's f16/f32 scales and summed in
//! f32 in ggml's order. Float dots multiply in f32 and accumulate in f64 as ggml's scalar
//! `ggml_vec_dot_f16`/`_bf16`/`_f32`. Activation quantizers are `crate::quant`'s, byte-exact to
//! ggml's reference `quantize_row_q8_*`.
//!
//! Entries follow the table's contract ([`super::VecDotFn`]): `n` is a whole number of blocks
//! and the buffers hold at least `n` elements; the checked entry points are on [`Kernels`].

use half::f16;

use super::{
    ActKernels, DecodeKernels, DotKernels, GemmKernels, Kernels, RepackedKernels, Tier, VecDotFn,
};
use crate::dtype::QK_K;
use crate::quant::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K,
    BlockQ8_0, BlockQ8_1, BlockQ8K, bf16_to_f32, f32_to_bf16, f32_to_f16, quantize_block_q8_0,
    quantize_block_q8_1, quantize_block_q8_k,
};

/// The scalar table.
pub const KERNELS: Kernels = Kernels {
    tier: Tier::Scalar,
    dot: DOT,
    gemm: GemmKernels::NONE,
    packed: GemmKernels::NONE,
    packed_token_major: GemmKernels::NONE,
    packed_q4_k_x8: None,
    packed_q6_k_x8: None,
    packed_q8_0_x8: None,
    float_panel_tokens: 1,
    decode: DecodeKernels::NONE,
    repacked: RepackedKernels::NONE,
    act: ACT,
    unary: super::unary::PORTABLE,
    attend: super::attend::PORTABLE,
};

/// Scalar dot products.
pub const DOT: DotKernels = DotKernels {
    q4_0: dot_q4_0,
    q4_1: dot_q4_1,
    q5_0: dot_q5_0,
    q5_1: dot_q5_1,
    q8_0: dot_q8_0,
    q2_k: dot_q2_k,
    q3_k: dot_q3_k,
    q4_k: dot_q4_k,
    q5_k: dot_q5_k,
    q6_k: dot_q6_k,
    f16: dot_f16,
    bf16: dot_bf16,
    f32: dot_f32,
};

/// Scalar activation quantizers.
pub const ACT: ActKernels = ActKernels {
    q8_0: quantize_act_q8_0,
    q8_1: quantize_act_q8_1,
    q8_k: quantize_act_q8_k,
    f16: quantize_act_f16,
    bf16: quantize_act_bf16,
    f32: quantize_act_f32,
};

/// The first `count` blocks of `B` bytes of `bytes` (panics if it holds fewer).
#[inline]
fn blocks<const B: usize>(bytes: &[u8], count: usize) -> &[[u8; B]] {
    &bytes.as_chunks::<B>().0[..count]
}

#[inline]
fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// Q4_0 x Q8_0: `sum_b (isum_b * dw_b) * da_b`.
pub fn dot_q4_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let mut sumf = 0.0f32;
    for (wb, ab) in blocks::<18>(w, nb).iter().zip(blocks::<34>(a, nb)) {
        let (x, y) = (BlockQ4_0::decode(wb), BlockQ8_0::decode(ab));
        let mut sumi = 0i32;
        for j in 0..16 {
            let lo = i32::from(x.qs[j] & 0x0f) - 8;
            let hi = i32::from(x.qs[j] >> 4) - 8;
            sumi += lo * i32::from(y.qs[j]) + hi * i32::from(y.qs[j + 16]);
        }
        sumf += sumi as f32 * x.d.to_f32() * y.d.to_f32();
    }
    sumf
}

/// Q4_1 x Q8_1: `sum_b ((dw_b * da_b) * isum_b + mw_b * sa_b)`.
pub fn dot_q4_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let mut sumf = 0.0f32;
    for (wb, ab) in blocks::<20>(w, nb).iter().zip(blocks::<36>(a, nb)) {
        let (x, y) = (BlockQ4_1::decode(wb), BlockQ8_1::decode(ab));
        let mut sumi = 0i32;
        for j in 0..16 {
            sumi += i32::from(x.qs[j] & 0x0f) * i32::from(y.qs[j])
                + i32::from(x.qs[j] >> 4) * i32::from(y.qs[j + 16]);
        }
        sumf += (x.d.to_f32() * y.d.to_f32()) * sumi as f32 + x.m.to_f32() * y.s.to_f32();
    }
    sumf
}

/// The 5-bit quants of a Q5 block (low nibbles in `qs`, fifth bits in `qh`), unsigned.
#[inline]
fn q5_levels(qs: &[u8; 16], qh: &[u8; 4]) -> [i32; 32] {
    let high = u32::from_le_bytes(*qh);
    std::array::from_fn(|i| {
        let nibble = if i < 16 {
            qs[i] & 0x0f
        } else {
            qs[i - 16] >> 4
        };
        i32::from(nibble) | ((((high >> i) & 1) as i32) << 4)
    })
}

/// Q5_0 x Q8_0: `sum_b (dw_b * da_b) * isum_b`.
pub fn dot_q5_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let mut sumf = 0.0f32;
    for (wb, ab) in blocks::<22>(w, nb).iter().zip(blocks::<34>(a, nb)) {
        let (x, y) = (BlockQ5_0::decode(wb), BlockQ8_0::decode(ab));
        let levels = q5_levels(&x.qs, &x.qh);
        let sumi: i32 = levels
            .iter()
            .zip(&y.qs)
            .map(|(&q, &v)| (q - 16) * i32::from(v))
            .sum();
        sumf += (x.d.to_f32() * y.d.to_f32()) * sumi as f32;
    }
    sumf
}

/// Q5_1 x Q8_1: `sum_b ((dw_b * da_b) * isum_b + mw_b * sa_b)`.
pub fn dot_q5_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let mut sumf = 0.0f32;
    for (wb, ab) in blocks::<24>(w, nb).iter().zip(blocks::<36>(a, nb)) {
        let (x, y) = (BlockQ5_1::decode(wb), BlockQ8_1::decode(ab));
        let levels = q5_levels(&x.qs, &x.qh);
        let sumi: i32 = levels
            .iter()
            .zip(&y.qs)
            .map(|(&q, &v)| q * i32::from(v))
            .sum();
        sumf += (x.d.to_f32() * y.d.to_f32()) * sumi as f32 + x.m.to_f32() * y.s.to_f32();
    }
    sumf
}

/// Q8_0 x Q8_0: `sum_b isum_b * (dw_b * da_b)`.
pub fn dot_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / 32;
    let mut sumf = 0.0f32;
    for (wb, ab) in blocks::<34>(w, nb).iter().zip(blocks::<34>(a, nb)) {
        let (x, y) = (BlockQ8_0::decode(wb), BlockQ8_0::decode(ab));
        let sumi: i32 =
            x.qs.iter()
                .zip(&y.qs)
                .map(|(&p, &q)| i32::from(p) * i32::from(q))
                .sum();
        sumf += sumi as f32 * (x.d.to_f32() * y.d.to_f32());
    }
    sumf
}

/// Q2_K x Q8_K: `sum_b (da*dw) * isum_b - (da*dminw) * summs_b`, with the 16 sub-block scales
/// in the low nibbles and mins in the high nibbles of `scales`.
pub fn dot_q2_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0.0f32;
    for (wb, ab) in blocks::<84>(w, nb).iter().zip(blocks::<292>(a, nb)) {
        let (x, y) = (BlockQ2K::decode(wb), BlockQ8K::decode(ab));
        let summs: i32 = y
            .bsums
            .iter()
            .zip(&x.scales)
            .map(|(&s, &sc)| i32::from(s) * i32::from(sc >> 4))
            .sum();
        let mut isum = 0i32;
        // Element 128*h + 32*shift_index + l is bits 2*shift_index of qs[32*h + l].
        for sub in 0..16 {
            let (h, quarter, half) = (sub / 8, (sub % 8) / 2, sub % 2);
            let shift = 2 * quarter;
            let mut isuml = 0i32;
            for l in 16 * half..16 * half + 16 {
                let q2 = i32::from((x.qs[32 * h + l] >> shift) & 3);
                isuml += i32::from(y.qs[128 * h + 32 * quarter + l]) * q2;
            }
            isum += i32::from(x.scales[sub] & 0x0f) * isuml;
        }
        let dall = y.d * x.d.to_f32();
        let dmin = y.d * x.dmin.to_f32();
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// The 16 signed 6-bit sub-block scales of a Q3_K block (packed in 12 bytes), minus 32.
pub(crate) fn q3_k_scales(scales: &[u8; 12]) -> [i32; 16] {
    std::array::from_fn(|j| {
        let low = if j < 8 {
            scales[j] & 0x0f
        } else {
            scales[j - 8] >> 4
        };
        let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        i32::from(low | (high << 4)) - 32
    })
}

/// The 8 sub-block scales and 8 mins of a Q4_K/Q5_K block (6 bits each, packed in 12 bytes).
pub(crate) fn k4_scales_mins(q: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut scales = [0u8; 8];
    let mut mins = [0u8; 8];
    for j in 0..8 {
        if j < 4 {
            scales[j] = q[j] & 63;
            mins[j] = q[j + 4] & 63;
        } else {
            scales[j] = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
            mins[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
    (scales, mins)
}

/// Adds `scale[g] * q[i] * v[i]` into 8 interleaved lanes (`i % 8`), for the 16- or 32-element
/// sub-block `g` each `i` belongs to, as ggml's reference K-quant dots (`aux32`).
#[inline]
fn accumulate_lanes(
    levels: &[i8; QK_K],
    q8: &[i8; QK_K],
    scale_of: impl Fn(usize) -> i32,
) -> [i32; 8] {
    let mut lanes = [0i32; 8];
    for (g, (lv, qv)) in levels.chunks_exact(8).zip(q8.chunks_exact(8)).enumerate() {
        let scale = scale_of(g);
        for l in 0..8 {
            lanes[l] += scale * (i32::from(lv[l]) * i32::from(qv[l]));
        }
    }
    lanes
}

/// Q3_K x Q8_K: `sum_l sum_b (dw*da) * lane_l` over 8 integer lanes.
pub fn dot_q3_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sums = [0.0f32; 8];
    for (wb, ab) in blocks::<110>(w, nb).iter().zip(blocks::<292>(a, nb)) {
        let (x, y) = (BlockQ3K::decode(wb), BlockQ8K::decode(ab));
        // Element 128*h + 32*k + l: bits 2k of qs[32h + l], minus 4 unless bit 4h + k of
        // hmask[l] is set.
        let levels: [i8; QK_K] = std::array::from_fn(|i| {
            let (h, k, l) = (i / 128, (i % 128) / 32, i % 32);
            let low = ((x.qs[32 * h + l] >> (2 * k)) & 3) as i8;
            let bit = 4 * h + k;
            low - if x.hmask[l] & (1 << bit) != 0 { 0 } else { 4 }
        });
        let scales = q3_k_scales(&x.scales);
        let lanes = accumulate_lanes(&levels, &y.qs, |g| scales[g / 2]);
        let d = x.d.to_f32() * y.d;
        for (sum, lane) in sums.iter_mut().zip(lanes) {
            *sum += d * lane as f32;
        }
    }
    sums.iter().fold(0.0f32, |acc, s| acc + s)
}

/// Q4_K/Q5_K x Q8_K given the unsigned levels of each block: lanes of `scale * q * v`, minus
/// `dmin * da * sum(bsums * mins)`.
fn dot_k4_like<const B: usize>(
    n: usize,
    w: &[u8],
    a: &[u8],
    decode: impl Fn(&[u8; B]) -> (f16, f16, [u8; 12], [i8; QK_K]),
) -> f32 {
    let nb = n / QK_K;
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (wb, ab) in blocks::<B>(w, nb).iter().zip(blocks::<292>(a, nb)) {
        let (d, dmin, packed, levels) = decode(wb);
        let y = BlockQ8K::decode(ab);
        let (scales, mins) = k4_scales_mins(&packed);
        let sumi: i32 = y
            .bsums
            .iter()
            .enumerate()
            .map(|(j, &s)| i32::from(s) * i32::from(mins[j / 2]))
            .sum();
        let lanes = accumulate_lanes(&levels, &y.qs, |g| i32::from(scales[g / 4]));
        let d = d.to_f32() * y.d;
        for (sum, lane) in sums.iter_mut().zip(lanes) {
            *sum += d * lane as f32;
        }
        let dmin = dmin.to_f32() * y.d;
        sumf -= dmin * sumi as f32;
    }
    sums.iter().fold(sumf, |acc, s| acc + s)
}

/// Q4_K x Q8_K.
pub fn dot_q4_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_k4_like::<144>(n, w, a, |wb| {
        let x = BlockQ4K::decode(wb);
        // Element 64*j + l is the low nibble of qs[32j + l], 64*j + 32 + l the high one.
        let levels = std::array::from_fn(|i| {
            let (j, half, l) = (i / 64, (i % 64) / 32, i % 32);
            let byte = x.qs[32 * j + l];
            (if half == 0 { byte & 0x0f } else { byte >> 4 }) as i8
        });
        (x.d, x.dmin, x.scales, levels)
    })
}

/// Q5_K x Q8_K.
pub fn dot_q5_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    dot_k4_like::<176>(n, w, a, |wb| {
        let x = BlockQ5K::decode(wb);
        // As Q4_K, plus 16 where bit 2j + half of qh[l] is set.
        let levels = std::array::from_fn(|i| {
            let (j, half, l) = (i / 64, (i % 64) / 32, i % 32);
            let byte = x.qs[32 * j + l];
            let low = if half == 0 { byte & 0x0f } else { byte >> 4 };
            let high = if x.qh[l] & (1 << (2 * j + half)) != 0 {
                16
            } else {
                0
            };
            (low + high) as i8
        });
        (x.d, x.dmin, x.scales, levels)
    })
}

/// Q6_K x Q8_K: `sum_l sum_b (dw*da) * lane_l` over 8 integer lanes.
pub fn dot_q6_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = n / QK_K;
    let mut sums = [0.0f32; 8];
    for (wb, ab) in blocks::<210>(w, nb).iter().zip(blocks::<292>(a, nb)) {
        let (x, y) = (BlockQ6K::decode(wb), BlockQ8K::decode(ab));
        // Element 128*h + 32*k + l: a nibble of ql[64h + 32*(k%2) + l] (low for k < 2) and
        // bits 2k of qh[32h + l], minus 32.
        let levels: [i8; QK_K] = std::array::from_fn(|i| {
            let (h, k, l) = (i / 128, (i % 128) / 32, i % 32);
            let byte = x.ql[64 * h + 32 * (k % 2) + l];
            let low = if k < 2 { byte & 0x0f } else { byte >> 4 };
            let high = (x.qh[32 * h + l] >> (2 * k)) & 3;
            (low | (high << 4)) as i8 - 32
        });
        let lanes = accumulate_lanes(&levels, &y.qs, |g| i32::from(x.scales[g / 2]));
        let d = x.d.to_f32() * y.d;
        for (sum, lane) in sums.iter_mut().zip(lanes) {
            *sum += d * lane as f32;
        }
    }
    sums.iter().fold(0.0f32, |acc, s| acc + s)
}

/// F16 x F16: products in f32 (exact for f16 operands), summed in f64.
pub fn dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let sum: f64 = blocks::<2>(w, n)
        .iter()
        .zip(blocks::<2>(a, n))
        .map(|(x, y)| f64::from(f16_at(x, 0) * f16_at(y, 0)))
        .sum();
    sum as f32
}

/// BF16 x BF16: products in f32 (exact for bf16 operands), summed in f64.
pub fn dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let sum: f64 = blocks::<2>(w, n)
        .iter()
        .zip(blocks::<2>(a, n))
        .map(|(x, y)| {
            f64::from(bf16_to_f32(u16::from_le_bytes(*x)) * bf16_to_f32(u16::from_le_bytes(*y)))
        })
        .sum();
    sum as f32
}

/// F32 x F32: products rounded to f32, summed in f64.
pub fn dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let sum: f64 = blocks::<4>(w, n)
        .iter()
        .zip(blocks::<4>(a, n))
        .map(|(x, y)| f64::from(f32::from_le_bytes(*x) * f32::from_le_bytes(*y)))
        .sum();
    sum as f32
}

/// Quantizes each `QK`-element chunk of `x` into a `B`-byte chunk of `out`.
#[inline]
fn quantize_blocks<const QK: usize, const B: usize>(
    x: &[f32],
    out: &mut [u8],
    quantize: impl Fn(&[f32; QK]) -> [u8; B],
) {
    let (src, rest) = x.as_chunks::<QK>();
    assert!(
        rest.is_empty(),
        "activation row is not a whole number of blocks"
    );
    let dst = &mut out.as_chunks_mut::<B>().0[..src.len()];
    for (s, d) in src.iter().zip(dst) {
        *d = quantize(s);
    }
}

/// f32 row to Q8_0 (ggml's `quantize_row_q8_0_ref`).
pub fn quantize_act_q8_0(x: &[f32], out: &mut [u8]) {
    quantize_blocks::<32, 34>(x, out, |b| quantize_block_q8_0(b).encode());
}

/// f32 row to Q8_1 (ggml's `quantize_row_q8_1_ref`).
pub fn quantize_act_q8_1(x: &[f32], out: &mut [u8]) {
    quantize_blocks::<32, 36>(x, out, |b| quantize_block_q8_1(b).encode());
}

/// f32 row to Q8_K (ggml's `quantize_row_q8_K_ref`).
pub fn quantize_act_q8_k(x: &[f32], out: &mut [u8]) {
    quantize_blocks::<QK_K, 292>(x, out, |b| quantize_block_q8_k(b).encode());
}

/// f32 row to F16, rounding to nearest even.
pub fn quantize_act_f16(x: &[f32], out: &mut [u8]) {
    quantize_blocks::<1, 2>(x, out, |v| f32_to_f16(v[0]).to_bits().to_le_bytes());
}

/// f32 row to BF16, rounding to nearest even (ggml's `ggml_compute_fp32_to_bf16`).
pub fn quantize_act_bf16(x: &[f32], out: &mut [u8]) {
    quantize_blocks::<1, 2>(x, out, |v| f32_to_bf16(v[0]).to_le_bytes());
}

/// f32 row to F32 bytes (a copy).
pub fn quantize_act_f32(x: &[f32], out: &mut [u8]) {
    quantize_blocks::<1, 4>(x, out, |v| v[0].to_le_bytes());
}

/// A tile of dot products by looping `dot` (see [`super::GemmTileFn`]).
#[allow(clippy::too_many_arguments)]
pub fn gemm_tile_by_dots(
    dot: VecDotFn,
    n: usize,
    w: &[u8],
    w_stride: usize,
    rows: usize,
    a: &[u8],
    a_stride: usize,
    cols: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    for r in 0..rows {
        let w_row = &w[r * w_stride..];
        for c in 0..cols {
            out[r * out_stride + c] = dot(n, w_row, &a[c * a_stride..]);
        }
    }
}
