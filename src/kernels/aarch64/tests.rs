//! What `tests/kernels_tiers.rs` does not reach: the quantizers' fallback to the scalar
//! reference on special values, float tails (lengths that are not a multiple of the vector
//! loop), int8 extremes, and the dotprod detection under each emulated CPU.

use crate::GgmlType;
use crate::kernels::{Kernels, Tier, activation_type, scalar};

/// The aarch64 tiers this CPU runs (NEON always; dotprod where detected).
fn tiers() -> Vec<&'static Kernels> {
    [Tier::Neon, Tier::NeonDotprod]
        .into_iter()
        .filter_map(Kernels::for_tier)
        .collect()
}

/// A deterministic value stream (a 64-bit LCG), enough for test inputs.
struct Lcg(u64);

impl Lcg {
    fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }

    /// Roughly uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        self.next_u32() as f32 / 2_147_483_648.0 - 1.0
    }

    fn int(&mut self, bound: i32) -> i32 {
        (self.next_u32() % (2 * bound as u32 + 1)) as i32 - bound
    }
}

#[test]
fn dotprod_detection_matches_the_emulated_cpu() {
    // tools/test-aarch64.sh sets this per qemu CPU (0: Cortex-A72, 1: Cortex-A76).
    let Ok(expected) = std::env::var("LLAVA_EXPECT_DOTPROD") else {
        return;
    };
    assert!(Tier::Neon.is_supported(), "NEON is in every aarch64 CPU");
    assert_eq!(
        Tier::NeonDotprod.is_supported(),
        expected == "1",
        "dotprod detection (LLAVA_EXPECT_DOTPROD={expected})"
    );
}

/// Rows of `n` floats whose blocks exercise the special cases of the activation quantizers.
fn special_rows(n: usize) -> Vec<Vec<f32>> {
    let mut rng = Lcg(7);
    let base: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
    let with = |edits: &[(usize, f32)]| {
        let mut row = base.clone();
        for &(i, v) in edits {
            row[i % n] = v;
        }
        row
    };
    let quiet_nan_with_payload = f32::from_bits(0x7fc0_1234);
    let signalling_nan = f32::from_bits(0xff80_0001);
    vec![
        with(&[(3, f32::NAN)]),
        with(&[(31, quiet_nan_with_payload), (40, signalling_nan)]),
        with(&[(0, f32::INFINITY), (77, f32::NEG_INFINITY)]),
        // Largest magnitude with both signs: the first one decides Q8_K's sign.
        with(&[(5, -3.0), (9, 3.0), (300, 3.0), (301, -3.0)]),
        with(&[(5, 3.0), (9, -3.0)]),
        // Subnormal blocks: the inverse scale overflows to infinity.
        base.iter().map(|v| v * 1e-39).collect(),
        base.iter().map(|v| v * 1e-44).collect(),
        // f16 overflow, rounding ties of f16 and bf16, signed zeros.
        with(&[(1, 70_000.0), (2, 1.0 + f32::powi(2.0, -11)), (4, -0.0)]),
        with(&[
            (6, f32::from_bits(0x3f80_8000)),
            (7, f32::from_bits(0x3f81_8000)),
        ]),
        vec![-0.0; n],
    ]
}

#[test]
fn activation_quantizers_match_scalar_on_special_values() {
    for kernels in tiers() {
        for act in [
            GgmlType::Q8_0,
            GgmlType::Q8_1,
            GgmlType::Q8_K,
            GgmlType::F16,
            GgmlType::BF16,
        ] {
            let block = act.block_size();
            // Float rows also get lengths that leave a tail after the 8- or 4-lane loop.
            let lengths: &[usize] = if block == 1 {
                &[1, 7, 13, 45, 512]
            } else {
                &[256, 512]
            };
            for &n in lengths {
                for (i, x) in special_rows(n).iter().enumerate() {
                    let size = act.bytes_for(n as u64).unwrap_or(0) as usize;
                    let (mut ours, mut reference) = (vec![0u8; size], vec![0u8; size]);
                    kernels.quantize_activations(act, x, &mut ours).unwrap();
                    scalar::KERNELS
                        .quantize_activations(act, x, &mut reference)
                        .unwrap();
                    assert_eq!(ours, reference, "{} {act} n={n} row {i}", kernels.tier);
                }
            }
        }
    }
}

/// Small-integer float rows: every product and partial sum is exact in f32, so any order of
/// summation gives the scalar reference's bits.
#[test]
fn float_dots_handle_tails_exactly() {
    let mut rng = Lcg(11);
    for kernels in tiers() {
        for w_type in [GgmlType::F16, GgmlType::BF16, GgmlType::F32] {
            for n in [1, 5, 17, 45, 77, 130] {
                let w: Vec<f32> = (0..n).map(|_| rng.int(16) as f32).collect();
                let a: Vec<f32> = (0..n).map(|_| rng.int(16) as f32 * 0.25).collect();
                let size = w_type.bytes_for(n as u64).unwrap_or(0) as usize;
                let (mut wb, mut ab) = (vec![0u8; size], vec![0u8; size]);
                scalar::KERNELS
                    .quantize_activations(w_type, &w, &mut wb)
                    .unwrap();
                scalar::KERNELS
                    .quantize_activations(w_type, &a, &mut ab)
                    .unwrap();
                let ours = kernels.dot(w_type, n, &wb, &ab).unwrap();
                let reference = scalar::KERNELS.dot(w_type, n, &wb, &ab).unwrap();
                assert_eq!(
                    ours.to_bits(),
                    reference.to_bits(),
                    "{} {w_type} n={n}",
                    kernels.tier
                );
            }
        }
    }
}

/// Q8_0-paired weights with extreme quants (-128 in Q8_0 weights, ±127 activations, all 16
/// nibble values) and power-of-two scales: integer sums are exact, so bits must match scalar.
#[test]
fn legacy_dots_are_exact_at_int8_extremes() {
    let mut rng = Lcg(13);
    let scale = |bits: u16| bits.to_le_bytes();
    // f16 bits of 0.125 and -0.5.
    let (w_scale, a_scale) = (scale(0x3000), scale(0xb800));
    for kernels in tiers() {
        for w_type in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0] {
            let act = activation_type(w_type).unwrap_or(GgmlType::Q8_0);
            let n = 32 * 5;
            let (block_elems, block_bytes) = w_type.block_geometry();
            let mut w = Vec::new();
            for _ in 0..n / block_elems {
                w.extend_from_slice(&w_scale);
                w.extend((2..block_bytes).map(|_| {
                    if w_type == GgmlType::Q8_0 && rng.int(1) == 0 {
                        0x80 // -128
                    } else {
                        rng.next_u32() as u8
                    }
                }));
            }
            let mut a = Vec::new();
            for _ in 0..n / 32 {
                a.extend_from_slice(&a_scale);
                a.extend((0..32).map(|_| if rng.int(1) >= 0 { 127u8 } else { 0x81 }));
            }
            let ours = kernels.dot(w_type, n, &w, &a).unwrap();
            let reference = scalar::KERNELS.dot(w_type, n, &w, &a).unwrap();
            assert_eq!(
                ours.to_bits(),
                reference.to_bits(),
                "{} {w_type} ({act})",
                kernels.tier
            );
        }
    }
}
