//! Attention of one query row (decoding) over the cache rows, read in place: per query head,
//! the scores against each key row, the softmax, then the value rows weighted by it. No
//! gathered or transposed copies of K and V and no nested matmuls: the batched path
//! ([`super::attention`] for several queries) converts each head's keys and values to f32
//! matrices first, which cost ~3 ms per 7B layer at 128 positions, more than the layer's
//! weights take to stream. The row loops are the kernel table's ([`crate::kernels::attend`]:
//! f16 widened 8 at a time with F16C, fused multiply-adds on x86); products and sums are f32
//! (the softmax's sum in f64), as in the batched path.

use rayon::prelude::*;

use super::attention::{AttentionParams, KvRows};
use super::softmax::softmax_in_place;
use crate::kernels::kernels;

/// `out` ([n_heads · head_dim]) = attention of the query row `q` over the first `n_kv` rows
/// of `k` and `v`; every key is visible (the query is the last position). The caller checked
/// the shapes.
pub(super) fn one_query(
    q: &[f32],
    k: KvRows<'_>,
    v: KvRows<'_>,
    n_kv: usize,
    params: &AttentionParams,
    out: &mut [f32],
) {
    let d = params.head_dim;
    let group = params.n_heads / params.n_kv_heads;
    let kv_width = params.n_kv_heads * d;
    let attend = &kernels().attend;
    out.par_chunks_mut(d).enumerate().for_each(|(h, out_h)| {
        // Head h's rows start at its key/value head's column; rows are kv_width apart.
        let at = (h / group) * d;
        let q_h = &q[h * d..(h + 1) * d];
        let mut scores = vec![0f32; n_kv];
        match k {
            KvRows::F32(k) => (attend.scores_f32)(q_h, &k[at..], kv_width, &mut scores),
            KvRows::F16(k) => (attend.scores_f16)(q_h, &k[at..], kv_width, &mut scores),
        }
        for s in &mut scores {
            *s *= params.scale;
        }
        softmax_in_place(&mut scores);
        match v {
            KvRows::F32(v) => (attend.weighted_sum_f32)(&scores, &v[at..], kv_width, out_h),
            KvRows::F16(v) => (attend.weighted_sum_f16)(&scores, &v[at..], kv_width, out_h),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::attention::attention;
    use crate::ops::test_util::{rel_err, values};
    use half::f16;

    /// f64 attention of one query over all `n_kv` rows.
    fn reference(q: &[f32], k: &[f32], v: &[f32], n_kv: usize, p: &AttentionParams) -> Vec<f64> {
        let (d, group) = (p.head_dim, p.n_heads / p.n_kv_heads);
        let kw = p.n_kv_heads * d;
        let mut out = vec![0f64; p.n_heads * d];
        for h in 0..p.n_heads {
            let kvh = h / group;
            let s: Vec<f64> = (0..n_kv)
                .map(|j| {
                    (0..d)
                        .map(|c| f64::from(q[h * d + c]) * f64::from(k[j * kw + kvh * d + c]))
                        .sum::<f64>()
                        * f64::from(p.scale)
                })
                .collect();
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            for c in 0..d {
                out[h * d + c] = (0..n_kv)
                    .map(|j| e[j] / sum * f64::from(v[j * kw + kvh * d + c]))
                    .sum();
            }
        }
        out
    }

    /// The one-query path (through `attention`) against the f64 reference and against the
    /// batched path's first row (two queries, not causal, so row 0 sees what one query sees),
    /// grouped-query, a head size that is not a multiple of 8, f32 and f16 rows.
    #[test]
    fn one_query_matches_the_reference_and_the_batched_path() {
        for (n_heads, n_kv_heads, d, n_kv) in [(6, 2, 12, 13), (4, 4, 16, 1), (8, 1, 128, 40)] {
            let p = AttentionParams::new(n_heads, n_kv_heads, d);
            let (qw, kw) = (n_heads * d, n_kv_heads * d);
            let q2 = values(2 * qw, 7, 2.0);
            let to_f16 = |v: Vec<f32>| v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<f16>>();
            let k16 = to_f16(values(n_kv * kw, 8, 2.0));
            let v16 = to_f16(values(n_kv * kw, 9, 1.0));
            let k32: Vec<f32> = k16.iter().map(|x| x.to_f32()).collect();
            let v32: Vec<f32> = v16.iter().map(|x| x.to_f32()).collect();
            let r = reference(&q2[..qw], &k32, &v32, n_kv, &p);
            let mut batched = vec![0f32; 2 * qw];
            attention(
                &q2,
                KvRows::F32(&k32),
                KvRows::F32(&v32),
                n_kv,
                &p,
                &mut batched,
            )
            .unwrap();
            for causal in [false, true] {
                let p = AttentionParams { causal, ..p };
                let mut one32 = vec![f32::NAN; qw];
                let mut one16 = vec![f32::NAN; qw];
                let (k, v) = (KvRows::F32(&k32), KvRows::F32(&v32));
                attention(&q2[..qw], k, v, n_kv, &p, &mut one32).unwrap();
                let (k, v) = (KvRows::F16(&k16), KvRows::F16(&v16));
                attention(&q2[..qw], k, v, n_kv, &p, &mut one16).unwrap();
                assert_eq!(one32, one16, "f16 rows hold the same values");
                let err = rel_err(&one32, &r);
                assert!(err < 1e-6, "{n_heads}/{n_kv_heads}×{d}, {n_kv} keys: {err}");
                let first: Vec<f64> = batched[..qw].iter().map(|&x| f64::from(x)).collect();
                assert!(rel_err(&one32, &first) < 1e-6);
            }
        }
    }
}
