//! The AVX-512 tier: AVX-512 F + BW + VL (with AVX2 + FMA + F16C), with AVX-512 VNNI
//! (`vpdpbusd`/`vpdpwssd`, EVEX) where present.

use super::variant::x86_variant;
use crate::kernels::{Kernels, RepackedKernels};

x86_variant!(
    plain,
    "avx512f,avx512bw,avx512vl,avx2,fma,f16c",
    crate::kernels::x86::common::Avx2Mac,
    4,
    4,
    crate::kernels::x86::float_tile::Zmm,
    8,
    3,
    crate::kernels::x86::packed::Ymm256I16,
    1,
    4,
    // Float packed tile 1 × 14: its 14 partial and 14 total sums, the weight vector and a
    // broadcast fit the 32 zmm registers (2 × 12 spilled the totals every k-block).
    1,
    14
);
x86_variant!(
    vnni,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    crate::kernels::x86::common::Avx512VnniMac,
    4,
    4,
    crate::kernels::x86::float_tile::Zmm,
    8,
    3,
    crate::kernels::x86::packed::Zmm512Vnni,
    2,
    4,
    // As in `plain`.
    1,
    14
);

/// The AVX-512 tier's table: `base` (the scalar table) with the AVX-512 entries, VNNI ones if
/// the CPU has AVX-512 VNNI.
pub(crate) fn kernels(base: Kernels) -> Kernels {
    // The safe wrappers in the table rely on this check (see their SAFETY comments).
    assert!(
        is_supported(),
        "the AVX-512 tier was built on a CPU without AVX-512 F/BW/VL"
    );
    let table = if has_vnni() {
        vnni::table(base)
    } else {
        plain::table(base)
    };
    // The prepared decode dots and the Q4_K×8 group dot use VNNI; without it, the AVX2 tier's.
    let (decode, q4_k_x8) = if has_vnni() {
        (
            super::decode_dot::avx512::DECODE,
            super::q4k_x8::AVX512_VNNI,
        )
    } else {
        (super::decode_dot::avx2::DECODE, super::q4k_x8::AVX2)
    };
    let q6_k_x8 = if has_vnni() {
        super::q6k_x8::VNNI
    } else {
        super::q6k_x8::AVX2
    };
    let q8_0_x8 = if has_vnni() {
        super::q8_0_x8::VNNI
    } else {
        super::q8_0_x8::AVX2
    };
    Kernels {
        decode,
        repacked: RepackedKernels {
            q4_k_x8: Some(q4_k_x8),
            q6_k_x8: Some(q6_k_x8),
            q8_0_x8: Some(q8_0_x8),
        },
        ..table
    }
}

/// Whether this CPU runs the AVX-512 tier.
pub(crate) fn is_supported() -> bool {
    super::avx2::is_supported()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
}

/// Whether the AVX-512 tier can use AVX-512 VNNI here.
pub(crate) fn has_vnni() -> bool {
    is_supported() && is_x86_feature_detected!("avx512vnni")
}
