//! The scale searches of ggml's K-quant reference quantizers (no importance matrix), mirrored
//! operation for operation: same f32 operations in the same order, ggml's `nearest_int`, and C's
//! `MIN`/`MAX` semantics (plain clamps on ints). The multi-trial searches `make_qkx2_quants` and
//! `make_qx_quants` run in lanes (`kquants_lanes.rs`); their sequential form is kept here, for
//! tests, in [`reference`].

use super::c_math::nearest_int;

/// ggml's `make_q3_quants` with `do_rmse = true` (as Q3_K uses it): symmetric quants
/// `L[i] - nmax`, then up to 5 rounds of moving single quants while that improves the
/// `x^2`-weighted fit. Returns the scale (NaN when every weight `x^2` underflows to zero,
/// exactly as ggml's `0/0`).
pub(crate) fn make_q3_quants(x: &[f32], nmax: i32, levels: &mut [i8]) -> f32 {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax == 0.0 {
        levels.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (&v, l_out) in x.iter().zip(levels.iter_mut()) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *l_out = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (&v, l_cur) in x.iter().zip(levels.iter_mut()) {
            let w = v * v;
            let cur = f32::from(*l_cur);
            let mut slx = sumlx - w * v * cur;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * cur * cur;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(*l_cur) {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *l_cur = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for l in levels.iter_mut() {
        *l += nmax as i8;
    }
    sumlx / suml2
}

/// The search parameters of ggml's `make_qkx2_quants`.
pub(crate) struct Qkx2Search {
    /// Largest quant level (`nmax`): quants are `0..=nmax`.
    pub nmax: i32,
    /// First trial inverse-scale offset (`rmin`) and its step (`rdelta`).
    pub rmin: f32,
    pub rdelta: f32,
    /// Number of trial steps after the first (`nstep`).
    pub nstep: i32,
    /// Minimise absolute (true) or squared (false) weighted error.
    pub use_mad: bool,
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K
/// block's 12 packed bytes.
#[inline]
pub(crate) fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs 8 six-bit scales and mins into Q4_K/Q5_K's 12 bytes (inverse of [`get_scale_min_k4`]).
pub(crate) fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4);
            q[j - 4] |= (ls[j] >> 4) << 6;
            q[j] |= (lm[j] >> 4) << 6;
        }
    }
    q
}

/// The one-trial-at-a-time searches, kept as the specification that the lane kernels of
/// `kquants_lanes.rs` are tested against.
#[cfg(test)]
pub(crate) mod reference {
    use super::Qkx2Search;
    use crate::quant::c_math::nearest_int;

