//! Small 256-bit helpers shared by the x86 kernels, and the integer multiply-accumulate
//! primitive ([`Mac`]) that each tier variant supplies (AVX2, AVX-VNNI, AVX-512 VNNI).
//!
//! Everything here is `#[inline(always)]` and carries no `#[target_feature]` of its own: the
//! helpers are only ever inlined into a tier's `#[target_feature]` function, whose features
//! then apply to the intrinsics (so they inline too). Callers must hold at least AVX2 + FMA +
//! F16C (and the [`Mac`]'s own extension).

use std::arch::x86_64::*;

/// Loads 32 bytes from `p` (any alignment).
///
/// # Safety
/// `p..p + 32` must be readable; AVX must be enabled in the caller.
#[inline(always)]
pub(super) unsafe fn load256(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes; loadu has no alignment requirement.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// Loads 16 bytes from `p` (any alignment).
///
/// # Safety
/// `p..p + 16` must be readable.
#[inline(always)]
pub(super) unsafe fn load128(p: *const u8) -> __m128i {
    // SAFETY: the caller guarantees 16 readable bytes; loadu has no alignment requirement.
    unsafe { _mm_loadu_si128(p.cast()) }
}

/// Reads a little-endian u16 at `p` (any alignment).
///
/// # Safety
/// `p..p + 2` must be readable.
#[inline(always)]
pub(super) unsafe fn read_u16(p: *const u8) -> u16 {
    // SAFETY: the caller guarantees 2 readable bytes; read_unaligned has no alignment need.
    u16::from_le(unsafe { p.cast::<u16>().read_unaligned() })
}

/// Reads a little-endian u32 at `p` (any alignment).
///
/// # Safety
/// `p..p + 4` must be readable.
#[inline(always)]
pub(super) unsafe fn read_u32(p: *const u8) -> u32 {
    // SAFETY: the caller guarantees 4 readable bytes; read_unaligned has no alignment need.
    u32::from_le(unsafe { p.cast::<u32>().read_unaligned() })
}

/// Reads a little-endian u64 at `p` (any alignment).
///
/// # Safety
/// `p..p + 8` must be readable.
#[inline(always)]
pub(super) unsafe fn read_u64(p: *const u8) -> u64 {
    // SAFETY: the caller guarantees 8 readable bytes; read_unaligned has no alignment need.
    u64::from_le(unsafe { p.cast::<u64>().read_unaligned() })
}

/// Reads a little-endian f32 at `p` (any alignment).
///
/// # Safety
/// `p..p + 4` must be readable.
#[inline(always)]
pub(super) unsafe fn read_f32(p: *const u8) -> f32 {
    // SAFETY: as read_u32.
    f32::from_bits(unsafe { read_u32(p) })
}

/// Reads an f16 at `p` and widens it to f32 (exactly, with F16C).
///
/// # Safety
/// `p..p + 2` must be readable; F16C must be enabled in the caller.
#[inline(always)]
pub(super) unsafe fn read_f16(p: *const u8) -> f32 {
    // SAFETY: 2 readable bytes (caller); F16C is enabled in every caller of this module.
    // A broadcast, not `_mm_cvtsi32_si128`: LLVM turns that into a `vpinsrw` merging into
    // whatever register is free, often an accumulator, which chains every block to the
    // previous block's FMA.
    unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(read_u16(p) as i16))) }
}

/// The product of the f16 values at `p` and `q`, in all 8 lanes.
///
/// # Safety
/// `p..p + 2` and `q..q + 2` must be readable; AVX2 + F16C must be enabled in the caller.
#[inline(always)]
pub(super) unsafe fn f16_product_splat(p: *const u8, q: *const u8) -> __m256 {
    // SAFETY: 2 readable bytes each (caller); register-only otherwise.
    unsafe {
        let x = _mm256_cvtph_ps(_mm_set1_epi16(read_u16(p) as i16));
        let y = _mm256_cvtph_ps(_mm_set1_epi16(read_u16(q) as i16));
        _mm256_mul_ps(x, y)
    }
}

