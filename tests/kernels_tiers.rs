//! Every tier this CPU supports against the scalar reference, entry by entry, and the matmul
//! paths against a naive dequantize-then-f64 reference.
//!
//! - Activation quantizers: byte-identical to scalar (including rounding ties).
//! - Dot products and gemm tiles: bit-identical on exact inputs (power-of-two scales, small
//!   integers; see `kernels_support`), within `kernels_support::tolerance` on realistic ones
//!   (float dots are assumed to keep at least 4 independent lanes).
//! - Shapes: one block, three blocks (not a multiple of any SIMD width's loop), 4096, an odd
//!   block count.
//! - n = 1 matmuls (whatever the decode path shares among rows): each output equals the tier's
//!   own dot of its row, bit for bit.
//!
//! Entries are found through `WEIGHT_TYPES`/`ACTIVATION_TYPES` and the tables' `get`, so
//! entries a tier registers are tested without changes here.

mod kernels_support;

use kernels_support::*;
use llava::GgmlType;
use llava::kernels::matmul::matmul_f32_in_task;
use llava::kernels::{
    ACTIVATION_TYPES, KernelError, Kernels, QuantMatrix, Tier, WEIGHT_TYPES, WeightLayout,
    activation_type, kernels_for_request, matmul, matmul_f16, matmul_f32, matmul_nn_f32,
    matmul_vec_many, repack,
};
use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;

const FLOAT_LANES: usize = 4;

fn scalar() -> &'static Kernels {
    Kernels::for_tier(Tier::Scalar).expect("scalar is always supported")
}

/// The tables of every tier this CPU supports (scalar included, as a self-check).
fn tiers() -> Vec<&'static Kernels> {
    let tiers: Vec<_> = Tier::supported()
        .into_iter()
        .map(|t| Kernels::for_tier(t).expect("supported tier has a table"))
        .collect();
    println!(
        "tiers: {:?}",
        tiers.iter().map(|k| k.tier.name()).collect::<Vec<_>>()
    );
    tiers
}

/// Activation rows that stress the quantizers: realistic values, zeros, exact rounding ties
/// (a block whose maximum is 127 has scale 1, so x.5 values are ties), negative maxima,
/// tiny and huge magnitudes.
fn activation_rows(n: usize) -> Vec<Vec<f32>> {
    let mut rng = rng(21);
    let mut rows = vec![realistic_f32(n, &mut rng), vec![0.0; n]];
    rows.push(
        (0..n)
            .map(|i| {
                if i % 32 == 0 {
                    127.0
                } else {
                    (i % 200) as f32 - 99.5
                }
            })
            .collect(),
    );
    rows.push(
        (0..n)
            .map(|i| {
                if i % 32 == 5 {
                    -127.0
                } else {
                    (i % 7) as f32 * 0.5 - 1.5
                }
            })
            .collect(),
    );
    rows.push(
        realistic_f32(n, &mut rng)
            .iter()
            .map(|v| v * 1e-30)
            .collect(),
    );
    rows.push(
        realistic_f32(n, &mut rng)
            .iter()
            .map(|v| v * 1e30)
            .collect(),
    );
    rows
}

#[test]
fn activation_quantizers_are_byte_identical_to_scalar() {
    for kernels in tiers() {
        for act in ACTIVATION_TYPES {
            for n in lengths(act) {
                for (i, x) in activation_rows(n).iter().enumerate() {
                    let size = act.bytes_for(n as u64).unwrap() as usize;
                    let (mut ours, mut reference) = (vec![0u8; size], vec![0u8; size]);
                    kernels.quantize_activations(act, x, &mut ours).unwrap();
                    scalar()
                        .quantize_activations(act, x, &mut reference)
                        .unwrap();
                    assert!(
                        ours == reference,
                        "{} {act} n={n} row {i}: bytes differ from scalar",
                        kernels.tier
                    );
                }
            }
        }
    }
}

#[test]
fn dots_are_bit_identical_to_scalar_on_exact_inputs() {
    let mut rng = rng(22);
    for kernels in tiers() {
        for w_type in WEIGHT_TYPES {
            for n in lengths(w_type) {
                for _ in 0..4 {
                    let (w, a) = exact_pair(w_type, n, &mut rng);
                    let reference = scalar().dot(w_type, n, &w, &a).unwrap();
                    for (what, ours) in tier_dots(kernels, w_type, n, &w, &a) {
                        assert_eq!(
                            ours.to_bits(),
                            reference.to_bits(),
                            "{} {w_type} n={n}{what}: {ours} vs scalar {reference}",
                            kernels.tier
                        );
                    }
                }
            }
        }
    }
}

/// Q8_0 activation quants (and Q8_0 weight quants) at the ends of their ranges: ±127 (and
/// -128, -127, 127), where `vpmaddubsw`'s pair sums come closest to saturating. The scales stay
/// powers of two, the sums below 2^24 units for up to 32 blocks, so the dots stay exact.
fn extreme_quants(w_type: GgmlType, w: &mut [u8], a: &mut [u8], rng: &mut impl RngExt) {
    for block in a.chunks_exact_mut(34) {
        for q in &mut block[2..] {
            *q = if rng.random() { 127 } else { (-127i8) as u8 };
        }
    }
    if w_type == GgmlType::Q8_0 {
        for block in w.chunks_exact_mut(34) {
            for q in &mut block[2..] {
                *q = [-128i8, -127, 127][rng.random_range(0..3)] as u8;
            }
        }
    }
}

/// The prepared decode dots group blocks (Q4_0 and Q8_0 by 8, with a zero-padded last
/// group): every block count 1..=19 (every tail length, one and two whole groups), bit for bit
/// against scalar on exact inputs, also (with Q8_0 activations) with quants at the ends of
/// their ranges.
#[test]
fn prepared_dots_at_every_tail_length_are_bit_identical_to_scalar() {
    let mut rng = rng(24);
    for kernels in tiers() {
        for w_type in WEIGHT_TYPES {
            if kernels.decode_dot(w_type).is_none() {
                continue;
            }
            for blocks in 1..=19 {
                let n = w_type.block_size() * blocks;
                for round in 0..6 {
                    let (mut w, mut a) = exact_pair(w_type, n, &mut rng);
                    if round >= 4 && activation_type(w_type) == Some(GgmlType::Q8_0) {
                        extreme_quants(w_type, &mut w, &mut a, &mut rng);
                    }
                    let reference = scalar().dot(w_type, n, &w, &a).unwrap();
                    let ours = prepared_dot(kernels, w_type, n, &w, &a).expect("prepared dot");
                    assert_eq!(
                        ours.to_bits(),
                        reference.to_bits(),
                        "{} {w_type} n={n} (prepared): {ours} vs scalar {reference}",
                        kernels.tier
                    );
                }
            }
        }
    }
}

#[test]
fn dots_are_within_the_rounding_bound_of_scalar() {
    let mut rng = rng(23);
    for kernels in tiers() {
        for w_type in WEIGHT_TYPES {
            for n in lengths(w_type) {
                for _ in 0..8 {
                    let (w, a) = realistic_pair(w_type, n, &mut rng);
                    let reference = scalar().dot(w_type, n, &w, &a).unwrap();
                    let tol = tolerance(w_type, n, magnitude(w_type, n, &w, &a), FLOAT_LANES);
                    for (what, ours) in tier_dots(kernels, w_type, n, &w, &a) {
                        let diff = f64::from(ours - reference).abs();
                        assert!(
                            diff <= tol,
                            "{} {w_type} n={n}{what}: {ours} vs scalar {reference}, |diff| {diff:e} > {tol:e}",
                            kernels.tier
                        );
                    }
                }
            }
        }
    }
}

