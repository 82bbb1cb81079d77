//! Element-wise activation math and its slice loops, for the kernel table: SiLU, quick GELU,
//! SwiGLU. The math is straight-line f32 (no libm calls), so a loop over a slice vectorises;
//! each x86 tier compiles the same loops with its own target features (`x86/variant.rs`),
//! which the baseline x86-64 build (SSE2) could not use.

/// The slice loops of one tier.
#[derive(Clone, Copy, Debug)]
pub struct UnaryKernels {
    /// `x[i] = silu(x[i]) · up[i]` over equal-length slices.
    pub swiglu: fn(&mut [f32], &[f32]),
    /// `x[i] = quick_gelu(x[i])`.
    pub quick_gelu: fn(&mut [f32]),
    /// `x[i] = exp(x[i] · scale - shift)` (a softmax's numerators).
    pub scaled_exp: fn(&mut [f32], f32, f32),
}

/// The portable loops (every tier's fallback; the compiler's baseline vectorisation).
pub const PORTABLE: UnaryKernels = UnaryKernels {
    swiglu: swiglu_slice,
    quick_gelu: quick_gelu_slice,
    scaled_exp: scaled_exp_slice,
};

/// `x · sigmoid(x)`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `x · sigmoid(1.702 x)`.
#[inline(always)]
pub fn quick_gelu(x: f32) -> f32 {
    x / (1.0 + exp(-1.702 * x))
}

/// SwiGLU over a slice (the caller checked equal lengths; a longer `up` is cut).
#[inline(always)]
pub fn swiglu_slice(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
}

/// `exp(x · scale - shift)` over a slice, in place.
#[inline(always)]
pub fn scaled_exp_slice(x: &mut [f32], scale: f32, shift: f32) {
    for v in x {
        *v = exp(*v * scale - shift);
    }
}

/// Quick GELU over a slice.
#[inline(always)]
pub fn quick_gelu_slice(x: &mut [f32]) {
    for v in x {
        *v = quick_gelu(*v);
    }
}

/// `e^x` in f32 within 1.5 ulp of the exact value (1.18 measured) for x ≥ -87.3 (results from the smallest
/// normal f32 up), 0 below (the exact value is under 1.2·10⁻³⁸), `inf` above 88.72, NaN for
/// NaN. Straight-line code, so loops over slices vectorise: libm's `expf` is a call per
/// element, and the activations and softmaxes of a prompt take hundreds of millions of them.
///
/// `e^x = 2ⁿ · e^r` with `n = round(x·log₂e)` and `r = x - n·ln 2` (ln 2 in two parts, so `r`
/// is exact), `|r| ≤ ln 2 / 2`, and `e^r` by its Taylor series to r⁷ (the next term is below
/// 2⁻²⁶ there).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75; // ln 2 to 16 bits: n·LN2_HI is exact for |n| < 2⁸
    const LN2_LO: f32 = 1.428_606_8e-6; // ln 2 - LN2_HI
    const MAX: f32 = 88.722_83; // ln(f32::MAX)
    const MIN: f32 = -87.336_55; // ln(f32::MIN_POSITIVE)
    // Rounds to the nearest integer by adding and removing 1.5·2²³ (`f32::round` is a libm
    // call without SSE4.1, which would stop the vectorisation).
    const ROUND: f32 = 12_582_912.0;
    const TAYLOR: [f32; 7] = [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let xc = x.clamp(MIN, MAX);
    let shifted = xc * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for c in TAYLOR {
        p = p * r + c;
    }
    // 2ⁿ for n in [-126, 128] (n = 128 only at the very top) as 2^⌊n/2⌋ · 2^(n - ⌊n/2⌋).
    // n as an integer from the low bits of `shifted` (1.5·2²³ + n, bits 0x4B40_0000 + n):
    // the same value as `n as i32`, whose saturating conversion LLVM scalarised per lane.
    let n = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let half = n >> 1;
    let two_to = |m: i32| f32::from_bits(((m + 127) as u32) << 23);
    let y = p * two_to(half) * two_to(n - half);
    if x > MAX {
        f32::INFINITY
    } else if x < MIN {
        0.0
    } else {
        y
    }
}
