//! Scalar float conversions used by the block formats: f32 <-> f16 (IEEE binary16) and
//! f32 <-> bf16 (brain float), with ggml's exact rounding and NaN rules.
//!
//! - f16: round to nearest, ties to even, as x86 F16C `vcvtps2ph` (which ggml uses); a NaN stays a
//!   NaN, quieted, keeping the top 10 payload bits. The `half` crate implements exactly this (in
//!   hardware where available, else in software; the oracle test checks both paths).
//! - bf16: ggml's `ggml_compute_fp32_to_bf16`: round to nearest, ties to even, on the raw bits; a
//!   NaN keeps its top 7 payload bits and gets the quiet bit forced; no flushing of subnormals.

use half::f16;

/// f32 -> f16, round to nearest even (ggml's `GGML_FP32_TO_FP16`).
#[inline]
pub fn f32_to_f16(x: f32) -> f16 {
    f16::from_f32(x)
}

/// f16 -> f32, exact (ggml's `GGML_FP16_TO_FP32`).
#[inline]
pub fn f16_to_f32(h: f16) -> f32 {
    h.to_f32()
}

/// A bf16 value as its raw bits.
pub type Bf16Bits = u16;

/// f32 -> bf16 bits, as ggml's `ggml_compute_fp32_to_bf16`.
#[inline]
pub fn f32_to_bf16(x: f32) -> Bf16Bits {
    let bits = x.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        // NaN: truncate the payload, force the quiet bit so that it cannot become an infinity.
        return ((bits >> 16) | 0x40) as u16;
    }
    // Adding 0x7fff plus the lowest kept bit rounds ties to even; a carry into the exponent is
    // the correct rounding up (to the next binade, or to infinity).
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// bf16 bits -> f32, exact: bf16 is the top half of an f32.
#[inline]
pub fn bf16_to_f32(h: Bf16Bits) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounds_ties_to_even() {
        // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties to the even mantissa (1.0).
        assert_eq!(f32_to_f16(1.0 + f32::powi(2.0, -11)).to_bits(), 0x3c00);
        // 1 + 3 * 2^-11 lies halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even).
        assert_eq!(
            f32_to_f16(1.0 + 3.0 * f32::powi(2.0, -11)).to_bits(),
            0x3c02
        );
        // Just above the tie rounds up.
        assert_eq!(
            f32_to_f16(f32::from_bits((1.0f32 + f32::powi(2.0, -11)).to_bits() + 1)).to_bits(),
            0x3c01
        );
    }

    #[test]
    fn f16_overflow_infinity_and_subnormals() {
        assert_eq!(f32_to_f16(65504.0).to_bits(), 0x7bff);
        // 65520 is the halfway point to the next (non-existent) value: rounds to infinity.
        assert_eq!(f32_to_f16(65520.0).to_bits(), 0x7c00);
        assert_eq!(f32_to_f16(65519.99).to_bits(), 0x7bff);
        assert_eq!(f32_to_f16(f32::INFINITY).to_bits(), 0x7c00);
        assert_eq!(f32_to_f16(f32::NEG_INFINITY).to_bits(), 0xfc00);
        // Smallest f16 subnormal is 2^-24; half of it is a tie that rounds to even (zero).
        assert_eq!(f32_to_f16(f32::powi(2.0, -24)).to_bits(), 0x0001);
        assert_eq!(f32_to_f16(f32::powi(2.0, -25)).to_bits(), 0x0000);
        assert_eq!(f32_to_f16(1.5 * f32::powi(2.0, -24)).to_bits(), 0x0002);
        assert_eq!(f32_to_f16(-0.0).to_bits(), 0x8000);
        assert_eq!(f16_to_f32(f16::from_bits(0x0001)), f32::powi(2.0, -24));
        assert_eq!(
            f16_to_f32(f16::from_bits(0x03ff)),
            1023.0 * f32::powi(2.0, -24)
        );
    }

    #[test]
    fn f16_nan_stays_nan_and_quiet() {
        for bits in [
            0x7f80_0001u32,
            0x7fc0_0000,
            0xffc0_0000,
            0x7f80_2000,
            0xff80_0001,
        ] {
            let h = f32_to_f16(f32::from_bits(bits));
            assert!(h.is_nan(), "{bits:#x} -> {:#x}", h.to_bits());
            assert_ne!(h.to_bits() & 0x0200, 0, "{bits:#x} must become a quiet NaN");
            assert_eq!(h.to_bits() & 0x8000, ((bits >> 16) & 0x8000) as u16);
        }
        // f16 -> f32 keeps the payload (shifted up) and quiets a signalling NaN, as F16C does.
        assert_eq!(f16_to_f32(f16::from_bits(0x7e00)).to_bits(), 0x7fc0_0000);
        assert_eq!(f16_to_f32(f16::from_bits(0x7c01)).to_bits(), 0x7fc0_2000);
        assert_eq!(f16_to_f32(f16::from_bits(0xfd00)).to_bits(), 0xffe0_0000);
    }

    #[test]
    fn bf16_rounds_ties_to_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
        assert_eq!(f32_to_bf16(1.0 + f32::powi(2.0, -8)), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
        assert_eq!(f32_to_bf16(1.0 + 3.0 * f32::powi(2.0, -8)), 0x3f82);
        assert_eq!(
            f32_to_bf16(f32::from_bits((1.0f32 + f32::powi(2.0, -8)).to_bits() + 1)),
            0x3f81
        );
        // Exactly representable values are kept.
        for x in [
            0.0f32,
            -0.0,
            1.0,
            -2.5,
            2.0f32.powi(100),
            f32::INFINITY,
            f32::NEG_INFINITY,
        ] {
            assert_eq!(bf16_to_f32(f32_to_bf16(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn bf16_overflow_and_subnormals() {
        // The largest finite f32 rounds up to infinity (its low half is above the tie).
        assert_eq!(f32_to_bf16(f32::MAX), 0x7f80);
        // Subnormals are rounded, not flushed.
        assert_eq!(f32_to_bf16(f32::from_bits(0x0001_8000)), 0x0002);
        assert_eq!(f32_to_bf16(f32::from_bits(0x0000_8000)), 0x0000);
        assert_eq!(f32_to_bf16(f32::from_bits(0x0000_8001)), 0x0001);
        assert_eq!(f32_to_bf16(f32::from_bits(0x8001_0000)), 0x8001);
    }

    #[test]
    fn bf16_nan_stays_nan_and_quiet() {
        // A signalling NaN whose payload lives only in the dropped low bits would round to
        // infinity if treated as a number; ggml keeps it a NaN.
        for bits in [
            0x7f80_0001u32,
            0xff80_0001,
            0x7fc0_0000,
            0x7fff_ffff,
            0x7f81_0000,
        ] {
            let h = f32_to_bf16(f32::from_bits(bits));
            assert!(bf16_to_f32(h).is_nan(), "{bits:#x} -> {h:#x}");
            assert_ne!(h & 0x40, 0);
            assert_eq!(h & 0x8000, (bits >> 16) as u16 & 0x8000);
        }
        assert_eq!(f32_to_bf16(f32::from_bits(0x7f81_0000)), 0x7fc1);
        assert_eq!(bf16_to_f32(0x7fc1).to_bits(), 0x7fc1_0000);
    }
}