    /// ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights (as Q6_K uses it):
    /// symmetric quants `L[i] - nmax` in `-nmax..nmax`, weighted by `x^2`, trying 18 scales around
    /// `-nmax / max` and keeping the best weighted least-squares fit. Returns the scale.
    pub(crate) fn make_qx_quants_rmse1(x: &[f32], nmax: i32, levels: &mut [i8]) -> f32 {
        let mut max = 0.0f32;
        let mut amax = 0.0f32;
        for &v in x {
            let ax = v.abs();
            if ax > amax {
                amax = ax;
                max = v;
            }
        }
        if amax < 1e-30 {
            levels.fill(0);
            return 0.0;
        }
        let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        let mut iscale = -(nmax as f32) / max;
        let mut sumlx = 0.0f32;
        let mut suml2 = 0.0f32;
        for (&v, l_out) in x.iter().zip(levels.iter_mut()) {
            let l = quant(iscale, v);
            *l_out = (l + nmax) as i8;
            let w = v * v;
            sumlx += w * v * l as f32;
            suml2 += w * l as f32 * l as f32;
        }
        let mut scale = sumlx / suml2;
        let mut best = scale * sumlx;
        for is in (-9..=9).filter(|&is| is != 0) {
            iscale = -(nmax as f32 + 0.1 * is as f32) / max;
            sumlx = 0.0;
            suml2 = 0.0;
            for &v in x {
                let l = quant(iscale, v);
                let w = v * v;
                sumlx += w * v * l as f32;
                suml2 += w * l as f32 * l as f32;
            }
            if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
                for (&v, l_out) in x.iter().zip(levels.iter_mut()) {
                    *l_out = (nmax + quant(iscale, v)) as i8;
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        scale
    }

    /// ggml's `make_qkx2_quants`: asymmetric quants `x ~ scale * L - min_out` with `min_out >= 0`,
    /// searching `nstep + 1` inverse scales for the best weighted fit. Returns `(scale, min_out)`.
    pub(crate) fn make_qkx2_quants(
        x: &[f32],
        weights: &[f32],
        levels: &mut [u8],
        search: &Qkx2Search,
    ) -> (f32, f32) {
        let Qkx2Search {
            nmax,
            rmin,
            rdelta,
            nstep,
            use_mad,
        } = *search;
        let n = x.len();
        let mut min = x[0];
        let mut max = x[0];
        let mut sum_w = weights[0];
        let mut sum_x = sum_w * x[0];
        for i in 1..n {
            if x[i] < min {
                min = x[i];
            }
            if x[i] > max {
                max = x[i];
            }
            let w = weights[i];
            sum_w += w;
            sum_x += w * x[i];
        }
        if min > 0.0 {
            min = 0.0;
        }
        if max == min {
            levels.fill(0);
            return (0.0, -min);
        }
        let error = |diff: f32| if use_mad { diff.abs() } else { diff * diff };
        let quant = |iscale: f32, v: f32, min: f32| nearest_int(iscale * (v - min)).clamp(0, nmax);

        let mut iscale = nmax as f32 / (max - min);
        let mut scale = 1.0 / iscale;
        let mut best_mad = 0.0f32;
        for i in 0..n {
            let l = quant(iscale, x[i], min) as u8;
            levels[i] = l;
            let diff = scale * f32::from(l) + min - x[i];
            best_mad += weights[i] * error(diff);
        }
        if nstep < 1 {
            return (scale, -min);
        }
        let mut trial = [0u8; 32];
        let trial = &mut trial[..n];
        for is in 0..=nstep {
            iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
            let mut sum_l = 0.0f32;
            let mut sum_l2 = 0.0f32;
            let mut sum_xl = 0.0f32;
            for i in 0..n {
                let l = quant(iscale, x[i], min);
                trial[i] = l as u8;
                let (w, l) = (weights[i], l as f32);
                sum_l += w * l;
                sum_l2 += w * l * l;
                sum_xl += w * l * x[i];
            }
            let d = sum_w * sum_l2 - sum_l * sum_l;
            if d > 0.0 {
                let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
                let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
                if this_min > 0.0 {
                    this_min = 0.0;
                    this_scale = sum_xl / sum_l2;
                }
                let mut mad = 0.0f32;
                for i in 0..n {
                    let diff = this_scale * f32::from(trial[i]) + this_min - x[i];
                    mad += weights[i] * error(diff);
                }
                if mad < best_mad {
                    levels.copy_from_slice(trial);
                    best_mad = mad;
                    scale = this_scale;
                    min = this_min;
                }
            }
        }
        (scale, -min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kquants_lanes::{Isa, make_qkx2_quants, make_qx_quants_rmse1};

    #[test]
    fn scale_min_k4_packing_round_trips() {
        let ls: [u8; 8] = [0, 63, 17, 42, 63, 1, 32, 15];
        let lm: [u8; 8] = [5, 0, 63, 33, 48, 62, 16, 31];
        let q = pack_scale_min_k4(&ls, &lm);
        for j in 0..8 {
            assert_eq!(get_scale_min_k4(j, &q), (ls[j], lm[j]), "sub-block {j}");
        }
    }

    #[test]
    fn qkx2_fits_an_exact_grid() {
        // x = 0.5 * L - 1 with L spanning 0..=15 is representable exactly.
        let x: [f32; 32] = std::array::from_fn(|i| 0.5 * (i % 16) as f32 - 1.0);
        let w = [1.0f32; 32];
        let mut l = [0u8; 32];
        let search = Qkx2Search {
            nmax: 15,
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 20,
            use_mad: false,
        };
        for isa in Isa::available() {
            let (scale, min) = make_qkx2_quants(isa, &x, &w, &mut l, &search);
            assert_eq!((scale, min), (0.5, 1.0), "{isa:?}");
            for (i, &level) in l.iter().enumerate() {
                assert_eq!(usize::from(level), i % 16, "{isa:?}");
            }
            let reference = reference::make_qkx2_quants(&x, &w, &mut l, &search);
            assert_eq!(reference, (0.5, 1.0));
        }
    }

    #[test]
    fn all_zero_inputs_give_zero_scales() {
        let x = [0.0f32; 16];
        for isa in Isa::available() {
            let mut li = [7i8; 16];
            assert_eq!(make_qx_quants_rmse1(isa, &x, 32, &mut li), 0.0, "{isa:?}");
            assert_eq!(li, [0; 16], "{isa:?}");
        }
        let mut li = [7i8; 16];
        assert_eq!(make_q3_quants(&x, 4, &mut li), 0.0);
        assert_eq!(li, [0; 16]);
        let search = Qkx2Search {
            nmax: 3,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: true,
        };
        for isa in Isa::available() {
            let mut lu = [7u8; 16];
            assert_eq!(
                make_qkx2_quants(isa, &x, &[0.0; 16], &mut lu, &search),
                (0.0, -0.0),
                "{isa:?}"
            );
            assert_eq!(lu, [0; 16], "{isa:?}");
        }
    }
}
