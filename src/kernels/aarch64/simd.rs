//! NEON building blocks shared by both aarch64 tiers: bounds-checked loads and stores, f16
//! conversions, and the int8 dot-product step that distinguishes the tiers ([`Int8Dot`]).
//!
//! NEON is part of the aarch64 baseline (every aarch64 Rust target enables it), so the helpers
//! are `#[target_feature(enable = "neon")]` only to let them call the intrinsics safely; they
//! are sound on every CPU this code can run on.

use std::arch::aarch64::*;
use std::arch::asm;

/// One step of an int8 dot product: `acc` plus the 16 products `a[i] * b[i]`, summed into the
/// four i32 lanes. How the products are split across lanes is the implementation's choice, so
/// callers only ever use the sum of the lanes.
pub(super) trait Int8Dot: Copy {
    fn dot(self, acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

/// Plain NEON: widening multiplies to i16 (|product| <= 2^14, so no overflow), then pairwise
/// add-accumulate into i32.
#[derive(Clone, Copy)]
pub(super) struct WideningMul;

impl Int8Dot for WideningMul {
    #[inline(always)]
    fn dot(self, acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: NEON is in the aarch64 baseline; these intrinsics only touch registers.
        unsafe {
            let low = vmull_s8(vget_low_s8(a), vget_low_s8(b));
            let high = vmull_high_s8(a, b);
            vpadalq_s16(vpadalq_s16(acc, low), high)
        }
    }
}

/// Armv8.2 dotprod: one `sdot` (four 4-byte dot products into the four lanes).
///
/// A value of this type is the proof that the CPU has the instruction: it can only be made by
/// the unsafe [`Sdot::new_unchecked`].
#[derive(Clone, Copy)]
pub(super) struct Sdot(());

impl Sdot {
    /// # Safety
    /// The CPU must implement FEAT_DotProd (`is_aarch64_feature_detected!("dotprod")`).
    #[inline(always)]
    pub(super) unsafe fn new_unchecked() -> Self {
        Sdot(())
    }
}

impl Int8Dot for Sdot {
    #[inline(always)]
    fn dot(self, mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // `vdotq_s32` is unstable on Rust 1.95, hence the assembly. `.arch_extension` lets the
        // assembler accept `sdot` whichever function this is inlined into.
        // SAFETY: an `Sdot` exists only on CPUs with dotprod (see `new_unchecked`); the
        // instruction reads and writes registers only.
        unsafe {
            asm!(
                ".arch_extension dotprod",
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }
}

/// The 16 bytes at `bytes[at..at + 16]` (any alignment).
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn load_u8(bytes: &[u8], at: usize) -> uint8x16_t {
    let src = &bytes[at..at + 16];
    // SAFETY: `src` is 16 readable bytes; `ld1` has no alignment requirement.
    unsafe { vld1q_u8(src.as_ptr()) }
}

/// The 16 bytes at `bytes[at..at + 16]` as signed bytes.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn load_i8(bytes: &[u8], at: usize) -> int8x16_t {
    vreinterpretq_s8_u8(load_u8(bytes, at))
}

/// The 8 little-endian i16 at `bytes[at..at + 16]`.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn load_i16(bytes: &[u8], at: usize) -> int16x8_t {
    vreinterpretq_s16_u8(load_u8(bytes, at))
}

/// The 8 little-endian u16 at `bytes[at..at + 16]`.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn load_u16(bytes: &[u8], at: usize) -> uint16x8_t {
    vreinterpretq_u16_u8(load_u8(bytes, at))
}

/// The 4 little-endian f32 at `bytes[at..at + 16]`.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn load_f32_bytes(bytes: &[u8], at: usize) -> float32x4_t {
    vreinterpretq_f32_u8(load_u8(bytes, at))
}

