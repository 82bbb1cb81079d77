//! The row loops of decode attention, for the kernel table: one query head (f32) dotted with
//! key rows, and value rows summed with weights, the rows read in place from a KV cache (f16 or
//! f32; `stride` elements apart, `d = q.len()` or `out.len()` of each used). Products and sums
//! are f32; f16 is widened exactly. The portable loops here are the reference (and the scalar
//! and aarch64 tiers' entries); x86 tiers use `x86/attend.rs` (AVX2 + FMA + F16C).
//!
//! Each entry panics if the rows do not fit: `(rows - 1) · stride + d` elements are needed.

use half::f16;
use half::slice::HalfFloatSliceExt;

/// The decode-attention loops of one tier.
#[derive(Clone, Copy, Debug)]
pub struct AttendKernels {
    /// `out[j] = q · k[j·stride .. j·stride + q.len()]` for each `j < out.len()`.
    pub scores_f16: fn(q: &[f32], k: &[f16], stride: usize, out: &mut [f32]),
    pub scores_f32: fn(q: &[f32], k: &[f32], stride: usize, out: &mut [f32]),
    /// `out = Σ_j p[j] · v[j·stride .. j·stride + out.len()]` over `j < p.len()` (`out` is
    /// overwritten; the sum runs in order of `j` per element).
    pub weighted_sum_f16: fn(p: &[f32], v: &[f16], stride: usize, out: &mut [f32]),
    pub weighted_sum_f32: fn(p: &[f32], v: &[f32], stride: usize, out: &mut [f32]),
}

/// The portable loops.
pub const PORTABLE: AttendKernels = AttendKernels {
    scores_f16: scores::<f16>,
    scores_f32: scores::<f32>,
    weighted_sum_f16: weighted_sum::<f16>,
    weighted_sum_f32: weighted_sum::<f32>,
};

/// Checks that `rows` rows of `d` elements, `stride` apart, fit in `len` elements.
pub(crate) fn check_rows(what: &str, rows: usize, d: usize, stride: usize, len: usize) {
    let needed = match rows {
        0 => Some(0),
        _ => (rows - 1)
            .checked_mul(stride)
            .and_then(|x| x.checked_add(d)),
    };
    assert!(
        needed.is_some_and(|n| n <= len),
        "{what}: {rows} rows of {d} elements {stride} apart do not fit {len} elements"
    );
}

/// A cache element type: f32 as it is, f16 widened.
pub(crate) trait CacheRow: Copy {
    /// `src` as f32 into `buf` (equal lengths), or `src` itself for f32.
    fn widen<'a>(src: &'a [Self], buf: &'a mut [f32]) -> &'a [f32];
}

impl CacheRow for f32 {
    fn widen<'a>(src: &'a [f32], _: &'a mut [f32]) -> &'a [f32] {
        src
    }
}

impl CacheRow for f16 {
    fn widen<'a>(src: &'a [f16], buf: &'a mut [f32]) -> &'a [f32] {
        // F16C where the CPU has it (`half` detects it), else exact bit manipulation.
        src.convert_to_f32_slice(buf);
        buf
    }
}

fn scores<R: CacheRow>(q: &[f32], k: &[R], stride: usize, out: &mut [f32]) {
    let d = q.len();
    check_rows("attention scores", out.len(), d, stride, k.len());
    let mut row = vec![0f32; d];
    for (j, s) in out.iter_mut().enumerate() {
        *s = dot(q, R::widen(&k[j * stride..j * stride + d], &mut row));
    }
}

fn weighted_sum<R: CacheRow>(p: &[f32], v: &[R], stride: usize, out: &mut [f32]) {
    let d = out.len();
    check_rows("attention values", p.len(), d, stride, v.len());
    let mut row = vec![0f32; d];
    out.fill(0.0);
    for (j, &w) in p.iter().enumerate() {
        for (o, &x) in out
            .iter_mut()
            .zip(R::widen(&v[j * stride..j * stride + d], &mut row))
        {
            *o += w * x;
        }
    }
}

