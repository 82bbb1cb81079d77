//! The few C idioms of ggml's quantizers whose exact results Rust does not give by default.

/// C's `(int)x` for a float as x86-64 compilers emit it (`cvttss2si`): truncation toward zero;
/// NaN and values outside the i32 range give `i32::MIN` (the "integer indefinite" value).
///
/// In C such out-of-range conversions are undefined; mirroring the instruction keeps our bytes
/// equal to ggml's on x86-64 even for non-finite inputs. Narrower C casts (`(int8_t)x`,
/// `(uint8_t)x`) compile to this conversion followed by keeping the low byte: `as i8` / `as u8`
/// on the result.
#[inline]
pub(crate) fn c_f32_to_int(x: f32) -> i32 {
    // -2^31 is exactly representable; 2^31 is the first value out of range.
    if x.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&x) {
        i32::MIN
    } else {
        x as i32
    }
}

/// ggml's `nearest_int`: round to nearest, ties to even, by adding 1.5 * 2^23 and reading the
/// mantissa bits. Exact for |x| < 2^22; beyond that it wraps exactly as ggml's does.
#[inline]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let biased = x + 12_582_912.0;
    (biased.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// C's `roundf`: round half away from zero (not to even).
#[inline]
pub(crate) fn c_roundf(x: f32) -> f32 {
    x.round()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(0.49999997), 0);
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
        assert_eq!(nearest_int(-4_194_304.0), -4_194_304);
        assert_eq!(nearest_int(f32::NAN), 0);
    }

    #[test]
    fn roundf_rounds_half_away_from_zero() {
        assert_eq!(c_roundf(0.5), 1.0);
        assert_eq!(c_roundf(2.5), 3.0);
        assert_eq!(c_roundf(-2.5), -3.0);
        assert_eq!(c_roundf(-0.49999997), -0.0);
    }

    #[test]
    fn float_to_int_truncates_and_maps_invalid_to_indefinite() {
        assert_eq!(c_f32_to_int(8.9), 8);
        assert_eq!(c_f32_to_int(-8.9), -8);
        assert_eq!(c_f32_to_int(f32::NAN), i32::MIN);
        assert_eq!(c_f32_to_int(f32::INFINITY), i32::MIN);
        assert_eq!(c_f32_to_int(3.0e9), i32::MIN);
        assert_eq!(c_f32_to_int(-2_147_483_648.0), i32::MIN);
        assert_eq!(c_f32_to_int(2_147_483_520.0), 2_147_483_520);
        // (int8_t)NaN is the low byte of the indefinite value: 0.
        assert_eq!(c_f32_to_int(f32::NAN) as i8, 0);
    }
}
