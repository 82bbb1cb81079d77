//! The trial-scale searches of ggml's K-quant reference quantizers (`make_qkx2_quants` and
//! `make_qx_quants` with `rmse_type = 1`), with the trials evaluated side by side in lanes.
//!
//! Each trial's accumulations stay sequential over the elements, with exactly ggml's f32
//! operations in ggml's order; only *different trials* run in parallel, in fixed-size arrays
//! that LLVM vectorises. The choice of the best trial is then made sequentially in trial order
//! with ggml's comparisons, so the results are bit-identical to the one-trial-at-a-time code.
//!
//! `make_qkx2_quants` trials are not fully independent: accepting a trial moves `min`, which
//! every later trial uses. Lanes are therefore evaluated speculatively with the current `min`;
//! when a lane is accepted, the lanes after it are discarded and recomputed with the new `min`.
//!
//! Every kernel is compiled for the baseline target and, on x86-64, again with AVX2 and with
//! AVX-512F enabled; [`Isa::best`] picks one at run time. All versions compute the same bits.

use super::c_math::nearest_int;
use super::kquants_helpers::Qkx2Search;

/// An instruction-set level the lane kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// The crate's compile target (SSE2 on baseline x86-64).
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The widest level this CPU supports (detection is cached by std).
    #[inline]
    pub(crate) fn best() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Every level this CPU supports (for tests comparing them).
    #[cfg(test)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    pub(crate) fn available() -> Vec<Isa> {
        let mut all = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                all.push(Isa::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                all.push(Isa::Avx512);
            }
        }
        all
    }
}

/// Trials evaluated per pass of `make_qkx2_quants`. A pass is wasted past an accepted lane, so
/// wider is not better: 8 measured best (about 5 passes for Q4_K's 21 trials).
const QKX2_LANES: usize = 8;

/// `make_qx_quants` lanes: the initial scale plus 18 trials, padded to a multiple of 4.
const QX_LANES: usize = 20;
/// The trials `is` of `make_qx_quants` in ggml's order, lane 0 being the initial scale (`is = 0`
/// gives exactly its `-nmax / max`); the padding lanes repeat it and are never selected.
const QX_TRIALS: usize = 19;
const QX_IS: [i32; QX_LANES] = [
    0, -9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0,
];

/// ggml's `make_qkx2_quants` on `N` elements: asymmetric quants `x ~ scale * L - min_out` with
/// `min_out >= 0`, searching `nstep + 1` inverse scales for the best weighted fit. Returns
/// `(scale, min_out)` and fills `levels`.
pub(crate) fn make_qkx2_quants<const N: usize>(
    isa: Isa,
    x: &[f32; N],
    weights: &[f32; N],
    levels: &mut [u8; N],
    search: &Qkx2Search,
) -> (f32, f32) {
    match isa {
        Isa::Portable => qkx2_dispatch_error(x, weights, levels, search),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` is only produced after `is_x86_feature_detected!("avx2")`.
        Isa::Avx2 => unsafe { qkx2_avx2(x, weights, levels, search) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` is only produced after `is_x86_feature_detected!("avx512f")`.
        Isa::Avx512 => unsafe { qkx2_avx512(x, weights, levels, search) },
    }
}

/// ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights (as Q6_K uses it):
/// symmetric quants `L[i] - nmax` in `-nmax..nmax`, weighted by `x^2`, trying 18 scales around
/// `-nmax / max` and keeping the best weighted least-squares fit. Returns the scale.
pub(crate) fn make_qx_quants_rmse1<const N: usize>(
    isa: Isa,
    x: &[f32; N],
    nmax: i32,
    levels: &mut [i8; N],
) -> f32 {
    match isa {
        Isa::Portable => qx_rmse1_kernel(x, nmax, levels),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` is only produced after `is_x86_feature_detected!("avx2")`.
        Isa::Avx2 => unsafe { qx_rmse1_avx2(x, nmax, levels) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` is only produced after `is_x86_feature_detected!("avx512f")`.
        Isa::Avx512 => unsafe { qx_rmse1_avx512(x, nmax, levels) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn qkx2_avx2<const N: usize>(
    x: &[f32; N],
    weights: &[f32; N],
    levels: &mut [u8; N],
    search: &Qkx2Search,
) -> (f32, f32) {
    qkx2_dispatch_error(x, weights, levels, search)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn qkx2_avx512<const N: usize>(
    x: &[f32; N],
    weights: &[f32; N],
    levels: &mut [u8; N],
    search: &Qkx2Search,
) -> (f32, f32) {
    qkx2_dispatch_error(x, weights, levels, search)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn qx_rmse1_avx2<const N: usize>(x: &[f32; N], nmax: i32, levels: &mut [i8; N]) -> f32 {
    qx_rmse1_kernel(x, nmax, levels)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn qx_rmse1_avx512<const N: usize>(x: &[f32; N], nmax: i32, levels: &mut [i8; N]) -> f32 {
    qx_rmse1_kernel(x, nmax, levels)
}

/// Selects the error measure at compile time, so that the lane loops carry no branch.
#[inline(always)]
fn qkx2_dispatch_error<const N: usize>(
    x: &[f32; N],
    weights: &[f32; N],
    levels: &mut [u8; N],
    search: &Qkx2Search,
) -> (f32, f32) {
    if search.use_mad {
        qkx2_kernel::<N, true>(x, weights, levels, search)
    } else {
        qkx2_kernel::<N, false>(x, weights, levels, search)
    }
}

/// ggml's error of one element: absolute or squared difference.
#[inline(always)]
fn error<const USE_MAD: bool>(diff: f32) -> f32 {
    if USE_MAD { diff.abs() } else { diff * diff }
}

/// ggml's `MAX(lo, MIN(hi, nearest_int(v)))` (`lo <= hi`), as a lane-friendly min/max.
#[inline(always)]
fn quant_level(v: f32, lo: i32, hi: i32) -> i32 {
    nearest_int(v).max(lo).min(hi)
}

#[inline(always)]
fn qkx2_kernel<const N: usize, const USE_MAD: bool>(
    x: &[f32; N],
    weights: &[f32; N],
    levels: &mut [u8; N],
    search: &Qkx2Search,
) -> (f32, f32) {
    let Qkx2Search {
        nmax,
        rmin,
        rdelta,
        nstep,
        ..
    } = *search;
    if N == 0 {
        return (0.0, 0.0);
    }
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..N {
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

    let iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0.0f32;
    for i in 0..N {
        let l = quant_level(iscale * (x[i] - min), 0, nmax) as u8;
        levels[i] = l;
        let diff = scale * f32::from(l) + min - x[i];
        best_mad += weights[i] * error::<USE_MAD>(diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }

    let trials = nstep as usize + 1;
    // The trial numerators do not depend on `min`; ggml computes them as written here.
    let numerator = |is: usize| rmin + rdelta * is as f32 + nmax as f32;
    let mut first = 0usize;
    while first < trials {
        let range = max - min;
        let iscales: [f32; QKX2_LANES] = std::array::from_fn(|k| numerator(first + k) / range);

        // Per lane: the trial's quants (as f32), then its three weighted sums, each accumulated
        // over i in order. One loop per sum: LLVM keeps fused sums in scalar registers.
        let mut trial_levels = [[0.0f32; QKX2_LANES]; N];
        for (xi, out) in x.iter().zip(trial_levels.iter_mut()) {
            let shifted = xi - min;
            for k in 0..QKX2_LANES {
                out[k] = quant_level(iscales[k] * shifted, 0, nmax) as f32;
            }
        }
        let mut sum_l = [0.0f32; QKX2_LANES];
        for (&wi, l) in weights.iter().zip(&trial_levels) {
            for k in 0..QKX2_LANES {
                sum_l[k] += wi * l[k];
            }
        }
        let mut sum_l2 = [0.0f32; QKX2_LANES];
        for (&wi, l) in weights.iter().zip(&trial_levels) {
            for k in 0..QKX2_LANES {
                sum_l2[k] += wi * l[k] * l[k];
            }
        }
        let mut sum_xl = [0.0f32; QKX2_LANES];
        for ((&wi, &xi), l) in weights.iter().zip(x).zip(&trial_levels) {
            for k in 0..QKX2_LANES {
                sum_xl[k] += wi * l[k] * xi;
            }
        }

        // Per lane: the least-squares scale and min (min clamped to <= 0) and their error.
        let mut d = [0.0f32; QKX2_LANES];
        let mut this_scale = [0.0f32; QKX2_LANES];
        let mut this_min = [0.0f32; QKX2_LANES];
        for k in 0..QKX2_LANES {
            d[k] = sum_w * sum_l2[k] - sum_l[k] * sum_l[k];
            let free_scale = (sum_w * sum_xl[k] - sum_x * sum_l[k]) / d[k];
            let free_min = (sum_l2[k] * sum_x - sum_l[k] * sum_xl[k]) / d[k];
            let clamped = free_min > 0.0;
            this_scale[k] = if clamped {
                sum_xl[k] / sum_l2[k]
            } else {
                free_scale
            };
            this_min[k] = if clamped { 0.0 } else { free_min };
        }
        let mut mad = [0.0f32; QKX2_LANES];
        for i in 0..N {
            let (xi, wi) = (x[i], weights[i]);
            let l = &trial_levels[i];
            for k in 0..QKX2_LANES {
                let diff = this_scale[k] * l[k] + this_min[k] - xi;
                mad[k] += wi * error::<USE_MAD>(diff);
            }
        }

        // ggml's sequential selection; an accepted lane moves `min`, invalidating later lanes.
        let valid = QKX2_LANES.min(trials - first);
        let mut next = first + valid;
        for k in 0..valid {
            if d[k] > 0.0 && mad[k] < best_mad {
                for (level, l) in levels.iter_mut().zip(&trial_levels) {
                    *level = l[k] as u8;
                }
                best_mad = mad[k];
                scale = this_scale[k];
                min = this_min[k];
                next = first + k + 1;
                break;
            }
        }
        first = next;
    }
    (scale, -min)
}

#[inline(always)]
fn qx_rmse1_kernel<const N: usize>(x: &[f32; N], nmax: i32, levels: &mut [i8; N]) -> f32 {
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
    let iscales: [f32; QX_LANES] =
        std::array::from_fn(|k| -(nmax as f32 + 0.1 * QX_IS[k] as f32) / max);
    let mut sumlx = [0.0f32; QX_LANES];
    let mut suml2 = [0.0f32; QX_LANES];
    for &v in x {
        let w = v * v;
        let wv = w * v;
        for k in 0..QX_LANES {
            let l = quant_level(iscales[k] * v, -nmax, nmax - 1) as f32;
            sumlx[k] += wv * l;
            suml2[k] += w * l * l;
        }
    }

    let mut scale = sumlx[0] / suml2[0];
    let mut best = scale * sumlx[0];
    let mut chosen = 0;
    for k in 1..QX_TRIALS {
        if suml2[k] > 0.0 && sumlx[k] * sumlx[k] > best * suml2[k] {
            scale = sumlx[k] / suml2[k];
            best = scale * sumlx[k];
            chosen = k;
        }
    }
    for (l, &v) in levels.iter_mut().zip(x) {
        *l = (nmax + quant_level(iscales[chosen] * v, -nmax, nmax - 1)) as i8;
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kquants_helpers::reference;

    /// Sub-blocks that exercise ties, zeros, huge and tiny magnitudes and non-finite values.
    fn test_inputs<const N: usize>() -> Vec<[f32; N]> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut uniform = move || (next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        let mut inputs = Vec::new();
        for scale in [1.0f32, 1e-3, 1e-20, 1e-38, 1e6, 1e20, 1e30, 3e38] {
            for _ in 0..300 {
                inputs.push(std::array::from_fn(|_| scale * uniform()));
            }
        }
        for _ in 0..300 {
            // Half steps: many products land exactly on rounding ties.
            inputs.push(std::array::from_fn(|_| (uniform() * 16.0).round() / 2.0));
            inputs.push(std::array::from_fn(|_| uniform().abs() + 0.5));
            inputs.push(std::array::from_fn(|_| -uniform().abs() - 0.5));
            let mut sparse: [f32; N] = std::array::from_fn(|_| uniform());
            sparse.iter_mut().step_by(3).for_each(|v| *v = 0.0);
            inputs.push(sparse);
        }
        for special in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0] {
            for pos in [0, N / 2, N - 1] {
                let mut v: [f32; N] = std::array::from_fn(|_| uniform());
                v[pos] = special;
                inputs.push(v);
            }
            inputs.push([special; N]);
        }
        inputs.push([0.25; N]);
        inputs
    }

    fn weights_k4<const N: usize>(x: &[f32; N]) -> [f32; N] {
        let sum_x2 = x.iter().fold(0.0f32, |acc, v| acc + v * v);
        let av_x = (sum_x2 / N as f32).sqrt();
        std::array::from_fn(|l| av_x + x[l].abs())
    }

    fn check_qkx2<const N: usize>(search: &Qkx2Search, weights_of: fn(&[f32; N]) -> [f32; N]) {
        for isa in Isa::available() {
            for x in test_inputs::<N>() {
                let w = weights_of(&x);
                let mut expected_levels = [0u8; N];
                let (es, em) = reference::make_qkx2_quants(&x, &w, &mut expected_levels, search);
                let mut levels = [0u8; N];
                let (s, m) = make_qkx2_quants(isa, &x, &w, &mut levels, search);
                assert_eq!(
                    (s.to_bits(), m.to_bits(), levels),
                    (es.to_bits(), em.to_bits(), expected_levels),
                    "{isa:?} on {x:?}"
                );
            }
        }
    }

    #[test]
    fn qkx2_lanes_match_sequential_search_q4k() {
        let search = Qkx2Search {
            nmax: 15,
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 20,
            use_mad: false,
        };
        check_qkx2::<32>(&search, weights_k4);
    }

    #[test]
    fn qkx2_lanes_match_sequential_search_q5k() {
        let search = Qkx2Search {
            nmax: 31,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: false,
        };
        check_qkx2::<32>(&search, weights_k4);
    }

    #[test]
    fn qkx2_lanes_match_sequential_search_q2k() {
        let search = Qkx2Search {
            nmax: 3,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: true,
        };
        check_qkx2::<16>(&search, |x| std::array::from_fn(|l| x[l].abs()));
    }

    #[test]
    fn qx_rmse1_lanes_match_sequential_search() {
        for isa in Isa::available() {
            for x in test_inputs::<16>() {
                let mut expected_levels = [0i8; 16];
                let expected = reference::make_qx_quants_rmse1(&x, 32, &mut expected_levels);
                let mut levels = [0i8; 16];
                let scale = make_qx_quants_rmse1(isa, &x, 32, &mut levels);
                assert_eq!(
                    (scale.to_bits(), levels),
                    (expected.to_bits(), expected_levels),
                    "{isa:?} on {x:?}"
                );
            }
        }
    }
}