/// Matmuls at n = 1, 2, 3 and 17 (n = 1 takes the prepared decode dots, n > 1 the tiles) at an
/// odd block count, against the naive f64 reference, on every tier, in two threads.
#[test]
fn matmuls_at_small_n_and_odd_blocks_match_the_naive_reference() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut rng = rng(43);
    let (rows, k) = (19, 32 * 41);
    for w_type in [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::F16] {
        let wf: Vec<f32> = realistic_f32(rows * k, &mut rng)
            .iter()
            .map(|v| v * 0.02)
            .collect();
        let w = quantize(w_type, &wf);
        let matrix = QuantMatrix::new(w_type, rows, k, &w).unwrap();
        for n in [1, 2, 3, 17] {
            let x = realistic_f32(n * k, &mut rng);
            let (reference, tol) = naive_matmul(w_type, &w, rows, k, &x, n);
            for kernels in tiers() {
                let mut y = vec![f32::NAN; n * rows];
                pool.install(|| matmul(kernels, &matrix, &x, n, &mut y))
                    .unwrap();
                for (i, ((got, want), tol)) in y.iter().zip(&reference).zip(&tol).enumerate() {
                    assert!(
                        (f64::from(*got) - want).abs() <= *tol,
                        "{} {w_type} n={n} element {i}: {got} vs {want}",
                        kernels.tier
                    );
                }
            }
        }
    }
}

/// Rows of `pad`-byte padded records, to check that tiles honour strides.
fn padded(rows: &[Vec<u8>], pad: usize) -> (Vec<u8>, usize) {
    let stride = rows[0].len() + pad;
    let mut out = vec![0xa5u8; stride * rows.len()];
    for (i, r) in rows.iter().enumerate() {
        out[i * stride..i * stride + r.len()].copy_from_slice(r);
    }
    (out, stride)
}

