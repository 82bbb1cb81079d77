//! The NEON tier (every aarch64 CPU): the shared kernels with the widening-multiply int8 step
//! ([`WideningMul`]), plus the float dots and activation quantizers.
//!
//! NEON is part of the aarch64 baseline, so these entries are sound on any CPU this code runs
//! on; they are still reached only through the tier table.

use super::simd::WideningMul;
use super::{act, float_dots, k_dots, legacy_dots};
use crate::kernels::{ActKernels, DotKernels, Kernels};

/// `base` with the entries this tier implements replaced.
pub(crate) fn kernels(base: Kernels) -> Kernels {
    Kernels {
        dot: DotKernels {
            q4_0: vec_dot_q4_0_q8_0,
            q4_1: vec_dot_q4_1_q8_1,
            q5_0: vec_dot_q5_0_q8_0,
            q5_1: vec_dot_q5_1_q8_1,
            q8_0: vec_dot_q8_0_q8_0,
            q2_k: vec_dot_q2_k_q8_k,
            q3_k: vec_dot_q3_k_q8_k,
            q4_k: vec_dot_q4_k_q8_k,
            q5_k: vec_dot_q5_k_q8_k,
            q6_k: vec_dot_q6_k_q8_k,
            f16: float_dots::f16_dot,
            bf16: float_dots::bf16_dot,
            f32: float_dots::f32_dot,
        },
        act: ActKernels {
            q8_0: act::quantize_row_q8_0,
            q8_1: act::quantize_row_q8_1,
            q8_k: act::quantize_row_q8_k,
            f16: act::convert_row_f16,
            bf16: act::convert_row_bf16,
            ..base.act
        },
        ..base
    }
}

/// Q4_0 · Q8_0.
pub(crate) fn vec_dot_q4_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { legacy_dots::q4_0_q8_0(WideningMul, n, w, a) }
}

/// Q4_1 · Q8_1.
pub(crate) fn vec_dot_q4_1_q8_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { legacy_dots::q4_1_q8_1(WideningMul, n, w, a) }
}

/// Q5_0 · Q8_0.
pub(crate) fn vec_dot_q5_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { legacy_dots::q5_0_q8_0(WideningMul, n, w, a) }
}

/// Q5_1 · Q8_1.
pub(crate) fn vec_dot_q5_1_q8_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { legacy_dots::q5_1_q8_1(WideningMul, n, w, a) }
}

/// Q8_0 · Q8_0.
pub(crate) fn vec_dot_q8_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { legacy_dots::q8_0_q8_0(WideningMul, n, w, a) }
}

/// Q2_K · Q8_K.
pub(crate) fn vec_dot_q2_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { k_dots::q2_k_q8_k(WideningMul, n, w, a) }
}

/// Q3_K · Q8_K.
pub(crate) fn vec_dot_q3_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { k_dots::q3_k_q8_k(WideningMul, n, w, a) }
}

/// Q4_K · Q8_K.
pub(crate) fn vec_dot_q4_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { k_dots::q4_k_q8_k(WideningMul, n, w, a) }
}

/// Q5_K · Q8_K.
pub(crate) fn vec_dot_q5_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { k_dots::q5_k_q8_k(WideningMul, n, w, a) }
}

/// Q6_K · Q8_K.
pub(crate) fn vec_dot_q6_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { k_dots::q6_k_q8_k(WideningMul, n, w, a) }
}
