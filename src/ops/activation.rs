//! Activation functions: SiLU and SwiGLU (LLaMA's FFN), GELU with the exact erf (torch's
//! `nn.GELU()` default, CLIP's `gelu` and LLaVA's `mlp2x_gelu` projector) and quick GELU
//! (`x·sigmoid(1.702x)`, OpenAI CLIP's `quick_gelu`). The in-place forms split long slices
//! among the threads (a CLIP layer applies its activation to 577 × 4096 values); SwiGLU and
//! quick GELU run the kernel table's loops (`kernels::unary`), vectorised per CPU tier.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::{OpError, check_len};
use crate::kernels::kernels;

/// Elements per parallel task of the in-place activations (below this, one thread).
const PARALLEL_CHUNK: usize = 16 * 1024;

/// `f` on every element, in parallel chunks when the slice is long.
fn map_in_place(x: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    if x.len() <= PARALLEL_CHUNK {
        x.iter_mut().for_each(|v| *v = f(*v));
    } else {
        x.par_chunks_mut(PARALLEL_CHUNK)
            .for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
    }
}

pub use crate::kernels::unary::{exp, quick_gelu, silu};

/// SwiGLU in place: `gate[i] = silu(gate[i]) · up[i]`.
pub fn swiglu(gate: &mut [f32], up: &[f32]) -> Result<(), OpError> {
    check_len("swiglu", "up elements", up.len(), gate.len())?;
    let swiglu = kernels().unary.swiglu;
    if gate.len() <= PARALLEL_CHUNK {
        swiglu(gate, up);
    } else {
        gate.par_chunks_mut(PARALLEL_CHUNK)
            .zip(up.par_chunks(PARALLEL_CHUNK))
            .for_each(|(g, u)| swiglu(g, u));
    }
    Ok(())
}

/// GELU with the exact error function: `x/2 · (1 + erf(x/√2))`, evaluated in f64.
pub fn gelu(x: f32) -> f32 {
    let x = f64::from(x);
    (0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

pub fn gelu_in_place(x: &mut [f32]) {
    map_in_place(x, gelu);
}

pub fn quick_gelu_in_place(x: &mut [f32]) {
    let quick_gelu = kernels().unary.quick_gelu;
    if x.len() <= PARALLEL_CHUNK {
        quick_gelu(x);
    } else {
        x.par_chunks_mut(PARALLEL_CHUNK).for_each(quick_gelu);
    }
}

/// Grid points per unit of the erf table.
const ERF_GRID: f64 = 64.0;
/// Beyond this, erf is 1 in f64 (1 - erf(6) ≈ 2·10⁻¹⁷).
const ERF_MAX: f64 = 6.0;
/// Taylor terms per grid point: the next one is below 10⁻¹⁷ for |h| ≤ 1/128.
const ERF_TERMS: usize = 6;

/// Per grid point x₀ = i/64 on [0, 6]: erf(x₀), then the Taylor coefficients of
/// erf(x₀ + h) - erf(x₀) in h, from erf⁽ⁿ⁺¹⁾(x) = 2/√π · (-1)ⁿ Hₙ(x) · e^(-x²) (Hₙ the
/// physicists' Hermite polynomials).
fn erf_table() -> &'static [[f64; ERF_TERMS + 1]] {
    static TABLE: OnceLock<Vec<[f64; ERF_TERMS + 1]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let points = (ERF_MAX * ERF_GRID) as usize + 1;
        (0..points)
            .map(|i| {
                let x0 = i as f64 / ERF_GRID;
                let gauss = std::f64::consts::FRAC_2_SQRT_PI * (-x0 * x0).exp();
                let mut row = [0f64; ERF_TERMS + 1];
                row[0] = erf_series(x0);
                // H₀ = 1, H₁ = 2x, Hₙ₊₁ = 2x·Hₙ - 2n·Hₙ₋₁.
                let (mut h_prev, mut h) = (0.0, 1.0);
                let mut factorial = 1.0;
                let mut sign = 1.0;
                for n in 0..ERF_TERMS {
                    factorial *= (n + 1) as f64;
                    row[n + 1] = sign * gauss * h / factorial;
                    let next = 2.0 * x0 * h - 2.0 * n as f64 * h_prev;
                    (h_prev, h) = (h, next);
                    sign = -sign;
                }
                row
            })
            .collect()
    })
}