#[test]
fn gemm_tiles_match_scalar_dots() {
    let mut rng = rng(24);
    let (rows, cols) = (5, 3);
    for kernels in tiers() {
        for w_type in WEIGHT_TYPES {
            let n = lengths(w_type)[1];
            for exact in [true, false] {
                let pairs: Vec<_> = (0..rows.max(cols))
                    .map(|_| {
                        if exact {
                            exact_pair(w_type, n, &mut rng)
                        } else {
                            realistic_pair(w_type, n, &mut rng)
                        }
                    })
                    .collect();
                let w_rows: Vec<_> = pairs[..rows].iter().map(|p| p.0.clone()).collect();
                let a_rows: Vec<_> = pairs[..cols].iter().map(|p| p.1.clone()).collect();
                let (w, w_stride) = padded(&w_rows, 3);
                let (a, a_stride) = padded(&a_rows, 5);
                let out_stride = cols + 2;
                let mut out = vec![f32::NAN; rows * out_stride];
                kernels
                    .gemm_tile(
                        w_type, n, &w, w_stride, rows, &a, a_stride, cols, &mut out, out_stride,
                    )
                    .unwrap();
                for r in 0..rows {
                    for c in 0..out_stride {
                        let got = out[r * out_stride + c];
                        if c >= cols {
                            assert!(
                                got.is_nan(),
                                "{} {w_type}: wrote outside the tile",
                                kernels.tier
                            );
                            continue;
                        }
                        let reference = scalar().dot(w_type, n, &w_rows[r], &a_rows[c]).unwrap();
                        if exact {
                            assert_eq!(
                                got.to_bits(),
                                reference.to_bits(),
                                "{} {w_type} ({r},{c})",
                                kernels.tier
                            );
                        } else {
                            let bound = magnitude(w_type, n, &w_rows[r], &a_rows[c]);
                            let tol = tolerance(w_type, n, bound, FLOAT_LANES);
                            assert!(
                                f64::from(got - reference).abs() <= tol,
                                "{} {w_type} ({r},{c}): {got} vs {reference}",
                                kernels.tier
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The float types' tiles (F16, BF16, F32: R × C register tiles, or packed rows, in the SIMD
/// tiers) at odd shapes: k not a multiple of any SIMD width (1, 7, 37, 100), a multiple (64,
/// 1040), and beyond the packed tiles' 2048-step k-chunks (2100); token counts 1, 2, 3, 16, 17,
/// 24 (panels of 6 or 14 tokens: last panels of ≤ 4 tokens, which the narrow micro-tile serves,
/// full or not, and wider partial ones);
/// weight-row counts that are not multiples of the tile heights (1, 5, 9, 13) or beyond one
/// band of the packed tiles (40). Each cell equals the scalar dot on exact inputs (small
/// integers: every association is exact; equal values, the sign of a zero aside) and is within
/// the rounding bound `kernels_support::tolerance` (2·(⌈k / 4⌉ + 8)·u·B) of it on realistic
/// ones: the tiles sum in 8 or 16 lanes, then the `k mod lanes` tail (packed: 16 steps per
/// partial sum), an association other than the dots'.
#[test]
fn float_gemm_tiles_at_odd_shapes_match_scalar_dots() {
    let mut rng = rng(27);
    let tiers = tiers();
    for w_type in [GgmlType::F16, GgmlType::BF16, GgmlType::F32] {
        for k in [1, 7, 37, 64, 100, 1040, 2100] {
            for exact in [true, false] {
                let pairs: Vec<_> = (0..40)
                    .map(|_| {
                        if exact {
                            exact_pair(w_type, k, &mut rng)
                        } else {
                            realistic_pair(w_type, k, &mut rng)
                        }
                    })
                    .collect();
                for rows in [1, 5, 9, 13, 40] {
                    for cols in [1, 2, 3, 16, 17, 24] {
                        let w_rows: Vec<_> = pairs[..rows].iter().map(|p| p.0.clone()).collect();
                        let a_rows: Vec<_> = pairs[..cols].iter().map(|p| p.1.clone()).collect();
                        let (w, w_stride) = padded(&w_rows, 2);
                        let (a, a_stride) = padded(&a_rows, 6);
                        let out_stride = cols + 1;
                        for kernels in &tiers {
                            let mut out = vec![f32::NAN; rows * out_stride];
                            kernels
                                .gemm_tile(
                                    w_type, k, &w, w_stride, rows, &a, a_stride, cols, &mut out,
                                    out_stride,
                                )
                                .unwrap();
                            for r in 0..rows {
                                assert!(
                                    out[r * out_stride + cols].is_nan(),
                                    "{} {w_type}: wrote outside the tile",
                                    kernels.tier
                                );
                                for c in 0..cols {
                                    let got = out[r * out_stride + c];
                                    let reference =
                                        scalar().dot(w_type, k, &w_rows[r], &a_rows[c]).unwrap();
                                    let what = format!(
                                        "{} {w_type} k={k} {rows}×{cols} ({r},{c}): {got} vs {reference}",
                                        kernels.tier
                                    );
                                    if exact {
                                        // Equal values; a zero's sign may differ at k = 1
                                        // (the scalar's f64 sum starts from -0.0).
                                        assert!(got == reference, "{what}");
                                    } else {
                                        let bound = magnitude(w_type, k, &w_rows[r], &a_rows[c]);
                                        let tol = tolerance(w_type, k, bound, FLOAT_LANES);
                                        assert!(f64::from(got - reference).abs() <= tol, "{what}");
                                    }
                                }
                            }
                            // The token-major entry: the same cells, bit for bit, transposed.
                            let y_stride = rows + 3;
                            let mut y = vec![f32::NAN; cols * y_stride];
                            kernels
                                .gemm_tile_token_major(
                                    w_type, k, &w, w_stride, rows, &a, a_stride, cols, &mut y,
                                    y_stride,
                                )
                                .unwrap();
                            for c in 0..cols {
                                for r in 0..rows {
                                    assert_eq!(
                                        y[c * y_stride + r].to_bits(),
                                        out[r * out_stride + c].to_bits(),
                                        "{} {w_type} k={k} {rows}×{cols} token-major ({r},{c})",
                                        kernels.tier
                                    );
                                }
                                assert!(
                                    y[c * y_stride + rows..(c + 1) * y_stride]
                                        .iter()
                                        .all(|v| v.is_nan()),
                                    "{} {w_type}: token-major tile wrote outside",
                                    kernels.tier
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Q4_1/Q5_1 dots use the stored, f16-rounded block sum `s` of Q8_1 activations for the min
/// term (`m * s`), not the sum of the dequantized values: the difference `m * (s - sum a)`.
fn q8_1_sum_correction(act: GgmlType, w: &[u8], a: &[u8], ad: &[f32]) -> f64 {
    if act != GgmlType::Q8_1 {
        return 0.0;
    }
    let f16_at = |b: &[u8], at: usize| {
        f64::from(half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32())
    };
    let blocks = ad.len() / 32;
    let w_block = w.len() / blocks;
    (0..blocks)
        .map(|b| {
            let m = f16_at(w, b * w_block + 2);
            let s = f16_at(a, b * 36 + 2);
            let sum: f64 = ad[b * 32..(b + 1) * 32].iter().map(|v| f64::from(*v)).sum();
            m * (s - sum)
        })
        .sum()
}

/// `Y = X·Wᵀ` from dequantized W and dequantized quantized X, summed in f64, and the
/// per-element tolerance.
fn naive_matmul(
    w_type: GgmlType,
    w: &[u8],
    rows: usize,
    k: usize,
    x: &[f32],
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    let act = activation_type(w_type).unwrap();
    let row_bytes = w.len() / rows;
    let mut y = vec![0f64; n * rows];
    let mut tol = vec![0f64; n * rows];
    for t in 0..n {
        let a = quantize(act, &x[t * k..(t + 1) * k]);
        let ad = dequantize(act, &a, k);
        for r in 0..rows {
            let wr = &w[r * row_bytes..(r + 1) * row_bytes];
            let wd = dequantize(w_type, wr, k);
            y[t * rows + r] = wd
                .iter()
                .zip(&ad)
                .map(|(p, q)| f64::from(*p) * f64::from(*q))
                .sum::<f64>()
                + q8_1_sum_correction(act, wr, &a, &ad);
            // The dequantized product itself is off the kernel's exact value by the roundings
            // of dequantization (2u per product): covered by doubling the bound.
            tol[t * rows + r] =
                2.0 * tolerance(w_type, k, magnitude(w_type, k, wr, &a), FLOAT_LANES);
        }
    }
    (y, tol)
}

#[test]
fn matmul_matches_the_naive_reference() {
    let mut rng = rng(25);
    let rows = 70; // more than one row tile, not a multiple of it
    for kernels in tiers() {
        for w_type in WEIGHT_TYPES {
            let k = lengths(w_type)[1];
            let wf: Vec<f32> = realistic_f32(rows * k, &mut rng)
                .iter()
                .map(|v| v * 0.02)
                .collect();
            let w = quantize(w_type, &wf);
            let matrix = QuantMatrix::new(w_type, rows, k, &w).unwrap();
            for n in [1, 2, 3, 17, 40] {
                let x = realistic_f32(n * k, &mut rng);
                let mut y = vec![f32::NAN; n * rows];
                matmul(kernels, &matrix, &x, n, &mut y).unwrap();
                let (reference, tol) = naive_matmul(w_type, &w, rows, k, &x, n);
                for (i, ((got, want), tol)) in y.iter().zip(&reference).zip(&tol).enumerate() {
                    assert!(
                        (f64::from(*got) - want).abs() <= *tol,
                        "{} {w_type} n={n} [{}, {}]: {got} vs {want}",
                        kernels.tier,
                        i / rows,
                        i % rows
                    );
                }
            }
        }
    }
}

#[test]
fn matmul_at_7b_width_in_two_threads() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut rng = rng(26);
    let (rows, k, n) = (8, 4096, 3);
    for w_type in [GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::F16] {
        let wf: Vec<f32> = realistic_f32(rows * k, &mut rng)
            .iter()
            .map(|v| v * 0.02)
            .collect();
        let w = quantize(w_type, &wf);
        let matrix = QuantMatrix::new(w_type, rows, k, &w).unwrap();
        let x = realistic_f32(n * k, &mut rng);
        let (reference, tol) = naive_matmul(w_type, &w, rows, k, &x, n);
        for kernels in tiers() {
            let mut y = vec![0f32; n * rows];
            pool.install(|| matmul(kernels, &matrix, &x, n, &mut y))
                .unwrap();
            for ((got, want), tol) in y.iter().zip(&reference).zip(&tol) {
                assert!(
                    (f64::from(*got) - want).abs() <= *tol,
                    "{} {w_type}",
                    kernels.tier
                );
            }
        }
    }
}

/// A float GEMM over more tokens than one widened chunk holds at a large k (the FFN down
/// projection's 11008: the packed float tiles widen at most 8 MiB of activations at once, 190
/// tokens here) gives every token bit for bit what a batch of 40 (one chunk) gives.
#[test]
fn float_matmul_over_several_token_chunks_equals_small_batches() {
    let mut rng = rng(31);
    let (rows, k, n, batch) = (19, 11008, 200, 40);
    let wf: Vec<f32> = realistic_f32(rows * k, &mut rng)
        .iter()
        .map(|v| v * 0.02)
        .collect();
    let w = quantize(GgmlType::F16, &wf);
    let matrix = QuantMatrix::new(GgmlType::F16, rows, k, &w).unwrap();
    let x = realistic_f32(n * k, &mut rng);
    for kernels in tiers() {
        let mut whole = vec![0f32; n * rows];
        matmul(kernels, &matrix, &x, n, &mut whole).unwrap();
        for (t0, want) in whole.chunks(batch * rows).enumerate() {
            let mut got = vec![0f32; batch * rows];
            let xs = &x[t0 * batch * k..][..batch * k];
            matmul(kernels, &matrix, xs, batch, &mut got).unwrap();
            assert!(
                got.iter()
                    .zip(want)
                    .all(|(g, w)| g.to_bits() == w.to_bits()),
                "{}: tokens {}..{} differ",
                kernels.tier,
                t0 * batch,
                (t0 + 1) * batch
            );
        }
    }
}

/// An n = 1 matmul gives, for every row, the tier's dot of that row with the converted input
/// (its prepared decode dot where it has one), bit for bit (a guard for decode paths that share
/// work among rows), at odd row counts and block counts, on every tier, in two threads.
#[test]
fn decode_matmul_equals_the_tiers_dot_per_row() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut rng = rng(31);
    for kernels in tiers() {
        for w_type in WEIGHT_TYPES {
            for k in [lengths(w_type)[1], lengths(w_type)[3]] {
                let rows = 37;
                let wf: Vec<f32> = realistic_f32(rows * k, &mut rng)
                    .iter()
                    .map(|v| v * 0.02)
                    .collect();
                let w = quantize(w_type, &wf);
                let matrix = QuantMatrix::new(w_type, rows, k, &w).unwrap();
                let x = realistic_f32(k, &mut rng);
                let mut y = vec![f32::NAN; rows];
                pool.install(|| matmul(kernels, &matrix, &x, 1, &mut y))
                    .unwrap();
                let act = activation_type(w_type).unwrap();
                let mut a = vec![0u8; llava::quant::row_bytes(act, k).unwrap()];
                kernels.quantize_activations(act, &x, &mut a).unwrap();
                for (r, got) in y.iter().enumerate() {
                    let row = &w[r * matrix.row_bytes()..(r + 1) * matrix.row_bytes()];
                    let want = prepared_dot(kernels, w_type, k, row, &a)
                        .unwrap_or_else(|| kernels.dot(w_type, k, row, &a).unwrap());
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{} {w_type} k={k} row {r}: {got} vs {want}",
                        kernels.tier
                    );
                }
            }
        }
    }
}

/// The several-row decode dots (`DecodeDot::rows`: x86's F16 and Q8_0 take 4 rows at once)
/// give every row its single-row `dot` (F16: also the tier's plain dot) bit for bit, and agree with
/// scalar within the rounding bound: any row count (whole groups, a remainder, none), strided
/// rows, lengths with 8-element and scalar tails.
#[test]
fn several_row_decode_dots_equal_the_single_row_dot() {
    let mut rng = rng(37);
    let mut checked = Vec::new();
    for kernels in tiers() {
        for w_type in WEIGHT_TYPES {
            let Some(prepared) = kernels.decode_dot(w_type) else {
                continue;
            };
            let Some(rows_dot) = prepared.rows else {
                continue;
            };
            let block = w_type.block_size();
            for n in [1, 7, 8, 9, 31, 32, 33, 100, 4096 + 8 + 3].map(|n| n * block) {
                let act = activation_type(w_type).unwrap();
                let x = realistic_f32(n, &mut rng);
                let mut a = vec![0u8; llava::quant::row_bytes(act, n).unwrap()];
                kernels.quantize_activations(act, &x, &mut a).unwrap();
                let mut layout = vec![0xa5u8; (prepared.prepared_bytes)(n)];
                (prepared.prepare)(n, &a, &mut layout);
                let row_len = llava::quant::row_bytes(w_type, n).unwrap();
                let stride = row_len + 6;
                for rows in [0, 1, 2, 3, 4, 5, 7, 8, 9] {
                    let w_rows: Vec<Vec<u8>> = (0..rows)
                        .map(|_| {
                            let wf: Vec<f32> = realistic_f32(n, &mut rng)
                                .iter()
                                .map(|v| v * 0.02)
                                .collect();
                            quantize(w_type, &wf)
                        })
                        .collect();
                    // Strided rows, the last one without its padding.
                    let mut w = vec![0xa5u8; (rows * stride).saturating_sub(6)];
                    for (r, row) in w_rows.iter().enumerate() {
                        w[r * stride..][..row_len].copy_from_slice(row);
                    }
                    let mut out = vec![f32::NAN; rows];
                    rows_dot(n, &w, stride, &layout, &mut out);
                    for (r, (got, row)) in out.iter().zip(&w_rows).enumerate() {
                        let one = (prepared.dot)(n, row, &layout);
                        let plain = kernels.dot(w_type, n, row, &a).unwrap();
                        let reference = scalar().dot(w_type, n, row, &a).unwrap();
                        let what = format!("{} {w_type} n={n} rows={rows} row {r}", kernels.tier);
                        assert_eq!(got.to_bits(), one.to_bits(), "{what}: {got} vs dot {one}");
                        // F16's rows keep the plain dot's arithmetic per row.
                        if w_type == GgmlType::F16 {
                            assert_eq!(
                                got.to_bits(),
                                plain.to_bits(),
                                "{what}: {got} vs plain {plain}"
                            );
                        }
                        let tol = tolerance(w_type, n, magnitude(w_type, n, row, &a), FLOAT_LANES);
                        let diff = f64::from(got - reference).abs();
                        assert!(diff <= tol, "{what}: {got} vs scalar {reference}");
                        checked.push(w_type);
                    }
                }
            }
        }
    }
    if Tier::supported().contains(&Tier::Avx2) {
        for ty in [GgmlType::F16, GgmlType::Q8_0] {
            assert!(
                checked.contains(&ty),
                "x86 tiers have {ty} several-row dots"
            );
        }
    }
}

/// Tokens below which a repacked matrix with its tier's group dot takes them token by token
/// (`kernels::gemm::PACKED_MIN_TOKENS`).
const REPACKED_TOKEN_BY_TOKEN_BELOW: usize = 8;

/// `matmul` of the `n` tokens of `x` one at a time (n = 1 each), on `pool`.
fn token_by_token(
    pool: &rayon::ThreadPool,
    kernels: &Kernels,
    w: &QuantMatrix<'_>,
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let mut y = vec![f32::NAN; n * w.rows()];
    for (x, y) in x.chunks_exact(w.k()).zip(y.chunks_exact_mut(w.rows())) {
        pool.install(|| matmul(kernels, w, x, 1, y)).unwrap();
    }
    y
}

/// n > 1 on a repacked matrix: below [`REPACKED_TOKEN_BY_TOKEN_BELOW`] tokens, on a tier with
/// the layout's group dot, each token's n = 1 result bit for bit (the group dots, token by
/// token; n = 1 is checked against scalar); else the ggml-layout matmul's result bit for bit
/// (the packed tiles pack the same records from the x8 groups, the other tiles get rows
/// unpacked 64 at a time).
fn assert_repacked_matches(
    pool: &rayon::ThreadPool,
    kernels: &Kernels,
    (plain, repacked): (&QuantMatrix<'_>, &QuantMatrix<'_>),
    x: &[f32],
    n: usize,
) {
    let rows = plain.rows();
    let mut got = vec![f32::NAN; n * rows];
    pool.install(|| matmul(kernels, repacked, x, n, &mut got))
        .unwrap();
    let token_by_token_path =
        n < REPACKED_TOKEN_BY_TOKEN_BELOW && kernels.repacked.get(repacked.layout()).is_some();
    let (want, what) = if token_by_token_path {
        (
            token_by_token(pool, kernels, repacked, x, n),
            "token by token",
        )
    } else {
        let mut want = vec![f32::NAN; n * rows];
        pool.install(|| matmul(kernels, plain, x, n, &mut want))
            .unwrap();
        (want, "ggml layout")
    };
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert!(want.iter().all(|v| v.is_finite()));
    assert_eq!(
        bits(&got),
        bits(&want),
        "{} {rows}×{} n={n} against {what}",
        kernels.tier,
        plain.k()
    );
}

/// A Q4_K matrix repacked at load (Q4_K×8) gives, on every tier: for n > 1 the result of
/// [`assert_repacked_matches`] (below 8 tokens its n = 1 results, else the ggml layout's, bit
/// for bit); for n = 1
/// each row's dot within the rounding bound of scalar (bit for bit on the scalar tier, whose
/// group dot is the portable one); and inside `matmul_vec_many`, beside ggml-layout matrices,
/// its own `matmul` result bit for bit.
#[test]
fn repacked_matrices_match_their_ggml_layout() {
    repacked_matrix_matches_its_ggml_layout(GgmlType::Q4_K, WeightLayout::Q4KX8, 43);
}

/// As [`repacked_matrices_match_their_ggml_layout`], Q6_K×8, which the x86 tiers have group
/// dots for.
#[test]
fn repacked_q6_k_matrices_match_their_ggml_layout() {
    for tier in [Tier::Avx2, Tier::Avx512]
        .into_iter()
        .filter(|t| t.is_supported())
    {
        let kernels = Kernels::for_tier(tier).expect("supported tier");
        assert!(kernels.repacked.q6_k_x8.is_some(), "{tier}: no Q6_K×8 dot");
    }
    repacked_matrix_matches_its_ggml_layout(GgmlType::Q6_K, WeightLayout::Q6KX8, 44);
}

/// As [`repacked_matrices_match_their_ggml_layout`], Q8_0×8, which the x86 tiers have group
/// dots for.
#[test]
fn repacked_q8_0_matrices_match_their_ggml_layout() {
    for tier in [Tier::Avx2, Tier::Avx512]
        .into_iter()
        .filter(|t| t.is_supported())
    {
        let kernels = Kernels::for_tier(tier).expect("supported tier");
        assert!(kernels.repacked.q8_0_x8.is_some(), "{tier}: no Q8_0×8 dot");
    }
    repacked_matrix_matches_its_ggml_layout(GgmlType::Q8_0, WeightLayout::Q8_0X8, 46);
}

fn repacked_matrix_matches_its_ggml_layout(w_type: GgmlType, layout: WeightLayout, seed: u64) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut rng = rng(seed);
    for k in [256, 768, 4096] {
        let rows = 72;
        let wf: Vec<f32> = realistic_f32(rows * k, &mut rng)
            .iter()
            .map(|v| v * 0.02)
            .collect();
        let ggml = quantize(w_type, &wf);
        let packed = repacked(w_type, layout, rows, k, &ggml);
        let plain = QuantMatrix::new(w_type, rows, k, &ggml).unwrap();
        let repacked = QuantMatrix::with_layout(w_type, rows, k, layout, &packed).unwrap();
        for kernels in tiers() {
            let tier = kernels.tier;
            // The loader repacks where the tier has a group dot.
            let has_dot = kernels.repacked.get(layout).is_some();
            let preferred = if has_dot { layout } else { WeightLayout::Ggml };
            assert_eq!(
                repack::preferred_layout(kernels, w_type, rows, k),
                preferred
            );
            let odd_rows = repack::preferred_layout(kernels, w_type, rows - 4, k);
            assert_eq!(odd_rows, WeightLayout::Ggml, "{tier} {}×{k}", rows - 4);
            for n in [2, 3, 7, 17, 40] {
                let x = realistic_f32(n * k, &mut rng);
                assert_repacked_matches(&pool, kernels, (&plain, &repacked), &x, n);
            }
            let x = realistic_f32(k, &mut rng);
            let act = activation_type(w_type).expect("paired");
            let mut a = vec![0u8; llava::quant::row_bytes(act, k).unwrap()];
            kernels.quantize_activations(act, &x, &mut a).unwrap();
            let mut y = vec![f32::NAN; rows];
            pool.install(|| matmul(kernels, &repacked, &x, 1, &mut y))
                .unwrap();
            for (r, got) in y.iter().enumerate() {
                let row = &ggml[r * plain.row_bytes()..(r + 1) * plain.row_bytes()];
                let reference = scalar().dot(w_type, k, row, &a).unwrap();
                let what = format!("{tier} k={k} n=1 row {r}");
                if tier == Tier::Scalar {
                    assert_eq!(got.to_bits(), reference.to_bits(), "{what}");
                }
                let tol = tolerance(w_type, k, magnitude(w_type, k, row, &a), FLOAT_LANES);
                let diff = f64::from(got - reference).abs();
                assert!(diff <= tol, "{what}: {got} vs scalar {reference}");
            }
            let mut outs = [vec![f32::NAN; rows], vec![f32::NAN; rows]];
            let [first, second] = &mut outs;
            pool.install(|| matmul_vec_many(kernels, &[repacked, plain], &x, &mut [first, second]))
                .unwrap();
            let mut want = vec![0f32; rows];
            matmul(kernels, &repacked, &x, 1, &mut want).unwrap();
            assert_eq!(outs[0], want, "{tier} k={k}: matmul_vec_many, repacked");
            matmul(kernels, &plain, &x, 1, &mut want).unwrap();
            assert_eq!(outs[1], want, "{tier} k={k}: matmul_vec_many, ggml layout");
        }
    }
    repacked_matrix_matches_at_many_tokens(w_type, layout, &mut rng);
    // A layout that cannot hold the matrix is refused at construction.
    let twelve_rows = vec![0u8; 12 * llava::quant::row_bytes(w_type, 256).unwrap()];
    assert!(matches!(
        QuantMatrix::with_layout(w_type, 12, 256, layout, &twelve_rows),
        Err(KernelError::LayoutRows { rows: 12, .. })
    ));
}

/// n > 1 on a repacked matrix of more rows than one 64-row unpacking run per task (536 rows,
/// 67 groups: tasks of 128 rows, the last of 24), as [`assert_repacked_matches`]: just below
/// the packed tiles' threshold (8), at it, just past it, at 33 and 512 tokens.
fn repacked_matrix_matches_at_many_tokens(
    w_type: GgmlType,
    layout: WeightLayout,
    rng: &mut Xoshiro256PlusPlus,
) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let (rows, k) = (536, 256);
    let wf: Vec<f32> = realistic_f32(rows * k, rng)
        .iter()
        .map(|v| v * 0.02)
        .collect();
    let ggml = quantize(w_type, &wf);
    let packed = repacked(w_type, layout, rows, k, &ggml);
    let plain = QuantMatrix::new(w_type, rows, k, &ggml).unwrap();
    let repacked = QuantMatrix::with_layout(w_type, rows, k, layout, &packed).unwrap();
    for kernels in tiers() {
        for n in [7, 8, 9, 33, 512] {
            let x = realistic_f32(n * k, rng);
            assert_repacked_matches(&pool, kernels, (&plain, &repacked), &x, n);
        }
    }
}

/// The Q4_K×8 group dots of every tier that has one (x86: AVX2, AVX-512) against the portable
/// one (per row the scalar dot of the unpacked row): bit for bit on exact inputs, also at the
/// ends of the integer ranges (`extreme_q4_k_rows`: sub-block sums of ±61440), and within the
/// rounding bound on realistic ones (each row keeps `nb` terms in each of its two float
/// accumulators, as the one-row dots). k = 256, 512, 768 and 4096, 1, 2 and 3 groups (passes
/// of two groups and a remainder), every group dotted alone equal bit for bit to the same group
/// in the run.
#[test]
fn q4_k_x8_group_dots_match_the_portable_one() {
    let mut rng = rng(47);
    let w_type = GgmlType::Q4_K;
    let mut checked = Vec::new();
    for kernels in tiers() {
        let Some(group) = kernels.repacked.q4_k_x8 else {
            continue;
        };
        for k in [256, 512, 768, 4096] {
            let row_bytes = llava::quant::row_bytes(w_type, k).unwrap();
            for groups in [1, 2, 3] {
                let rows = 8 * groups;
                let what = |r: usize| format!("{} k={k} groups={groups} row {r}", kernels.tier);
                for round in 0..4 {
                    let (w, a) = if round < 2 || k > 768 {
                        exact_q4_k_rows(rows, k, &mut rng)
                    } else {
                        extreme_q4_k_rows(rows, k, &mut rng)
                    };
                    let packed = repacked_q4_k(rows, k, &w);
                    let ours = group_dot_rows(group, k, &packed, &a, rows);
                    let portable = group_dot_rows(repack::PORTABLE_Q4K_X8, k, &packed, &a, rows);
                    for (r, (o, p)) in ours.iter().zip(&portable).enumerate() {
                        assert_eq!(o.to_bits(), p.to_bits(), "{} exact: {o} vs {p}", what(r));
                    }
                }
                let wf: Vec<f32> = realistic_f32(rows * k, &mut rng)
                    .iter()
                    .map(|v| v * 0.02)
                    .collect();
                let w = quantize(w_type, &wf);
                let a = quantize(GgmlType::Q8_K, &realistic_f32(k, &mut rng));
                let packed = repacked_q4_k(rows, k, &w);
                let ours = group_dot_rows(group, k, &packed, &a, rows);
                let portable = group_dot_rows(repack::PORTABLE_Q4K_X8, k, &packed, &a, rows);
                for (r, (o, p)) in ours.iter().zip(&portable).enumerate() {
                    let row = &w[r * row_bytes..(r + 1) * row_bytes];
                    let tol = tolerance(w_type, k, magnitude(w_type, k, row, &a), FLOAT_LANES);
                    let diff = f64::from(o - p).abs();
                    assert!(
                        diff <= tol,
                        "{}: {o} vs portable {p}, |diff| {diff:e} > {tol:e}",
                        what(r)
                    );
                }
                let group_bytes = 8 * row_bytes;
                for (g, part) in packed.chunks_exact(group_bytes).enumerate() {
                    let alone = group_dot_rows(group, k, part, &a, 8);
                    for (r, v) in alone.iter().enumerate() {
                        let whole = ours[8 * g + r];
                        let r = 8 * g + r;
                        assert_eq!(
                            v.to_bits(),
                            whole.to_bits(),
                            "{} alone: {v} vs {whole}",
                            what(r)
                        );
                    }
                }
            }
        }
        checked.push(kernels.tier);
    }
    for tier in [Tier::Avx2, Tier::Avx512] {
        if tier.is_supported() {
            assert!(checked.contains(&tier), "{tier} has a Q4_K×8 group dot");
        }
    }
}

/// n = 1 on a Q4_K (Q8_0) matrix repacked to the layout the tier prefers equals n = 1 on the
/// same matrix in ggml's layout within the rounding bound, and gives every row its group dot
/// bit for bit (however the rows are cut in tasks: Q8_0×8 tasks are 512 KiB, 120 rows of 4096,
/// so 264 rows make three), in two threads, every tier.
#[test]
fn repacked_decode_matmul_matches_the_ggml_layout_and_the_group_dot() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut rng = rng(53);
    let cases = [
        (GgmlType::Q4_K, WeightLayout::Q4KX8, repack::PORTABLE_Q4K_X8),
        (
            GgmlType::Q8_0,
            WeightLayout::Q8_0X8,
            repack::PORTABLE_Q8_0_X8,
        ),
    ];
    for ((w_type, x8, portable), kernels) in cases
        .into_iter()
        .flat_map(|c| tiers().into_iter().map(move |k| (c, k)))
    {
        let shapes: &[(usize, usize)] = if w_type == GgmlType::Q8_0 {
            &[(8, 96), (24, 512), (264, 4096), (40, 4128)]
        } else {
            &[(8, 256), (24, 512), (40, 768), (136, 4096)]
        };
        for &(rows, k) in shapes {
            let layout = repack::preferred_layout(kernels, w_type, rows, k);
            let expected = if kernels.repacked.get(x8).is_some() {
                x8
            } else {
                WeightLayout::Ggml
            };
            assert_eq!(layout, expected, "{} {rows}×{k}", kernels.tier);
            let wf: Vec<f32> = realistic_f32(rows * k, &mut rng)
                .iter()
                .map(|v| v * 0.02)
                .collect();
            let w = quantize(w_type, &wf);
            let packed = repacked(w_type, x8, rows, k, &w);
            let plain = QuantMatrix::new(w_type, rows, k, &w).unwrap();
            let repacked = QuantMatrix::with_layout(w_type, rows, k, x8, &packed).unwrap();
            let x = realistic_f32(k, &mut rng);
            let (mut want, mut got) = (vec![0f32; rows], vec![f32::NAN; rows]);
            pool.install(|| matmul(kernels, &plain, &x, 1, &mut want))
                .unwrap();
            pool.install(|| matmul(kernels, &repacked, &x, 1, &mut got))
                .unwrap();
            let act = activation_type(w_type).expect("paired");
            let mut a = vec![0u8; llava::quant::row_bytes(act, k).unwrap()];
            kernels.quantize_activations(act, &x, &mut a).unwrap();
            let group = kernels.repacked.get(x8).unwrap_or(portable);
            let dots = group_dot_rows(group, k, &packed, &a, rows);
            for r in 0..rows {
                let what = format!("{} {rows}×{k} row {r}", kernels.tier);
                assert_eq!(
                    got[r].to_bits(),
                    dots[r].to_bits(),
                    "{what}: {} vs group dot {}",
                    got[r],
                    dots[r]
                );
                let row = &w[r * plain.row_bytes()..(r + 1) * plain.row_bytes()];
                let tol = tolerance(w_type, k, magnitude(w_type, k, row, &a), FLOAT_LANES);
                let diff = f64::from(got[r] - want[r]).abs();
                assert!(diff <= tol, "{what}: {} vs ggml layout {}", got[r], want[r]);
            }
        }
    }
}

/// The Q6_K×8 group dots with the levels at the ends of their range (all 0 or all 63 per
/// block: `vpmaddubsw` pairs of 2·63·128 summed two by two come closest to an i16's range),
/// activation quants of -128 and 127, and scales over all of i8: within the rounding bound of
/// the scalar dot (which sums in i32) per row, on every tier.
#[test]
fn q6_k_group_dots_at_the_ends_of_the_ranges_match_scalar() {
    let mut rng = rng(45);
    let (w_type, layout, k, rows) = (GgmlType::Q6_K, WeightLayout::Q6KX8, 1024, 16);
    let mut w: Vec<u8> = (0..rows * k / 256 * 210).map(|_| rng.random()).collect();
    for block in w.chunks_exact_mut(210) {
        let level_bits = if rng.random() { 0xff } else { 0 };
        block[..192].fill(level_bits);
        block[208..].copy_from_slice(&half::f16::from_f32(0.001).to_bits().to_le_bytes());
    }
    let mut a = Vec::new();
    for _ in 0..k / 256 {
        let qs: Vec<i8> = (0..256)
            .map(|_| if rng.random() { 127 } else { -128 })
            .collect();
        a.extend_from_slice(&0.01f32.to_le_bytes());
        a.extend(qs.iter().map(|&q| q as u8));
        for group in qs.chunks_exact(16) {
            let sum: i16 = group.iter().map(|&q| i16::from(q)).sum();
            a.extend_from_slice(&sum.to_le_bytes());
        }
    }
    let packed = repacked(w_type, layout, rows, k, &w);
    let row_bytes = w.len() / rows;
    for kernels in tiers() {
        let dot = kernels
            .repacked
            .get(layout)
            .unwrap_or(repack::PORTABLE_Q6K_X8);
        let mut prepared = vec![0u8; (dot.prepared_bytes)(k)];
        (dot.prepare)(k, &a, &mut prepared);
        let mut out = vec![f32::NAN; rows];
        (dot.dot)(k, &packed, &prepared, &mut out);
        for (r, &got) in out.iter().enumerate() {
            let row = &w[r * row_bytes..(r + 1) * row_bytes];
            let reference = scalar().dot(w_type, k, row, &a).unwrap();
            let tol = tolerance(w_type, k, magnitude(w_type, k, row, &a), FLOAT_LANES);
            let diff = f64::from(got - reference).abs();
            assert!(
                diff <= tol,
                "{} row {r}: {got} vs scalar {reference}",
                kernels.tier
            );
        }
    }
}

/// `rows` Q8_0 rows of `k` (ggml's layout) and one Q8_0 activation row at the ends of the
/// ranges: weight quants all -128 or 127 or random bytes (-128 included), activation quants
/// ±127 (our quantizer's range) or random in it, scales from f16's smallest subnormal to its
/// largest finite value.
fn extreme_q8_0_rows(rows: usize, k: usize, rng: &mut Xoshiro256PlusPlus) -> (Vec<u8>, Vec<u8>) {
    let scales = [6.0e-8f32, 1.0e-4, 0.5, 1.0, 300.0, 65504.0];
    let mut block = |weights: bool| {
        let d = scales[rng.random_range(0..scales.len())];
        let mut out = half::f16::from_f32(d).to_bits().to_le_bytes().to_vec();
        let style = rng.random_range(0..3);
        out.extend((0..32).map(|_| match (weights, style) {
            (true, 0) => -128i8 as u8,
            (true, 1) => 127,
            (true, _) => rng.random::<u8>(),
            (false, 0) => 127,
            (false, 1) => -127i8 as u8,
            (false, _) => rng.random_range(-127i8..=127) as u8,
        }));
        out
    };
    let w: Vec<u8> = (0..rows * k / 32).flat_map(|_| block(true)).collect();
    let a: Vec<u8> = (0..k / 32).flat_map(|_| block(false)).collect();
    (w, a)
}

/// The Q8_0×8 group dots of every tier that has one (x86: AVX2, AVX-512) equal the portable
/// one (per row the scalar dot of the unpacked row) bit for bit: they sum each block's
/// products exactly and add `sumi · (d_w · d_y)` per block in the scalar order. On realistic
/// rows, exact ones and ones at the ends of the ranges; k = 32, 96 (not whole 256-element
/// super-blocks), 4096 and 4128, 1 to 4 and 9 groups, every group dotted alone equal to the
/// same group in the run.
#[test]
fn q8_0_x8_group_dots_equal_the_portable_one() {
    let mut rng = rng(48);
    let (w_type, layout) = (GgmlType::Q8_0, WeightLayout::Q8_0X8);
    let mut checked = Vec::new();
    for kernels in tiers() {
        let Some(group) = kernels.repacked.q8_0_x8 else {
            continue;
        };
        for k in [32, 96, 4096, 4128] {
            let row_bytes = llava::quant::row_bytes(w_type, k).unwrap();
            // 4 and 9: passes of 4 groups from 4 parts, and the rest one by one.
            for groups in [1, 2, 3, 4, 9] {
                let rows = 8 * groups;
                for round in 0..4 {
                    let (w, a) = match round {
                        0 => exact_rows(w_type, rows, k, &mut rng),
                        1 | 2 => extreme_q8_0_rows(rows, k, &mut rng),
                        _ => {
                            let wf: Vec<f32> = realistic_f32(rows * k, &mut rng)
                                .iter()
                                .map(|v| v * 0.02)
                                .collect();
                            let a = quantize(GgmlType::Q8_0, &realistic_f32(k, &mut rng));
                            (quantize(w_type, &wf), a)
                        }
                    };
                    let packed = repacked(w_type, layout, rows, k, &w);
                    let ours = group_dot_rows(group, k, &packed, &a, rows);
                    let portable = group_dot_rows(repack::PORTABLE_Q8_0_X8, k, &packed, &a, rows);
                    for (r, (o, p)) in ours.iter().zip(&portable).enumerate() {
                        let what = format!(
                            "{} k={k} groups={groups} round {round} row {r}",
                            kernels.tier
                        );
                        assert_eq!(o.to_bits(), p.to_bits(), "{what}: {o} vs portable {p}");
                        let row = &w[r * row_bytes..(r + 1) * row_bytes];
                        let reference = scalar().dot(w_type, k, row, &a).unwrap();
                        assert_eq!(o.to_bits(), reference.to_bits(), "{what}: vs scalar");
                    }
                    for (g, part) in packed.chunks_exact(8 * row_bytes).enumerate() {
                        let alone = group_dot_rows(group, k, part, &a, 8);
                        assert_eq!(
                            alone,
                            ours[8 * g..8 * g + 8],
                            "{} k={k} group {g} alone",
                            kernels.tier
                        );
                    }
                }
            }
        }
        checked.push(kernels.tier);
    }
    for tier in [Tier::Avx2, Tier::Avx512] {
        if tier.is_supported() {
            assert!(checked.contains(&tier), "{tier} has a Q8_0×8 group dot");
        }
    }
}

/// The decode loop's fused projections: several matrices of different types (so different
/// activation types) and odd row counts sharing one input row, in one parallel pass, give each
/// matrix's own `matmul` result bit for bit, on every tier, in two threads.
#[test]
fn matmul_vec_many_equals_one_matmul_per_matrix() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut rng = rng(29);
    let k = 512;
    let shapes = [
        (GgmlType::Q4_K, 70),
        (GgmlType::Q6_K, 3),
        (GgmlType::Q8_0, 17),
        (GgmlType::F16, 1),
        (GgmlType::Q4_K, 2),
        (GgmlType::Q4_0, 5),
        (GgmlType::Q4_0, 1),
    ];
    let weights: Vec<Vec<u8>> = shapes
        .iter()
        .map(|&(ty, rows)| {
            let wf: Vec<f32> = realistic_f32(rows * k, &mut rng)
                .iter()
                .map(|v| v * 0.02)
                .collect();
            quantize(ty, &wf)
        })
        .collect();
    let matrices: Vec<QuantMatrix> = shapes
        .iter()
        .zip(&weights)
        .map(|(&(ty, rows), w)| QuantMatrix::new(ty, rows, k, w).unwrap())
        .collect();
    let x = realistic_f32(k, &mut rng);
    for kernels in tiers() {
        let mut outs: Vec<Vec<f32>> = shapes.iter().map(|&(_, r)| vec![f32::NAN; r]).collect();
        let mut views: Vec<&mut [f32]> = outs.iter_mut().map(|v| &mut v[..]).collect();
        pool.install(|| matmul_vec_many(kernels, &matrices, &x, &mut views))
            .unwrap();
        for (m, got) in matrices.iter().zip(&outs) {
            let mut want = vec![0f32; m.rows()];
            matmul(kernels, m, &x, 1, &mut want).unwrap();
            let (got, want): (Vec<u32>, Vec<u32>) = (
                got.iter().map(|v| v.to_bits()).collect(),
                want.iter().map(|v| v.to_bits()).collect(),
            );
            assert_eq!(got, want, "{} {}×{k}", kernels.tier, m.ty());
        }
    }
    // Shapes: a matrix whose k is not the input's, an output of the wrong length, a missing one.
    let kernels = scalar();
    let mut a = vec![0f32; 70];
    let mut b = vec![0f32; 3];
    assert!(matches!(
        matmul_vec_many(kernels, &matrices[..2], &x[..256], &mut [&mut a, &mut b]),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(
        matmul_vec_many(kernels, &matrices[..2], &x, &mut [&mut a, &mut b[..2]]),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(
        matmul_vec_many(kernels, &matrices[..2], &x, &mut [&mut a]),
        Err(KernelError::Shape { .. })
    ));
}

#[test]
fn float_matmuls_match_the_naive_reference() {
    let mut rng = rng(27);
    let (n, rows, k) = (5, 9, 67);
    let x = realistic_f32(n * k, &mut rng);
    let w = realistic_f32(rows * k, &mut rng);
    let mut y = vec![0f32; n * rows];
    matmul_f32(&x, n, &w, rows, k, &mut y).unwrap();
    for t in 0..n {
        for r in 0..rows {
            let terms = x[t * k..(t + 1) * k].iter().zip(&w[r * k..(r + 1) * k]);
            let exact: f64 = terms
                .clone()
                .map(|(p, q)| f64::from(*p) * f64::from(*q))
                .sum();
            let bound: f64 = terms
                .map(|(p, q)| (f64::from(*p) * f64::from(*q)).abs())
                .sum();
            let tol = (k as f64 + 8.0) * U * bound;
            assert!((f64::from(y[t * rows + r]) - exact).abs() <= tol);
        }
    }

    let w16 = quantize(GgmlType::F16, &w);
    for kernels in tiers() {
        let mut y16 = vec![0f32; n * rows];
        matmul_f16(kernels, &w16, rows, k, &x, n, &mut y16).unwrap();
        let xq = quantize(GgmlType::F16, &x);
        for t in 0..n {
            for r in 0..rows {
                let a = &xq[t * k * 2..(t + 1) * k * 2];
                let wr = &w16[r * k * 2..(r + 1) * k * 2];
                let reference = scalar().dot(GgmlType::F16, k, wr, a).unwrap();
                let tol = tolerance(
                    GgmlType::F16,
                    k,
                    magnitude(GgmlType::F16, k, wr, a),
                    FLOAT_LANES,
                );
                assert!(
                    f64::from(y16[t * rows + r] - reference).abs() <= tol,
                    "{}",
                    kernels.tier
                );
            }
        }
    }

    let (m, d) = (k, 7);
    let v = realistic_f32(m * d, &mut rng);
    let mut out = vec![0f32; n * d];
    matmul_nn_f32(&x, n, m, &v, d, &mut out).unwrap();
    for t in 0..n {
        for j in 0..d {
            let terms = (0..m).map(|i| f64::from(x[t * m + i]) * f64::from(v[i * d + j]));
            let exact: f64 = terms.clone().sum();
            let bound: f64 = terms.map(f64::abs).sum();
            assert!((f64::from(out[t * d + j]) - exact).abs() <= (m as f64 + 8.0) * U * bound);
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let k = 256;
    let w = vec![0u8; 144 * 4];
    let q4k = GgmlType::Q4_K;
    assert!(matches!(
        QuantMatrix::new(q4k, 4, k, &w[..143 * 4]),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(
        QuantMatrix::new(q4k, 4, 100, &w),
        Err(KernelError::Quant(_))
    ));
    assert!(matches!(
        QuantMatrix::new(GgmlType::IQ2_XS, 4, k, &w),
        Err(KernelError::UnsupportedWeightType(GgmlType::IQ2_XS))
    ));
    let matrix = QuantMatrix::new(q4k, 4, k, &w).unwrap();
    let mut y = vec![0f32; 8];
    let err = matmul(scalar(), &matrix, &[0.0; 255 * 2], 2, &mut y).unwrap_err();
    assert!(err.to_string().contains("activation elements"), "{err}");
    let err = matmul(scalar(), &matrix, &vec![0.0; 512], 2, &mut y[..7]).unwrap_err();
    assert!(err.to_string().contains("output elements"), "{err}");
    assert!(matmul_f32(&[0.0; 6], 2, &[0.0; 6], 2, 4, &mut [0.0; 4]).is_err());
    assert!(matmul_nn_f32(&[0.0; 6], 2, 3, &[0.0; 5], 2, &mut [0.0; 4]).is_err());
    let s = scalar();
    assert!(s.dot(q4k, k, &w[..143], &vec![0u8; 292]).is_err());
    assert!(s.dot(q4k, k, &w[..144], &vec![0u8; 291]).is_err());
    assert!(
        s.dot(GgmlType::Q8_K, k, &w[..144], &vec![0u8; 292])
            .is_err()
    );
    assert!(
        s.quantize_activations(GgmlType::Q4_0, &[0.0; 32], &mut [0u8; 18])
            .is_err()
    );
    assert!(
        s.quantize_activations(GgmlType::Q8_0, &[0.0; 31], &mut [0u8; 34])
            .is_err()
    );
    let mut out = vec![0f32; 4];
    let short = s.gemm_tile(q4k, k, &w, 144, 4, &vec![0u8; 292], 292, 2, &mut out, 2);
    assert!(matches!(short, Err(KernelError::Shape { .. })), "{short:?}");
}

#[test]
fn llava_cpu_values_are_parsed_and_checked() {
    assert_eq!(
        kernels_for_request(Some("scalar")).unwrap().tier,
        Tier::Scalar
    );
    assert_eq!(
        kernels_for_request(Some(" Scalar\n")).unwrap().tier,
        Tier::Scalar
    );
    assert_eq!(
        kernels_for_request(None).unwrap().tier,
        Tier::best_supported()
    );
    assert_eq!(
        kernels_for_request(Some("")).unwrap().tier,
        Tier::best_supported()
    );
    for tier in Tier::ALL {
        assert_eq!(Tier::parse(tier.name()), Ok(tier));
        let chosen = kernels_for_request(Some(tier.name()));
        if tier.is_supported() {
            assert_eq!(chosen.unwrap().tier, tier);
        } else {
            let err = chosen.unwrap_err();
            assert!(
                matches!(err, KernelError::UnsupportedTier { .. }),
                "{err:?}"
            );
            assert!(
                err.to_string().contains("scalar"),
                "names the supported tiers: {err}"
            );
        }
    }
    let err = kernels_for_request(Some("avx9000")).unwrap_err();
    assert!(matches!(err, KernelError::UnknownTier { .. }));
    assert!(
        err.to_string().contains("avx9000") && err.to_string().contains("scalar"),
        "{err}"
    );
    #[cfg(target_arch = "x86_64")]
    assert!(!Tier::Neon.is_supported() && !Tier::NeonDotprod.is_supported());
    #[cfg(target_arch = "aarch64")]
    assert!(!Tier::Avx2.is_supported() && !Tier::Avx512.is_supported());
}

/// The activation loops (SwiGLU, quick GELU, a softmax's exp) of every tier equal the scalar table's bit for
/// bit (the same straight-line f32 per element, vectorised or not), at lengths that leave
/// every SIMD width a tail, over the whole useful range and the edges (±inf, huge, NaN).
#[test]
fn unary_loops_equal_the_scalar_ones() {
    let mut rng = rng(41);
    for len in [0, 1, 7, 15, 16, 17, 63, 1000] {
        let mut x: Vec<f32> = (0..len).map(|_| rng.random_range(-30.0f32..30.0)).collect();
        let up: Vec<f32> = (0..len).map(|_| rng.random_range(-4.0f32..4.0)).collect();
        for (i, edge) in [
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -1e30,
            f32::NAN,
            0.0,
            -0.0,
        ]
        .into_iter()
        .enumerate()
        {
            if i < len {
                x[i * 3 % len] = edge;
            }
        }
        let (mut want_g, mut want_s, mut want_e) = (x.clone(), x.clone(), x.clone());
        (scalar().unary.quick_gelu)(&mut want_g);
        (scalar().unary.swiglu)(&mut want_s, &up);
        (scalar().unary.scaled_exp)(&mut want_e, 0.125, 2.5);
        for kernels in tiers() {
            let (mut g, mut s, mut e) = (x.clone(), x.clone(), x.clone());
            (kernels.unary.quick_gelu)(&mut g);
            (kernels.unary.swiglu)(&mut s, &up);
            (kernels.unary.scaled_exp)(&mut e, 0.125, 2.5);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&g),
                bits(&want_g),
                "{} quick_gelu, len {len}",
                kernels.tier
            );
            assert_eq!(
                bits(&s),
                bits(&want_s),
                "{} swiglu, len {len}",
                kernels.tier
            );
            assert_eq!(
                bits(&e),
                bits(&want_e),
                "{} scaled_exp, len {len}",
                kernels.tier
            );
        }
    }
}

/// Attention's in-task f32 product (the start-up tier's token-major tile called once, or
/// `matmul_f32` below the packing threshold) equals `matmul_f32` (its tiles split among two
/// threads) bit for bit, at attention's shapes (`Q·Kᵀ`: 128 queries × 577 keys × 64; `P·V`:
/// 128 × 64 × 577) and small ones; bad shapes are errors.
#[test]
fn matmul_f32_in_task_equals_matmul_f32() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut rng = rng(31);
    for (n, rows, k) in [(5, 9, 67), (40, 70, 64), (128, 577, 64), (128, 64, 577)] {
        let x = realistic_f32(n * k, &mut rng);
        let w = realistic_f32(rows * k, &mut rng);
        let mut split = vec![f32::NAN; n * rows];
        let mut in_task = vec![f32::NAN; n * rows];
        pool.install(|| matmul_f32(&x, n, &w, rows, k, &mut split))
            .unwrap();
        pool.install(|| matmul_f32_in_task(&x, n, &w, rows, k, &mut in_task))
            .unwrap();
        for (i, (a, b)) in split.iter().zip(&in_task).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{n}×{rows}×{k} [{i}]: {a} vs {b}");
        }
    }
    let mut y = vec![0f32; 40 * 9];
    assert!(matmul_f32_in_task(&[0.0; 64 * 40], 40, &[0.0; 64 * 9], 9, 64, &mut y[..10]).is_err());
    assert!(matmul_f32_in_task(&[0.0; 64 * 39], 40, &[0.0; 64 * 9], 9, 64, &mut y).is_err());
}
