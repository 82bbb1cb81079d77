//! The AVX-512 tier: AVX-512 F + BW + VL (with AVX2 + FMA + F16C), with AVX-512 VNNI
//! (`vpdpbusd`/`vpdpwssd`, EVEX) where present.

use super::variant::x86_variant;

x86_variant!(
    plain,
    "avx512f,avx512bw,avx512vl,avx2,fma,f16c",
    crate::kernels::x86::common::Avx2Mac
);
x86_variant!(
    vnni,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    crate::kernels::x86::common::Avx512VnniMac
);

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