/// Sum of the 8 lanes.
///
/// # Safety
/// AVX must be enabled in the caller.
#[inline(always)]
pub(super) unsafe fn hsum_ps(v: __m256) -> f32 {
    // SAFETY: register-only intrinsics; the caller holds AVX.
    unsafe {
        let x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        let x = _mm_add_ss(x, _mm_movehdup_ps(x));
        _mm_cvtss_f32(x)
    }
}

/// Sum of the 8 i32 lanes.
///
/// # Safety
/// AVX2 must be enabled in the caller.
#[inline(always)]
pub(super) unsafe fn hsum_epi32(v: __m256i) -> i32 {
    // SAFETY: register-only intrinsics.
    unsafe {
        let x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
        let x = _mm_add_epi32(x, _mm_shuffle_epi32::<0b01>(x));
        _mm_cvtsi128_si32(x)
    }
}

/// 32 nibbles from 16 bytes: low nibbles in bytes 0..16, high nibbles in bytes 16..32 (the
/// element order of Q4_0/Q4_1/Q5_0/Q5_1 blocks).
///
/// # Safety
/// `p..p + 16` must be readable; AVX2 must be enabled in the caller.
#[inline(always)]
pub(super) unsafe fn nibbles32(p: *const u8) -> __m256i {
    // SAFETY: 16 readable bytes (caller); the rest is register-only.
    unsafe {
        let q = load128(p);
        let lo = _mm_and_si128(q, _mm_set1_epi8(0x0f));
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(q), _mm_set1_epi8(0x0f));
        _mm256_set_m128i(hi, lo)
    }
}

/// Byte j is 0xff where bit j of the little-endian u32 at `p` is set, else 0.
///
/// # Safety
/// `p..p + 4` must be readable; AVX2 must be enabled in the caller.
#[inline(always)]
pub(super) unsafe fn bits_to_bytes32(p: *const u8) -> __m256i {
    // SAFETY: 4 readable bytes (caller); the rest is register-only.
    unsafe {
        let bits = read_u32(p) as i32;
        // Byte j takes source byte j / 8 ...
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(bits),
            _mm256_set_epi64x(
                0x0303_0303_0303_0303,
                0x0202_0202_0202_0202,
                0x0101_0101_0101_0101,
                0,
            ),
        );
        // ... and tests bit j % 8 by setting every other bit and comparing with all-ones.
        let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
        _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1))
    }
}

/// The integer multiply-accumulate of a tier variant.
pub(super) trait Mac {
    /// Whether the caller also holds AVX-512 BW and VNNI, so that the bodies with a 512-bit
    /// version (`dot_zmm.rs`) run that one.
    const ZMM: bool = false;

    /// Whether [`Mac::dot_us`] is one `vpdpbusd` (AVX-VNNI or AVX-512 VNNI), not the AVX2
    /// `vpmaddubsw` + `vpmaddwd` pair.
    const VNNI: bool = false;

    /// Per i32 lane: sum of the 4 products `u[i] * s[i]` (u unsigned bytes, s signed bytes).
    /// Each pair sum `u0*s0 + u1*s1` must fit an i16 (true for u ≤ 128, |s| ≤ 127).
    ///
    /// # Safety
    /// The caller must hold the variant's target features.
    unsafe fn dot_us(u: __m256i, s: __m256i) -> __m256i;

    /// `acc + dot_us(u, s)`.
    ///
    /// # Safety
    /// The caller must hold the variant's target features.
    #[inline(always)]
    unsafe fn dot_us_acc(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: register-only.
        unsafe { _mm256_add_epi32(acc, Self::dot_us(u, s)) }
    }

    /// `acc + madd_epi16(a, b)`: per i32 lane, `acc + a0*b0 + a1*b1` (i16 inputs).
    ///
    /// # Safety
    /// The caller must hold the variant's target features.
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;

    /// Per i32 lane: sum of the 4 products of signed bytes `x[i] * y[i]`. Exact when `y`
    /// holds no -128 (activations from our quantizers hold none); `x` may be any byte.
    ///
    /// # Safety
    /// The caller must hold the variant's target features.
    #[inline(always)]
    unsafe fn dot_ss(x: __m256i, y: __m256i) -> __m256i {
        // SAFETY: register-only; |x| ≤ 128 as unsigned and |sign(y, x)| ≤ 127 keep the i16 pair
        // sums in range.
        unsafe { Self::dot_us(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)) }
    }
}

