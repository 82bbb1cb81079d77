//! The scalar kernels against ggml's own (`ggml-sys-bleedingedge`, ggml of llama.cpp b2757,
//! built for this CPU: its `vec_dot` are the AVX2 ones where the CPU has AVX2); the dot
//! products of every other tier this CPU supports too.
//!
//! - The pairing of weight and activation types is ggml's `vec_dot_type`.
//! - Activation quantizers give ggml's reference `from_float` bytes exactly (F32 is a copy).
//! - Dot products equal ggml's bit for bit on exact inputs (power-of-two scales, small
//!   integers: every order of summation is exact), and are within the bound of
//!   `kernels_support::tolerance` on realistic inputs. ggml's float dots keep 32 independent
//!   lanes (AVX: 4 registers of 8), hence `float_lanes = 32` here.
//!
//! BF16 is not in ggml b2757; its dot is checked against an f64 reference instead.

mod kernels_support;

use std::ffi::c_void;
use std::sync::Once;

use ggml_sys_bleedingedge as ggml;
use kernels_support::*;
use llava::GgmlType;
use llava::kernels::{
    ACTIVATION_TYPES, GroupDot, Kernels, Tier, WEIGHT_TYPES, WeightLayout, activation_type, repack,
};

fn init_ggml() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let params = ggml::ggml_init_params {
            mem_size: 1024,
            mem_buffer: std::ptr::null_mut(),
            no_alloc: true,
        };
        // SAFETY: plain FFI call with valid parameters; the context is freed right away, the
        // f16 tables it initialised are global and stay.
        unsafe {
            let ctx = ggml::ggml_init(params);
            assert!(!ctx.is_null(), "ggml_init failed");
            ggml::ggml_free(ctx);
        }
    });
}

fn traits(ty: GgmlType) -> ggml::ggml_type_traits_t {
    init_ggml();
    // SAFETY: returns a struct by value for a valid type id.
    unsafe { ggml::ggml_internal_get_type_traits(ty.id()) }
}

fn ggml_dot(w_type: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let vec_dot = traits(w_type).vec_dot.expect("ggml has a vec_dot");
    let mut s = f32::NAN;
    // SAFETY: both rows hold `n` elements of their types (checked by the callers' lengths),
    // one result is written to `s`.
    unsafe {
        vec_dot(
            n as i32,
            &mut s,
            0,
            w.as_ptr().cast::<c_void>(),
            0,
            a.as_ptr().cast::<c_void>(),
            0,
            1,
        )
    };
    s
}

fn scalar() -> &'static Kernels {
    Kernels::for_tier(Tier::Scalar).expect("scalar is always supported")
}

/// Every tier this CPU supports, the reference first.
fn tiers() -> Vec<&'static Kernels> {
    Tier::supported()
        .into_iter()
        .map(|t| Kernels::for_tier(t).expect("supported tier has a table"))
        .collect()
}

fn in_ggml(ty: GgmlType) -> bool {
    ty != GgmlType::BF16
}

#[test]
fn pairing_is_ggmls_vec_dot_type() {
    for w_type in WEIGHT_TYPES.into_iter().filter(|t| in_ggml(*t)) {
        let act = activation_type(w_type).expect("paired");
        assert_eq!(traits(w_type).vec_dot_type, act.id(), "{w_type}");
    }
    assert_eq!(activation_type(GgmlType::BF16), Some(GgmlType::BF16));
    assert_eq!(activation_type(GgmlType::IQ2_XS), None);
}

#[test]
fn activation_quantizers_match_ggml_reference_bytes() {
    let mut rng = rng(11);
    // ggml b2757 has no `from_float` for F32 (its activations are the row itself).
    let converted = ACTIVATION_TYPES
        .into_iter()
        .filter(|t| in_ggml(*t) && *t != GgmlType::F32);
    for act in converted {
        for n in lengths(act) {
            let x = realistic_f32(n, &mut rng);
            let mut ours = vec![0u8; act.bytes_for(n as u64).unwrap() as usize];
            scalar().quantize_activations(act, &x, &mut ours).unwrap();
            let mut theirs = vec![0u8; ours.len()];
            let t = traits(act);
            let from_float = t.from_float_reference.or(t.from_float).expect("from_float");
            // SAFETY: `x` holds n floats, `theirs` exactly the bytes of n elements of `act`.
            unsafe { from_float(x.as_ptr(), theirs.as_mut_ptr().cast(), n as i64) };
            assert_eq!(ours, theirs, "{act} n={n}");
        }
    }
}

