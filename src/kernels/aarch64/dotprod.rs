//! The NEON + dotprod tier (Armv8.2 FEAT_DotProd, e.g. Cortex-A76, Neoverse N1, Apple M1):
//! the shared kernels with `sdot` as the int8 step ([`Sdot`]). The float dots and activation
//! quantizers are the NEON tier's (dotprod adds nothing to them).
//!
//! Every entry here executes `sdot`: they must only be reachable through the `NeonDotprod`
//! table, which is used only after `is_aarch64_feature_detected!("dotprod")`.

use super::simd::Sdot;
use super::{k_dots, legacy_dots};
use crate::kernels::{DotKernels, Kernels};

/// `base` with the NEON tier's entries, and this tier's int8 dots over them.
pub(crate) fn kernels(base: Kernels) -> Kernels {
    let neon = super::neon::kernels(base);
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
            ..neon.dot
        },
        ..neon
    }
}

/// Q4_0 · Q8_0.
pub(crate) fn vec_dot_q4_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only reachable through the NeonDotprod table, built after dotprod was detected.
    unsafe { legacy_dots::q4_0_q8_0(Sdot::new_unchecked(), n, w, a) }
}

/// Q4_1 · Q8_1.
pub(crate) fn vec_dot_q4_1_q8_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only reachable through the NeonDotprod table, built after dotprod was detected.
    unsafe { legacy_dots::q4_1_q8_1(Sdot::new_unchecked(), n, w, a) }
}

/// Q5_0 · Q8_0.
pub(crate) fn vec_dot_q5_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only reachable through the NeonDotprod table, built after dotprod was detected.
    unsafe { legacy_dots::q5_0_q8_0(Sdot::new_unchecked(), n, w, a) }
}

/// Q5_1 · Q8_1.
pub(crate) fn vec_dot_q5_1_q8_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only reachable through the NeonDotprod table, built after dotprod was detected.
    unsafe { legacy_dots::q5_1_q8_1(Sdot::new_unchecked(), n, w, a) }
}

/// Q8_0 · Q8_0.
pub(crate) fn vec_dot_q8_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only reachable through the NeonDotprod table, built after dotprod was detected.
    unsafe { legacy_dots::q8_0_q8_0(Sdot::new_unchecked(), n, w, a) }
}

/// Q2_K · Q8_K.
pub(crate) fn vec_dot_q2_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only reachable through the NeonDotprod table, built after dotprod was detected.
    unsafe { k_dots::q2_k_q8_k(Sdot::new_unchecked(), n, w, a) }
}

/// Q3_K · Q8_K.
pub(crate) fn vec_dot_q3_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only reachable through the NeonDotprod table, built after dotprod was detected.
    unsafe { k_dots::q3_k_q8_k(Sdot::new_unchecked(), n, w, a) }
}

/// Q4_K · Q8_K.
pub(crate) fn vec_dot_q4_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only reachable through the NeonDotprod table, built after dotprod was detected.
    unsafe { k_dots::q4_k_q8_k(Sdot::new_unchecked(), n, w, a) }
}

/// Q5_K · Q8_K.
pub(crate) fn vec_dot_q5_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only reachable through the NeonDotprod table, built after dotprod was detected.
    unsafe { k_dots::q5_k_q8_k(Sdot::new_unchecked(), n, w, a) }
}

/// Q6_K · Q8_K.
pub(crate) fn vec_dot_q6_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only reachable through the NeonDotprod table, built after dotprod was detected.
    unsafe { k_dots::q6_k_q8_k(Sdot::new_unchecked(), n, w, a) }
}