/// AVX2: `vpmaddubsw` then `vpmaddwd` with ones.
pub(super) struct Avx2Mac;

impl Mac for Avx2Mac {
    #[inline(always)]
    unsafe fn dot_us(u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: register-only; the caller holds AVX2.
        unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)) }
    }
    #[inline(always)]
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only; the caller holds AVX2.
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)) }
    }
}

/// AVX-VNNI (VEX-encoded `vpdpbusd` / `vpdpwssd`, e.g. Alder Lake and later).
pub(super) struct AvxVnniMac;

impl Mac for AvxVnniMac {
    const VNNI: bool = true;

    #[inline(always)]
    unsafe fn dot_us(u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: register-only; the caller holds AVX-VNNI.
        unsafe { _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s) }
    }
    #[inline(always)]
    unsafe fn dot_us_acc(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: register-only; the caller holds AVX-VNNI.
        unsafe { _mm256_dpbusd_avx_epi32(acc, u, s) }
    }
    #[inline(always)]
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only; the caller holds AVX-VNNI.
        unsafe { _mm256_dpwssd_avx_epi32(acc, a, b) }
    }
}

/// AVX-512 VNNI on 256-bit vectors (EVEX `vpdpbusd` / `vpdpwssd`, needs AVX-512VL).
pub(super) struct Avx512VnniMac;

impl Mac for Avx512VnniMac {
    const ZMM: bool = true;
    const VNNI: bool = true;

    #[inline(always)]
    unsafe fn dot_us(u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: register-only; the caller holds AVX-512 VNNI + VL.
        unsafe { _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s) }
    }
    #[inline(always)]
    unsafe fn dot_us_acc(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: register-only; the caller holds AVX-512 VNNI + VL.
        unsafe { _mm256_dpbusd_epi32(acc, u, s) }
    }
    #[inline(always)]
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: the caller holds AVX-512 VNNI + VL.
        unsafe { dpwssd_ymm(acc, a, b) }
    }
}

/// `vpdpwssd` on 256-bit vectors, written out: for a generic x86-64 target LLVM splits the
/// intrinsic into `vpmaddwd` + `vpaddd` (two vector-ALU operations for one), and the Q4_K/Q5_K
/// dots are bound by vector-ALU throughput on Zen 4.
///
/// # Safety
/// The caller must hold AVX-512 VNNI + VL.
#[inline]
#[target_feature(enable = "avx512f,avx512vl,avx512vnni")]
pub(super) unsafe fn dpwssd_ymm(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    let mut acc = acc;
    // SAFETY: register-only; the instruction's features are enabled on this function.
    unsafe {
        std::arch::asm!(
            "vpdpwssd {acc}, {a}, {b}",
            acc = inout(ymm_reg) acc,
            a = in(ymm_reg) a,
            b = in(ymm_reg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Checks the lengths a group dot ([`crate::kernels::GroupDotFn`]) is given, for x8 blocks of
/// `x8_block_bytes` (8 rows × 256 elements) and prepared activation blocks of
/// `act_block_bytes`, and returns `(nb, groups)`; panics naming `what` otherwise.
pub(super) fn check_group_dot(
    what: &str,
    k: usize,
    w: &[u8],
    a: &[u8],
    out: &[f32],
    x8_block_bytes: usize,
    act_block_bytes: usize,
) -> (usize, usize) {
    let (nb, groups) = (k / 256, out.len() / 8);
    assert!(
        k.is_multiple_of(256)
            && out.len().is_multiple_of(8)
            && w.len() >= groups * nb * x8_block_bytes
            && a.len() >= nb * act_block_bytes,
        "{what}: {} rows of {k} elements need whole blocks and groups, {} + {} bytes (got {} + {})",
        out.len(),
        groups * nb * x8_block_bytes,
        nb * act_block_bytes,
        w.len(),
        a.len()
    );
    (nb, groups)
}
