//! Activation functions: SiLU and SwiGLU (LLaMA's FFN), GELU with the exact erf (torch's
//! `nn.GELU()` default, CLIP's `gelu` and LLaVA's `mlp2x_gelu` projector) and quick GELU
//! (`x·sigmoid(1.702x)`, OpenAI CLIP's `quick_gelu`).

use super::{OpError, check_len};

/// `x · sigmoid(x)`.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// SwiGLU in place: `gate[i] = silu(gate[i]) · up[i]`.
pub fn swiglu(gate: &mut [f32], up: &[f32]) -> Result<(), OpError> {
    check_len("swiglu", "up elements", up.len(), gate.len())?;
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
    Ok(())
}

/// GELU with the exact error function: `x/2 · (1 + erf(x/√2))`, evaluated in f64.
pub fn gelu(x: f32) -> f32 {
    let x = f64::from(x);
    (0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

pub fn gelu_in_place(x: &mut [f32]) {
    for v in x {
        *v = gelu(*v);
    }
}

/// `x · sigmoid(1.702 x)`.
pub fn quick_gelu(x: f32) -> f32 {
    x / (1.0 + (-1.702 * x).exp())
}

pub fn quick_gelu_in_place(x: &mut [f32]) {
    for v in x {
        *v = quick_gelu(*v);
    }
}

/// The error function in f64 (Rust's `f64::erf` is not stable): the Maclaurin series for
/// |z| ≤ 3 (alternating terms peak near e^(z²) ≈ 8·10³, so about 12 correct digits remain),
/// and Laplace's continued fraction for erfc above.
pub fn erf(z: f64) -> f64 {
    if z.is_nan() {
        return z;
    }
    let a = z.abs();
    let r = if a <= 3.0 {
        // erf(z) = 2/√π Σ (-1)^n z^(2n+1) / (n! (2n+1))
        let z2 = a * a;
        let mut term = a; // (-1)^n z^(2n+1) / n!
        let mut sum = a;
        for n in 1..200 {
            let n = f64::from(n);
            term *= -z2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() <= 1e-17 * sum.abs() {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        // erfc(z) = e^(-z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))), evaluated from a
        // depth of 80 upwards (ample for z ≥ 3).
        let mut t = a;
        for n in (1..=80).rev() {
            t = a + (f64::from(n) / 2.0) / t;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * t)
    };
    if z < 0.0 { -r } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_tabulated_values() {
        // Python's math.erf (the C library's).
        let table = [
            (0.0, 0.0),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (2.9, 0.9999589021219005),
            (3.0, 0.9999779095030014),
            (3.5, 0.9999992569016276),
            (5.0, 0.9999999999984626),
        ];
        for (z, want) in table {
            assert!(
                (erf(z) - want).abs() < 1e-12,
                "erf({z}) = {} want {want}",
                erf(z)
            );
            assert!((erf(-z) + want).abs() < 1e-12);
        }
    }

    #[test]
    fn activations_match_f64_definitions() {
        for i in -400..=400 {
            let x = i as f32 * 0.025;
            let xd = x as f64;
            let silu_ref = xd / (1.0 + (-xd).exp());
            assert!((silu(x) as f64 - silu_ref).abs() <= 1e-6 * silu_ref.abs().max(1.0));
            let quick_ref = xd / (1.0 + (-1.702 * xd).exp());
            assert!((quick_gelu(x) as f64 - quick_ref).abs() <= 1e-6 * quick_ref.abs().max(1.0));
        }
        // x/2 · (1 + math.erf(x/√2)) from Python's C library erf:
        let gelu_ref = [
            (-3.0f32, -0.00404969409489031),
            (-1.0, -0.15865525393145707),
            (0.5, 0.34573123063700656),
            (1.0, 0.8413447460685429),
            (2.5, 2.4844758366855597),
            (-5.5, -1.0444259362918373e-07),
            (8.0, 7.999999999999995),
        ];
        for (x, want) in gelu_ref {
            assert!(
                (gelu(x) as f64 - want).abs() <= 1e-7 * want.abs().max(1e-3),
                "gelu({x}) = {}",
                gelu(x)
            );
        }
        let mut g = [2.0f32, -1.0];
        let up = [3.0f32];
        assert!(swiglu(&mut g, &up).is_err());
        let mut g = [2.0f32];
        swiglu(&mut g, &up).unwrap();
        assert!((g[0] - silu(2.0) * 3.0).abs() < 1e-7);
    }
}
