//! Inputs and error bounds shared by the kernel tests.
//!
//! Two kinds of inputs:
//! - *realistic*: f32 rows (normal, with a few outliers) quantized with `llava::quant`;
//! - *exact*: random block bytes whose scales (d, m, dmin) are powers of two and whose
//!   activations are small integers times a power of two, so that every product and partial
//!   sum is exactly representable in f32 in any order: any correct kernel gives the same bits.
//!
//! Error bound for the realistic inputs: each kernel computes per-block (or per-element) terms
//! with at most a few f32 roundings and sums them in some order. With `u = 2^-24` and `B` the
//! sum of the terms' magnitudes ([`magnitude`]), a sum of `m` terms in any association has error
//! at most `(m + c) * u * B` (Higham, `gamma_m`), `c` covering the roundings inside a term and a
//! final reduction of SIMD lanes. Two kernels then differ by at most twice that.
#![allow(dead_code)]

use half::f16;
use llava::GgmlType;
use llava::kernels::activation_type;
use llava::quant;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

pub const U: f64 = 1.0 / (1u64 << 24) as f64;

pub fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Row lengths for `ty`: one block, three blocks (a multiple of the block but not of 64 or
/// 512 elements, so SIMD loops have remainders), 4096 (a 7B hidden size) and an odd number of
/// blocks beyond the first three (41 of 32, 5 of 256: loops over block pairs end on a single
/// block; small enough for the exact regime).
pub fn lengths(ty: GgmlType) -> [usize; 4] {
    let block = ty.block_size().max(32);
    let odd = if block == 32 { 41 } else { 5 };
    [block, 3 * block, 4096, odd * block]
}

/// Normal values (sigma 1) with about one in 64 scaled by 8 (outliers, as in LLM activations).
pub fn realistic_f32(n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<f32> {
    let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
    (0..n)
        .map(|_| {
            let v = normal.sample(rng);
            if rng.random_range(0..64) == 0 {
                v * 8.0
            } else {
                v
            }
        })
        .collect()
}

/// `x` quantized to `ty` (weights or activations) with `llava::quant`.
pub fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; quant::row_bytes(ty, x.len()).expect("whole blocks")];
    quant::quantize_row(ty, x, &mut out).expect("quantize");
    out
}

pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    quant::dequantize_row(ty, bytes, &mut out).expect("dequantize");
    out
}

