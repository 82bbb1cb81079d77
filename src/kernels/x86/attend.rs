//! Decode attention's row loops (`kernels::attend`) with AVX2 + FMA + F16C, for both x86 tiers:
//! 8 f16 widened per `vcvtph2ps`, fused multiply-adds. Scores: four accumulators along the row
//! (32 elements a step), then 8 at a time into the first, then the lanes, then the tail in order.
//! Weighted sums: 64 columns held in eight accumulators while the rows stream past (each
//! element summed over the rows in order), then 8 at a time, then the tail. The f16 and f32
//! entries run the same operations, so they agree to the bit on f16-exact values.

use core::arch::x86_64::*;

use half::f16;

use crate::kernels::attend::{AttendKernels, check_rows};

/// The table entry (both x86 tiers have AVX2, FMA and F16C).
pub(crate) const KERNELS: AttendKernels = AttendKernels {
    scores_f16: scores::<f16>,
    scores_f32: scores::<f32>,
    weighted_sum_f16: weighted_sum::<f16>,
    weighted_sum_f32: weighted_sum::<f32>,
};

/// An element type of cache rows: 8 loaded as f32 lanes, or one as f32.
trait Lanes: Copy {
    /// # Safety
    /// 8 elements readable at `p`; AVX + F16C available.
    unsafe fn load8(p: *const Self) -> __m256;
    fn to_f32(self) -> f32;
}

impl Lanes for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable elements and the features.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Lanes for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> __m256 {
        // SAFETY: the caller guarantees 8 readable elements (16 bytes) and the features.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

/// The sum of the 8 lanes, pairwise.
#[inline(always)]
unsafe fn sum_lanes(v: __m256) -> f32 {
    // SAFETY: register-only intrinsics; the caller has AVX.
    unsafe {
        let x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        let x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
        _mm_cvtss_f32(x)
    }
}

/// # Safety
/// `out.len()` rows of `q.len()` elements, `stride` apart, readable from `k`; AVX2, FMA, F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scores_body<R: Lanes>(q: &[f32], k: *const R, stride: usize, out: &mut [f32]) {
    let d = q.len();
    let qp = q.as_ptr();
    for (j, s) in out.iter_mut().enumerate() {
        // SAFETY: row j's d elements are in bounds (the caller's contract); every load below
        // reads at most up to element d of the row and of q.
        unsafe {
            let row = k.add(j * stride);
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut c = 0;
            while c + 32 <= d {
                for (u, a) in acc.iter_mut().enumerate() {
                    let at = c + 8 * u;
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(at)), R::load8(row.add(at)), *a);
                }
                c += 32;
            }
            while c + 8 <= d {
                acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(c)), R::load8(row.add(c)), acc[0]);
                c += 8;
            }
            let all = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let mut tail = 0f32;
            while c < d {
                tail += *qp.add(c) * (*row.add(c)).to_f32();
                c += 1;
            }
            *s = sum_lanes(all) + tail;
        }
    }
}

/// # Safety
/// `p.len()` rows of `out.len()` elements, `stride` apart, readable from `v`; AVX2, FMA, F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weighted_sum_body<R: Lanes>(p: &[f32], v: *const R, stride: usize, out: &mut [f32]) {
    let d = out.len();
    let op = out.as_mut_ptr();
    let mut c = 0;
    while c + 64 <= d {
        // SAFETY: every row read is row j < p.len() at columns c .. c + 64 ≤ d (the caller's
        // contract); every store is to out[c .. c + 64].
        unsafe {
            let mut acc = [_mm256_setzero_ps(); 8];
            for (j, &w) in p.iter().enumerate() {
                let (w, row) = (_mm256_set1_ps(w), v.add(j * stride + c));
                for (u, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(w, R::load8(row.add(8 * u)), *a);
                }
            }
            for (u, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(op.add(c + 8 * u), *a);
            }
        }
        c += 64;
    }
    while c + 8 <= d {
        // SAFETY: as above, columns c .. c + 8 ≤ d.
        unsafe {
            let mut acc = _mm256_setzero_ps();
            for (j, &w) in p.iter().enumerate() {
                acc = _mm256_fmadd_ps(_mm256_set1_ps(w), R::load8(v.add(j * stride + c)), acc);
            }
            _mm256_storeu_ps(op.add(c), acc);
        }
        c += 8;
    }
    while c < d {
        let mut acc = 0f32;
        for (j, &w) in p.iter().enumerate() {
            // SAFETY: as above.
            acc += w * unsafe { *v.add(j * stride + c) }.to_f32();
        }
        out[c] = acc;
        c += 1;
    }
}

fn scores<R: Lanes>(q: &[f32], k: &[R], stride: usize, out: &mut [f32]) {
    check_rows("attention scores", out.len(), q.len(), stride, k.len());
    // SAFETY: the rows fit (checked above); this table is built only after detecting AVX2,
    // FMA and F16C.
    unsafe { scores_body(q, k.as_ptr(), stride, out) }
}

fn weighted_sum<R: Lanes>(p: &[f32], v: &[R], stride: usize, out: &mut [f32]) {
    check_rows("attention values", p.len(), out.len(), stride, v.len());
    // SAFETY: as for `scores`.
    unsafe { weighted_sum_body(p, v.as_ptr(), stride, out) }
}