#[test]
fn f32_activations_are_the_row_bytes() {
    let x = realistic_f32(64, &mut rng(15));
    let mut out = vec![0u8; 256];
    scalar()
        .quantize_activations(GgmlType::F32, &x, &mut out)
        .unwrap();
    let expected: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(out, expected);
}

#[test]
fn dots_equal_ggml_on_exact_inputs() {
    let mut rng = rng(12);
    for w_type in WEIGHT_TYPES.into_iter().filter(|t| in_ggml(*t)) {
        for n in lengths(w_type) {
            for _ in 0..4 {
                let (w, a) = exact_pair(w_type, n, &mut rng);
                let theirs = ggml_dot(w_type, n, &w, &a);
                for kernels in tiers() {
                    for (what, ours) in tier_dots(kernels, w_type, n, &w, &a) {
                        assert_eq!(
                            ours.to_bits(),
                            theirs.to_bits(),
                            "{} {w_type} n={n}{what}: {ours} vs {theirs}",
                            kernels.tier
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn dots_are_within_the_rounding_bound_of_ggml() {
    let mut rng = rng(13);
    let mut worst = 0.0f64;
    for w_type in WEIGHT_TYPES.into_iter().filter(|t| in_ggml(*t)) {
        for n in lengths(w_type) {
            for _ in 0..8 {
                let (w, a) = realistic_pair(w_type, n, &mut rng);
                let theirs = ggml_dot(w_type, n, &w, &a);
                let bound = magnitude(w_type, n, &w, &a);
                for kernels in tiers() {
                    // The scalar float dots sum in f64; the SIMD tiers (and their prepared
                    // dots) keep at least 4 lanes.
                    let lanes = if kernels.tier == Tier::Scalar { 32 } else { 4 };
                    let tol = tolerance(w_type, n, bound, lanes);
                    for (what, ours) in tier_dots(kernels, w_type, n, &w, &a) {
                        let diff = f64::from(ours - theirs).abs();
                        assert!(
                            diff <= tol,
                            "{} {w_type} n={n}{what}: ours {ours}, ggml {theirs}, |diff| {diff:e} > {tol:e}",
                            kernels.tier
                        );
                        worst = worst.max(diff / tol);
                    }
                }
            }
        }
    }
    println!("largest |ours - ggml| / tolerance: {worst:.3}");
}

/// Each tier's Q4_K×8 group dot (on the rows repacked) against ggml's `vec_dot_q4_K_q8_K` on
/// each row in ggml's layout (ggml b2757 has no repacked layout): bit for bit on exact inputs
/// (also at the ends of the integer ranges), within the rounding bound on realistic ones; k =
/// 256, 512, 768 and 4096, 1, 2 and 3 groups of 8 rows.
#[test]
fn q4_k_x8_group_dots_match_ggml_per_row() {
    let mut rng = rng(17);
    let w_type = GgmlType::Q4_K;
    let mut checked = 0;
    for k in [256, 512, 768, 4096] {
        let row_bytes = llava::quant::row_bytes(w_type, k).unwrap();
        for groups in [1, 2, 3] {
            let rows = 8 * groups;
            for round in 0..5 {
                let (w, a) = match round {
                    0 | 1 => exact_q4_k_rows(rows, k, &mut rng),
                    2 if k <= 768 => extreme_q4_k_rows(rows, k, &mut rng),
                    _ => {
                        let wf: Vec<f32> = realistic_f32(rows * k, &mut rng)
                            .iter()
                            .map(|v| v * 0.02)
                            .collect();
                        let a = realistic_f32(k, &mut rng);
                        (quantize(w_type, &wf), quantize(GgmlType::Q8_K, &a))
                    }
                };
                let exact = round < 2 || (round == 2 && k <= 768);
                let packed = repacked_q4_k(rows, k, &w);
                for kernels in tiers() {
                    let Some(group) = kernels.repacked.q4_k_x8 else {
                        continue;
                    };
                    let ours = group_dot_rows(group, k, &packed, &a, rows);
                    for (r, o) in ours.iter().enumerate() {
                        let row = &w[r * row_bytes..(r + 1) * row_bytes];
                        let theirs = ggml_dot(w_type, k, row, &a);
                        let what = format!("{} k={k} groups={groups} row {r}", kernels.tier);
                        if exact {
                            assert_eq!(
                                o.to_bits(),
                                theirs.to_bits(),
                                "{what}: {o} vs ggml {theirs}"
                            );
                        } else {
                            let tol = tolerance(w_type, k, magnitude(w_type, k, row, &a), 4);
                            let diff = f64::from(o - theirs).abs();
                            assert!(
                                diff <= tol,
                                "{what}: {o} vs ggml {theirs}, |diff| {diff:e} > {tol:e}"
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    if Tier::Avx2.is_supported() {
        assert!(checked > 0, "the x86 tiers have Q4_K×8 group dots");
    }
}

#[test]
fn bf16_dot_is_the_f64_sum_of_exact_products() {
    let mut rng = rng(14);
    for n in [1, 31, 4096] {
        let (x, y) = (realistic_f32(n, &mut rng), realistic_f32(n, &mut rng));
        let (w, a) = (quantize(GgmlType::BF16, &x), quantize(GgmlType::BF16, &y));
        let (xd, yd) = (
            dequantize(GgmlType::BF16, &w, n),
            dequantize(GgmlType::BF16, &a, n),
        );
        let exact: f64 = xd
            .iter()
            .zip(&yd)
            .map(|(p, q)| f64::from(*p) * f64::from(*q))
            .sum();
        let ours = scalar().dot(GgmlType::BF16, n, &w, &a).unwrap();
        // One rounding of the f64 sum to f32, plus the f64 summation error (n * 2^-53 * B).
        let bound = magnitude(GgmlType::BF16, n, &w, &a);
        let tol = f64::from(ours).abs() * U + n as f64 * U * U * 2.0 * bound;
        assert!(
            (f64::from(ours) - exact).abs() <= tol,
            "n={n}: {ours} vs {exact}"
        );
    }
}

/// The gemm tiles of every tier this CPU supports (the x86 packed tiles among them) against
/// ggml's `vec_dot`, cell by cell: bit for bit on exact inputs, within the rounding bound
/// (`float_lanes` 4, the fewest any of our kernels keeps) of it on realistic ones. Shapes: one
/// and three blocks; tokens 1, 2, 3, 17; weight rows across vector groups and packing chunks.
#[test]
fn gemm_tiles_of_every_tier_match_ggml() {
    let mut rng = rng(14);
    let tiers: Vec<&Kernels> = Tier::supported()
        .into_iter()
        .map(|t| Kernels::for_tier(t).expect("supported tier"))
        .collect();
    for w_type in WEIGHT_TYPES.into_iter().filter(|t| in_ggml(*t)) {
        let act_type = activation_type(w_type).expect("paired");
        for n in &lengths(w_type)[..2] {
            let n = *n;
            for exact in [true, false] {
                let pairs: Vec<_> = (0..70)
                    .map(|_| {
                        if exact {
                            exact_pair(w_type, n, &mut rng)
                        } else {
                            realistic_pair(w_type, n, &mut rng)
                        }
                    })
                    .collect();
                let w: Vec<u8> = pairs.iter().flat_map(|p| p.0.clone()).collect();
                let a: Vec<u8> = pairs.iter().flat_map(|p| p.1.clone()).collect();
                let (w_row, a_row) = (pairs[0].0.len(), pairs[0].1.len());
                assert_eq!(a_row, act_type.bytes_for(n as u64).unwrap() as usize);
                for (rows, cols) in [(1, 1), (17, 2), (33, 3), (70, 17)] {
                    let theirs: Vec<f32> = (0..rows * cols)
                        .map(|i| {
                            let (r, c) = (i / cols, i % cols);
                            ggml_dot(w_type, n, &pairs[r].0, &pairs[c].1)
                        })
                        .collect();
                    for kernels in &tiers {
                        let mut out = vec![f32::NAN; rows * cols];
                        kernels
                            .gemm_tile(
                                w_type,
                                n,
                                &w[..rows * w_row],
                                w_row,
                                rows,
                                &a[..cols * a_row],
                                a_row,
                                cols,
                                &mut out,
                                cols,
                            )
                            .unwrap();
                        for (i, (&ours, &theirs)) in out.iter().zip(&theirs).enumerate() {
                            let (r, c) = (i / cols, i % cols);
                            let what = format!(
                                "{} {w_type} n={n} {rows}×{cols} ({r},{c}): {ours} vs ggml {theirs}",
                                kernels.tier
                            );
                            if exact {
                                assert_eq!(ours.to_bits(), theirs.to_bits(), "{what}");
                            } else {
                                let bound = magnitude(w_type, n, &pairs[r].0, &pairs[c].1);
                                let tol = tolerance(w_type, n, bound, 4);
                                assert!(f64::from(ours - theirs).abs() <= tol, "{what}");
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The group dots of the repacked layouts, every tier's (the portable ones too) against ggml's
/// `vec_dot` of each row in ggml's layout: bit for bit on exact inputs, within the rounding
/// bound (4 lanes) on realistic ones; k = 256, 512, 768, 4096 (Q8_0: 32, 96, 256, 4096, 4128)
/// and 1, 2, 3 groups of 8 rows.
#[test]
fn group_dots_on_repacked_layouts_match_ggml_per_row() {
    let mut rng = rng(15);
    let layouts = [
        (GgmlType::Q4_K, WeightLayout::Q4KX8, repack::PORTABLE_Q4K_X8),
        (GgmlType::Q6_K, WeightLayout::Q6KX8, repack::PORTABLE_Q6K_X8),
        (
            GgmlType::Q8_0,
            WeightLayout::Q8_0X8,
            repack::PORTABLE_Q8_0_X8,
        ),
    ];
    for (w_type, layout, portable) in layouts {
        let act = activation_type(w_type).expect("paired");
        let mut dots: Vec<(String, GroupDot)> = vec![("portable".into(), portable)];
        for kernels in tiers() {
            if let Some(dot) = kernels.repacked.get(layout) {
                dots.push((kernels.tier.name().into(), dot));
            }
        }
        println!(
            "{layout}: {:?}",
            dots.iter().map(|d| &d.0).collect::<Vec<_>>()
        );
        // Q8_0: also k = 32, 96 and 4128, whole 32-element blocks but not 256-element ones.
        let lengths: &[usize] = if w_type == GgmlType::Q8_0 {
            &[32, 96, 256, 4096, 4128]
        } else {
            &[256, 512, 768, 4096]
        };
        for &k in lengths {
            for groups in 1..=3 {
                let rows = 8 * groups;
                for exact in [true, false] {
                    let (w, a) = if exact {
                        exact_rows(w_type, rows, k, &mut rng)
                    } else {
                        let w: Vec<f32> = realistic_f32(rows * k, &mut rng)
                            .iter()
                            .map(|v| v * 0.02)
                            .collect();
                        (
                            quantize(w_type, &w),
                            quantize(act, &realistic_f32(k, &mut rng)),
                        )
                    };
                    let row_bytes = w.len() / rows;
                    let packed = repacked(w_type, layout, rows, k, &w);
                    for (name, dot) in &dots {
                        let mut prepared = vec![0xa5u8; (dot.prepared_bytes)(k)];
                        (dot.prepare)(k, &a, &mut prepared);
                        let mut out = vec![f32::NAN; rows];
                        (dot.dot)(k, &packed, &prepared, &mut out);
                        for (r, &ours) in out.iter().enumerate() {
                            let row = &w[r * row_bytes..(r + 1) * row_bytes];
                            let theirs = ggml_dot(w_type, k, row, &a);
                            let bound = magnitude(w_type, k, row, &a);
                            let what = format!("{name} {layout} k={k} row {r}/{rows}");
                            if exact {
                                assert_eq!(
                                    ours.to_bits(),
                                    theirs.to_bits(),
                                    "{what}: {ours} vs {theirs}"
                                );
                            } else {
                                let tol = tolerance(w_type, k, bound, 4);
                                let diff = f64::from(ours - theirs).abs();
                                assert!(
                                    diff <= tol,
                                    "{what}: ours {ours}, ggml {theirs}, |diff| {diff:e} > {tol:e}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