/// `x[at..at + 4]`.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn load_f32(x: &[f32], at: usize) -> float32x4_t {
    let src = &x[at..at + 4];
    // SAFETY: `src` is 4 readable f32, and `ld1` needs no more than f32 alignment.
    unsafe { vld1q_f32(src.as_ptr()) }
}

/// Writes 16 bytes to `out[at..at + 16]`.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn store_u8(out: &mut [u8], at: usize, v: uint8x16_t) {
    let dst = &mut out[at..at + 16];
    // SAFETY: `dst` is 16 writable bytes; `st1` has no alignment requirement.
    unsafe { vst1q_u8(dst.as_mut_ptr(), v) }
}

/// The f16 at `bytes[at..at + 2]` as f32 (exact).
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    let bits = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let out: f32;
    // Half-to-single `fcvt` is base Armv8 floating point (unlike f16 arithmetic).
    // SAFETY: register-only conversion.
    unsafe {
        asm!(
            "fcvt {out:s}, {bits:h}",
            bits = in(vreg) bits,
            out = lateout(vreg) out,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// Eight f16 (as bits) to f32, exactly: (lanes 0..4, lanes 4..8).
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn f16x8_to_f32(h: uint16x8_t) -> (float32x4_t, float32x4_t) {
    let low: float32x4_t;
    let high: float32x4_t;
    // SAFETY: register-only conversions (base Armv8 Advanced SIMD).
    unsafe {
        asm!(
            "fcvtl {low:v}.4s, {h:v}.4h",
            "fcvtl2 {high:v}.4s, {h:v}.8h",
            h = in(vreg) h,
            low = out(vreg) low,
            high = out(vreg) high,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    (low, high)
}

/// Eight f32 to f16 bits, rounding to nearest even (the FPCR default), NaNs quieted keeping
/// their top payload bits: the same as `half::f16::from_f32` (and x86 `vcvtps2ph`).
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn f32x8_to_f16(low: float32x4_t, high: float32x4_t) -> uint16x8_t {
    let out: uint16x8_t;
    // SAFETY: register-only conversions (base Armv8 Advanced SIMD).
    unsafe {
        asm!(
            "fcvtn {out:v}.4h, {low:v}.4s",
            "fcvtn2 {out:v}.8h, {high:v}.4s",
            low = in(vreg) low,
            high = in(vreg) high,
            out = out(vreg) out,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// Lanes that have bit `i % 8` of byte `i / 8` of `bits` set get `value`, the others 0:
/// one byte per bit, for the fifth bit of Q5_0/Q5_1 quants. Returns lanes 0..16 and 16..32.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn expand_bits(bits: u32, value: u8) -> (uint8x16_t, uint8x16_t) {
    const SPREAD_LOW: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    const SPREAD_HIGH: [u8; 16] = [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
    const BIT_OF_LANE: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let table = vcombine_u8(vcreate_u8(u64::from(bits)), vdup_n_u8(0));
    let lane_bits = load_u8(&BIT_OF_LANE, 0);
    let value = vdupq_n_u8(value);
    let low = vtstq_u8(vqtbl1q_u8(table, load_u8(&SPREAD_LOW, 0)), lane_bits);
    let high = vtstq_u8(vqtbl1q_u8(table, load_u8(&SPREAD_HIGH, 0)), lane_bits);
    (vandq_u8(low, value), vandq_u8(high, value))
}

/// Narrows four i32x4 (values in i8 range) to 16 bytes, keeping the low byte of each lane.
#[target_feature(enable = "neon")]
#[inline]
pub(super) fn narrow_to_i8(v: [int32x4_t; 4]) -> int8x16_t {
    let low = vuzp1q_s16(vreinterpretq_s16_s32(v[0]), vreinterpretq_s16_s32(v[1]));
    let high = vuzp1q_s16(vreinterpretq_s16_s32(v[2]), vreinterpretq_s16_s32(v[3]));
    vuzp1q_s8(vreinterpretq_s8_s16(low), vreinterpretq_s8_s16(high))
}