/// The error function in f64 (Rust's `f64::erf` is not stable): a Taylor expansion of six
/// terms about the nearest point of a 1/64 grid, whose values come from [`erf_series`] once.
/// Within 10⁻¹² of the C library's erf, at the cost of a few multiply-adds.
pub fn erf(z: f64) -> f64 {
    if z.is_nan() {
        return z;
    }
    let a = z.abs();
    let r = if a >= ERF_MAX {
        1.0
    } else {
        let i = (a * ERF_GRID).round() as usize;
        let row = &erf_table()[i];
        let h = a - i as f64 / ERF_GRID;
        let mut poly = 0.0;
        for &c in row[1..].iter().rev() {
            poly = (poly + c) * h;
        }
        row[0] + poly
    };
    if z < 0.0 { -r } else { r }
}

/// The error function by its series: the Maclaurin series for |z| ≤ 3 (alternating terms
/// peak near e^(z²) ≈ 8·10³, so about 12 correct digits remain), and Laplace's continued
/// fraction for erfc above. Slow (up to ~40 terms): it only fills [`erf`]'s table.
fn erf_series(z: f64) -> f64 {
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
            // Between the table's grid points:
            (0.0123, 0.013878363865855805),
            (0.6174, 0.6174107484113941),
            (1.2345, 0.9191623964135658),
            (2.2222, 0.9983258289099377),
            (2.6543, 0.9998257893387467),
            (2.99, 0.9999764743969194),
            (3.01, 0.9999792610363629),
            (3.3333, 0.9999975709703309),
            (4.4444, 0.9999999996728436),
            (5.9, 0.9999999999999999),
        ];
        for (z, want) in table {
            assert!(
                (erf(z) - want).abs() < 1e-12,
                "erf({z}) = {} want {want}",
                erf(z)
            );
            assert!((erf(-z) + want).abs() < 1e-12);
            assert!((erf_series(z) - want).abs() < 1e-12);
        }
        assert!(erf(f64::NAN).is_nan());
        assert_eq!(erf(7.5), 1.0);
        assert_eq!(erf(-1e300), -1.0);
    }

    #[test]
    fn tabled_erf_agrees_with_the_series_between_grid_points() {
        // Off-grid points all over [0, 6.5], grid points, and half-way points (|h| largest). The
        // series itself keeps about 12 digits near z = 3, which bounds the agreement there.
        let mut worst = 0f64;
        for i in 0..=65_000 {
            for z in [i as f64 * 1e-4 + 3.7e-6, i as f64 / 128.0 / 78.0] {
                worst = worst.max((erf(z) - erf_series(z)).abs());
            }
        }
        for i in 0..=768 {
            let z = i as f64 / 128.0;
            worst = worst.max((erf(z) - erf_series(z)).abs());
        }
        assert!(worst < 2e-13, "largest difference {worst:e}");
    }

    #[test]
    fn exp_is_within_one_and_a_half_ulp_and_handles_the_edges() {
        let ulp = |v: f64| {
            let f = v as f32;
            f64::from(f32::from_bits(f.to_bits() + 1) - f)
        };
        let mut worst = 0f64;
        // Every 97th f32 bit pattern from -87.33 to 88.72.
        let mut bits = (-87.33f32).to_bits();
        while f32::from_bits(bits) < 0.0 {
            let x = f32::from_bits(bits);
            let want = f64::from(x).exp();
            worst = worst.max((f64::from(exp(x)) - want).abs() / ulp(want));
            bits -= 97;
        }
        let mut bits = 0u32;
        while f32::from_bits(bits) < 88.72 {
            let x = f32::from_bits(bits);
            let want = f64::from(x).exp();
            worst = worst.max((f64::from(exp(x)) - want).abs() / ulp(want));
            bits += 97;
        }
        assert!(worst <= 1.5, "{worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(88.8), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(-87.4), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(88.72) > 3.3e38 && exp(88.72).is_finite());
        assert_eq!(silu(-200.0), -0.0);
        assert_eq!(silu(200.0), 200.0);
    }

    #[test]
    fn parallel_activations_equal_the_scalar_functions() {
        let x: Vec<f32> = (0..100_003)
            .map(|i| (i as f32 * 0.37).sin() * 6.0)
            .collect();
        let mut g = x.clone();
        gelu_in_place(&mut g);
        let mut q = x.clone();
        quick_gelu_in_place(&mut q);
        let up: Vec<f32> = x.iter().map(|v| v * 0.5 - 1.0).collect();
        let mut s = x.clone();
        swiglu(&mut s, &up).unwrap();
        for i in 0..x.len() {
            assert_eq!(g[i], gelu(x[i]));
            assert_eq!(q[i], quick_gelu(x[i]));
            assert_eq!(s[i], silu(x[i]) * up[i]);
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