/// f32 dot product in 8 independent lanes (so LLVM vectorises it), then the lanes, then the
/// tail in order.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut acc = [0f32; LANES];
    let (a8, b8) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Kernels, Tier};
    use crate::ops::test_util::values;

    /// Every supported tier's loops against f64 sums of the same (f16-exact) values, within
    /// f32 rounding of the sum of magnitudes; the f16 and f32 entries of a tier agree to the
    /// bit (the same order of operations), as the decode path's f16/f32 caches rely on.
    #[test]
    fn every_tier_matches_f64_and_its_f16_and_f32_entries_agree() {
        for tier in Tier::supported() {
            let a = Kernels::for_tier(tier).unwrap().attend;
            for (d, rows, pad) in [
                (128, 64, 3968),
                (128, 1, 0),
                (64, 5, 64),
                (130, 9, 2),
                (33, 17, 1),
                (8, 3, 0),
                (7, 2, 5),
                (1, 4, 0),
                (96, 0, 0),
            ] {
                let stride = d + pad;
                let len = if rows == 0 {
                    0
                } else {
                    (rows - 1) * stride + d
                };
                let k16: Vec<f16> = values(len, 1 + d as u64, 2.0)
                    .into_iter()
                    .map(f16::from_f32)
                    .collect();
                let k32: Vec<f32> = k16.iter().map(|x| x.to_f32()).collect();
                let q = values(d, 2, 1.5);
                let p = values(rows, 3, 1.0);
                let ctx = format!("{}: d {d}, {rows} rows {stride} apart", tier.name());

                let (mut s16, mut s32) = (vec![f32::NAN; rows], vec![f32::NAN; rows]);
                (a.scores_f16)(&q, &k16, stride, &mut s16);
                (a.scores_f32)(&q, &k32, stride, &mut s32);
                assert!(
                    s16.iter()
                        .zip(&s32)
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{ctx}: scores f16 vs f32"
                );
                for (j, &s) in s32.iter().enumerate() {
                    let row = &k32[j * stride..j * stride + d];
                    let exact: f64 = q.iter().zip(row).map(|(&x, &y)| f64::from(x * y)).sum();
                    let size: f64 = q
                        .iter()
                        .zip(row)
                        .map(|(&x, &y)| f64::from((x * y).abs()))
                        .sum();
                    let bound = size * d as f64 * f64::from(f32::EPSILON);
                    assert!((f64::from(s) - exact).abs() <= bound, "{ctx}: score {j}");
                }

                let (mut w16, mut w32) = (vec![f32::NAN; d], vec![f32::NAN; d]);
                (a.weighted_sum_f16)(&p, &k16, stride, &mut w16);
                (a.weighted_sum_f32)(&p, &k32, stride, &mut w32);
                assert!(
                    w16.iter()
                        .zip(&w32)
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{ctx}: weighted sums f16 vs f32"
                );
                for (c, &w) in w32.iter().enumerate() {
                    let col = (0..rows).map(|j| (p[j], k32[j * stride + c]));
                    let exact: f64 = col.clone().map(|(x, y)| f64::from(x * y)).sum();
                    let size: f64 = col.map(|(x, y)| f64::from((x * y).abs())).sum();
                    let bound = size * (rows.max(1)) as f64 * f64::from(f32::EPSILON);
                    assert!((f64::from(w) - exact).abs() <= bound, "{ctx}: column {c}");
                }
            }
        }
    }

    /// A tier against the portable reference on a 7B head (d = 128, 64 rows of the cache's
    /// 4096-wide rows): the same values up to f32 reassociation.
    #[test]
    fn every_tier_is_close_to_the_portable_loops() {
        let (d, rows, stride) = (128, 64, 4096);
        let k: Vec<f16> = values((rows - 1) * stride + d, 9, 2.0)
            .into_iter()
            .map(f16::from_f32)
            .collect();
        let q = values(d, 10, 1.0);
        let p = values(rows, 11, 1.0);
        let (mut s_ref, mut w_ref) = (vec![0f32; rows], vec![0f32; d]);
        (PORTABLE.scores_f16)(&q, &k, stride, &mut s_ref);
        (PORTABLE.weighted_sum_f16)(&p, &k, stride, &mut w_ref);
        for tier in Tier::supported() {
            let a = Kernels::for_tier(tier).unwrap().attend;
            let (mut s, mut w) = (vec![0f32; rows], vec![0f32; d]);
            (a.scores_f16)(&q, &k, stride, &mut s);
            (a.weighted_sum_f16)(&p, &k, stride, &mut w);
            for (x, y) in s.iter().zip(&s_ref).chain(w.iter().zip(&w_ref)) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                    "{}: {x} vs {y}",
                    tier.name()
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "do not fit")]
    fn rows_past_the_end_panic_before_any_read() {
        let k = vec![f16::ZERO; 10];
        let mut out = [0f32; 2];
        // Two rows of 4, 8 apart, need 12 elements.
        (PORTABLE.scores_f16)(&[0.0; 4], &k, 8, &mut out);
    }

    #[test]
    fn every_tier_checks_the_rows_fit() {
        for tier in Tier::supported() {
            let a = Kernels::for_tier(tier).unwrap().attend;
            let k = vec![f16::ZERO; 10];
            let v = vec![0f32; 10];
            let scores =
                std::panic::catch_unwind(|| (a.scores_f16)(&[0.0; 4], &k, 8, &mut [0.0; 2]));
            let sums =
                std::panic::catch_unwind(|| (a.weighted_sum_f32)(&[0.0; 2], &v, 8, &mut [0.0; 4]));
            let overflow = std::panic::catch_unwind(|| {
                (a.scores_f32)(&[0.0; 4], &v, usize::MAX, &mut [0.0; 2])
            });
            assert!(
                scores.is_err() && sums.is_err() && overflow.is_err(),
                "{}",
                tier.name()
            );
            // Exactly fitting rows are fine: two rows of 2, 8 apart, in 10.
            (a.scores_f16)(&[0.0; 2], &k, 8, &mut [0.0; 2]);
        }
    }
}