/// A realistic weight row and activation row (already in the paired activation type).
pub fn realistic_pair(
    w_type: GgmlType,
    n: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> (Vec<u8>, Vec<u8>) {
    let act = activation_type(w_type).expect("weight type");
    let w: Vec<f32> = realistic_f32(n, rng).iter().map(|v| v * 0.02).collect();
    (quantize(w_type, &w), quantize(act, &realistic_f32(n, rng)))
}

fn put_f16(bytes: &mut [u8], at: usize, v: f32) {
    bytes[at..at + 2].copy_from_slice(&f16::from_f32(v).to_bits().to_le_bytes());
}

fn random_sign(rng: &mut Xoshiro256PlusPlus) -> f32 {
    if rng.random_range(0..2) == 0 {
        1.0
    } else {
        -1.0
    }
}

/// Weight and activation scales of the exact inputs (their product is the unit of all terms).
const EXACT_W_SCALE: f32 = 0.125;
const EXACT_A_SCALE: f32 = 0.03125;

/// Small integers as floats, for the exact float rows.
fn small_ints(n: usize, bound: i32, rng: &mut Xoshiro256PlusPlus) -> Vec<f32> {
    (0..n)
        .map(|_| rng.random_range(-bound..=bound) as f32)
        .collect()
}

/// Random weight blocks of `w_type` with power-of-two scales (see the module doc).
pub fn exact_weights(w_type: GgmlType, n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<u8> {
    use GgmlType::*;
    if matches!(w_type, F16 | BF16 | F32) {
        return quantize(w_type, &small_ints(n, 16, rng));
    }
    let (block_elems, block_bytes) = w_type.block_geometry();
    let mut bytes: Vec<u8> = (0..n / block_elems * block_bytes)
        .map(|_| rng.random())
        .collect();
    // (offset of d, offset of the min scale if any)
    let (d_at, min_at) = match w_type {
        Q4_0 | Q5_0 | Q8_0 => (0, None),
        Q4_1 | Q5_1 | Q4_K | Q5_K => (0, Some(2)),
        Q2_K => (80, Some(82)),
        Q3_K => (108, None),
        Q6_K => (208, None),
        other => panic!("no exact generator for {other}"),
    };
    for block in bytes.chunks_exact_mut(block_bytes) {
        put_f16(block, d_at, EXACT_W_SCALE * random_sign(rng));
        if let Some(at) = min_at {
            put_f16(block, at, EXACT_W_SCALE * random_sign(rng));
        }
        if w_type == Q6_K {
            // Keep Q6_K's signed sub-block scales small so that sums stay below 2^24 units.
            for s in &mut block[192..208] {
                *s = rng.random_range(-15i8..=15) as u8;
            }
        }
    }
    bytes
}

/// Random activation blocks of `act_type` with a power-of-two scale and quants in [-7, 7],
/// with consistent sums (Q8_1's `s`, Q8_K's `bsums`).
pub fn exact_activations(act_type: GgmlType, n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<u8> {
    use GgmlType::*;
    match act_type {
        F16 | BF16 | F32 => quantize(act_type, &small_ints(n, 16, rng)),
        Q8_0 | Q8_1 => {
            let with_sum = act_type == Q8_1;
            let mut out = Vec::new();
            for _ in 0..n / 32 {
                let qs: Vec<i8> = (0..32).map(|_| rng.random_range(-7i8..=7)).collect();
                let d = EXACT_A_SCALE * random_sign(rng);
                out.extend_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
                if with_sum {
                    let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
                    out.extend_from_slice(&f16::from_f32(d * sum as f32).to_bits().to_le_bytes());
                }
                out.extend(qs.iter().map(|&q| q as u8));
            }
            out
        }
        Q8_K => {
            let mut out = Vec::new();
            for _ in 0..n / 256 {
                let qs: Vec<i8> = (0..256).map(|_| rng.random_range(-7i8..=7)).collect();
                out.extend_from_slice(&(EXACT_A_SCALE * random_sign(rng)).to_le_bytes());
                out.extend(qs.iter().map(|&q| q as u8));
                for group in qs.chunks_exact(16) {
                    let sum: i16 = group.iter().map(|&q| i16::from(q)).sum();
                    out.extend_from_slice(&sum.to_le_bytes());
                }
            }
            out
        }
        other => panic!("{other} is not an activation type"),
    }
}

/// An exact weight row and activation row, checked to be in the exact regime.
pub fn exact_pair(w_type: GgmlType, n: usize, rng: &mut Xoshiro256PlusPlus) -> (Vec<u8>, Vec<u8>) {
    exact_rows(w_type, 1, n, rng)
}

/// `rows` exact weight rows of `n` elements (back to back) and one exact activation row, each
/// weight row checked with it to be in the exact regime.
pub fn exact_rows(
    w_type: GgmlType,
    rows: usize,
    n: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> (Vec<u8>, Vec<u8>) {
    let act = activation_type(w_type).expect("weight type");
    let (w, a) = (
        exact_weights(w_type, rows * n, rng),
        exact_activations(act, n, rng),
    );
    let unit = if w_type.is_quantized() {
        f64::from(EXACT_W_SCALE * EXACT_A_SCALE)
    } else {
        1.0
    };
    for row in w.chunks_exact(w.len() / rows) {
        let bound = magnitude(w_type, n, row, &a);
        assert!(
            bound < unit * (1u64 << 24) as f64,
            "{w_type}: exact inputs too large ({bound} >= 2^24 units of {unit})"
        );
    }
    (w, a)
}

/// The weight row with every scale made non-negative and every min term made to add
/// (`d * q + m` with `m >= 0`; `d * sc * q - dmin * m` with `dmin <= 0`), so that its
/// dequantized values are the magnitudes of the terms the kernels sum.
fn magnitude_weights(w_type: GgmlType, w: &[u8]) -> Vec<u8> {
    use GgmlType::*;
    let mut w = w.to_vec();
    let (_, block_bytes) = w_type.block_geometry();
    let min_field = match w_type {
        Q4_1 | Q5_1 => Some((2, false)),
        Q4_K | Q5_K => Some((2, true)),
        Q2_K => Some((82, true)),
        _ => None,
    };
    if let Some((at, negative)) = min_field {
        for block in w.chunks_exact_mut(block_bytes) {
            let bits = u16::from_le_bytes([block[at], block[at + 1]]) & 0x7fff;
            let bits = if negative { bits | 0x8000 } else { bits };
            block[at..at + 2].copy_from_slice(&bits.to_le_bytes());
        }
    }
    w
}

/// `B`: the sum of the magnitudes of the terms a dot of these rows adds, slightly enlarged
/// (by 2^-10) to cover Q8_1's f16-rounded block sums and the rounding of dequantized values.
pub fn magnitude(w_type: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f64 {
    let act = activation_type(w_type).expect("weight type");
    let wm = dequantize(w_type, &magnitude_weights(w_type, w), n);
    let am = dequantize(act, a, n);
    let sum: f64 = wm
        .iter()
        .zip(&am)
        .map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs())
        .sum();
    sum * (1.0 + 1.0 / 1024.0)
}

/// The largest difference allowed between two dot products of these rows computed by
/// different kernels: `2 * (m + 8) * u * B`, with `m` the terms one accumulator may add in
/// sequence: one per block for the quantized types; for the float types one per element in
/// each of at least `float_lanes` independent accumulators.
pub fn tolerance(w_type: GgmlType, n: usize, bound: f64, float_lanes: usize) -> f64 {
    let terms = if w_type.is_quantized() {
        n / w_type.block_size()
    } else {
        n.div_ceil(float_lanes)
    };
    2.0 * (terms as f64 + 8.0) * U * bound
}

/// The tier's prepared decode dot ([`llava::kernels::DecodeDot`]) of one weight row with one
/// activation row (`a` in the paired activation type, prepared here), or `None` where the tier
/// has none for `w_type`.
pub fn prepared_dot(
    kernels: &llava::kernels::Kernels,
    w_type: GgmlType,
    n: usize,
    w: &[u8],
    a: &[u8],
) -> Option<f32> {
    let prepared = kernels.decode_dot(w_type)?;
    let mut layout = vec![0xa5u8; (prepared.prepared_bytes)(n)];
    (prepared.prepare)(n, a, &mut layout);
    Some((prepared.dot)(n, w, &layout))
}

/// The dots a tier runs for `w_type`: its plain dot (label "") and, where it has one, its
/// prepared decode dot (label " (prepared)"), each of `w` with the converted activations `a`.
pub fn tier_dots(
    kernels: &llava::kernels::Kernels,
    w_type: GgmlType,
    n: usize,
    w: &[u8],
    a: &[u8],
) -> Vec<(&'static str, f32)> {
    let mut out = vec![("", kernels.dot(w_type, n, w, a).expect("plain dot"))];
    if let Some(prepared) = prepared_dot(kernels, w_type, n, w, a) {
        out.push((" (prepared)", prepared));
    }
    out
}

/// `ggml` (`rows` rows of `k` `w_type` elements in ggml's layout) repacked to `layout`.
pub fn repacked(
    w_type: GgmlType,
    layout: llava::kernels::WeightLayout,
    rows: usize,
    k: usize,
    ggml: &[u8],
) -> Vec<u8> {
    let mut packed = ggml.to_vec();
    llava::kernels::repack::repack_in_place(w_type, layout, rows, k, &mut packed).expect("repack");
    packed
}

/// `ggml` (`rows` Q4_K rows of `k` in ggml's layout) repacked to Q4_K×8.
pub fn repacked_q4_k(rows: usize, k: usize, ggml: &[u8]) -> Vec<u8> {
    repacked(
        GgmlType::Q4_K,
        llava::kernels::WeightLayout::Q4KX8,
        rows,
        k,
        ggml,
    )
}

/// A group dot ([`llava::kernels::GroupDot`]) of the repacked rows `packed` (`rows`, a
/// multiple of 8, of `k`) with one Q8_K activation row `a`, prepared here.
pub fn group_dot_rows(
    group: llava::kernels::GroupDot,
    k: usize,
    packed: &[u8],
    a: &[u8],
    rows: usize,
) -> Vec<f32> {
    let mut layout = vec![0xa5u8; (group.prepared_bytes)(k)];
    (group.prepare)(k, a, &mut layout);
    let mut out = vec![f32::NAN; rows];
    (group.dot)(k, packed, &layout, &mut out);
    out
}

/// Checks that a Q4_K row and a Q8_K row are in the exact regime (see the module doc).
fn assert_exact_q4_k(k: usize, w: &[u8], a: &[u8]) {
    let unit = f64::from(EXACT_W_SCALE * EXACT_A_SCALE);
    let bound = magnitude(GgmlType::Q4_K, k, w, a);
    assert!(
        bound < unit * (1u64 << 24) as f64,
        "Q4_K: exact inputs too large ({bound} >= 2^24 units of {unit})"
    );
}

/// `rows` exact Q4_K rows of `k` (ggml's layout, back to back) and one exact Q8_K row.
pub fn exact_q4_k_rows(rows: usize, k: usize, rng: &mut Xoshiro256PlusPlus) -> (Vec<u8>, Vec<u8>) {
    let w = exact_weights(GgmlType::Q4_K, rows * k, rng);
    let a = exact_activations(GgmlType::Q8_K, k, rng);
    let row_bytes = quant::row_bytes(GgmlType::Q4_K, k).expect("whole blocks");
    for row in w.chunks_exact(row_bytes) {
        assert_exact_q4_k(k, row, &a);
    }
    (w, a)
}

/// As [`exact_q4_k_rows`] at the ends of the ranges the integer sums meet: every nibble 0 or
/// 15 (mostly 15), activations -128 or 127 (a 32-element sub-block's sum of products then
/// reaches ±61440, an i16 overflow for a kernel that would keep it in 16 bits), sub-block
/// scales and mins in 0..8 (including their packed top bits, all zero here) so the sums stay
/// exact in f32 for up to 3 blocks.
pub fn extreme_q4_k_rows(
    rows: usize,
    k: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> (Vec<u8>, Vec<u8>) {
    let mut w = exact_weights(GgmlType::Q4_K, rows * k, rng);
    for block in w.chunks_exact_mut(144) {
        let small = |rng: &mut Xoshiro256PlusPlus| rng.random_range(0u8..8);
        for j in 0..4 {
            block[4 + j] = small(rng);
            block[8 + j] = small(rng);
            block[12 + j] = small(rng) | small(rng) << 4;
        }
        // Per 32 quant bytes (two sub-blocks): all 15, or a mix of 0 and 15.
        for pair in block[16..].chunks_exact_mut(32) {
            let all = rng.random_range(0..2) == 0;
            for q in pair {
                *q = if all {
                    0xff
                } else {
                    [0xff, 0x0f, 0xf0, 0x00][rng.random_range(0..4)]
                };
            }
        }
    }
    let mut a = Vec::new();
    for _ in 0..k / 256 {
        // Per sub-block: all -128, all 127, or a mix.
        let mut qs: Vec<i8> = Vec::with_capacity(256);
        for _ in 0..8 {
            let mode = rng.random_range(0..3);
            qs.extend((0..32).map(|_| match mode {
                0 => -128,
                1 => 127,
                _ if rng.random_range(0..2) == 0 => -128,
                _ => 127,
            }));
        }
        a.extend_from_slice(&(EXACT_A_SCALE * random_sign(rng)).to_le_bytes());
        a.extend(qs.iter().map(|&q| q as u8));
        for group in qs.chunks_exact(16) {
            let sum: i16 = group.iter().map(|&q| i16::from(q)).sum();
            a.extend_from_slice(&sum.to_le_bytes());
        }
    }
    let row_bytes = quant::row_bytes(GgmlType::Q4_K, k).expect("whole blocks");
    for row in w.chunks_exact(row_bytes) {
        assert_exact_q4_k(k, row, &a);
    }
    (w, a)
}
