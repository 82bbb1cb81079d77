//! The AVX2 tier: AVX2 + FMA + F16C, with AVX-VNNI (`vpdpbusd`/`vpdpwssd`, VEX) where present.

use super::variant::x86_variant;
use crate::kernels::{Kernels, RepackedKernels};

x86_variant!(
    plain,
    "avx2,fma,f16c",
    crate::kernels::x86::common::Avx2Mac,
    2,
    4,
    crate::kernels::x86::float_tile::Ymm,
    4,
    3,
    crate::kernels::x86::packed::Ymm256I16,
    1,
    4,
    2,
    6
);
x86_variant!(
    vnni,
    "avx2,fma,f16c,avxvnni",
    crate::kernels::x86::common::AvxVnniMac,
    2,
    4,
    crate::kernels::x86::float_tile::Ymm,
    4,
    3,
    crate::kernels::x86::packed::Ymm256I16,
    1,
    4,
    2,
    6
);

/// The AVX2 tier's table: `base` (the scalar table) with the AVX2 entries, VNNI ones if the
/// CPU has AVX-VNNI.
pub(crate) fn kernels(base: Kernels) -> Kernels {
    // The safe wrappers in the table rely on this check (see their SAFETY comments).
    assert!(
        is_supported(),
        "the AVX2 tier was built on a CPU without AVX2/FMA/F16C"
    );
    let table = if has_vnni() {
        vnni::table(base)
    } else {
        plain::table(base)
    };
    Kernels {
        decode: super::decode_dot::avx2::DECODE,
        repacked: RepackedKernels {
            q4_k_x8: Some(super::q4k_x8::AVX2),
            q6_k_x8: Some(super::q6k_x8::AVX2),
            q8_0_x8: Some(super::q8_0_x8::AVX2),
        },
        ..table
    }
}

/// Whether this CPU runs the AVX2 tier.
pub(crate) fn is_supported() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// Whether the AVX2 tier can use AVX-VNNI here.
pub(crate) fn has_vnni() -> bool {
    is_supported() && is_x86_feature_detected!("avxvnni")
}
