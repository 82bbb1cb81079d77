//! Scaled dot-product attention over row-major activations, built on the f32 matmuls of
//! [`crate::kernels::matmul`]: per head, `softmax(scale · Q·Kᵀ + mask) · V`.
//!
//! Grouped-query attention: `n_kv_heads` divides `n_heads`, and query head `h` uses key/value
//! head `h / (n_heads / n_kv_heads)` (Hugging Face's `repeat_kv`, llama.cpp's broadcast).
//! Keys and values may be f32 or f16 (a KV cache): f16 rows are widened to f32 per head, so
//! products and sums are f32 either way.

use half::f16;
use rayon::prelude::*;

use super::softmax::softmax_in_place;
use super::{OpError, check_len, rows_of};
use crate::kernels::matmul::{matmul_f32, matmul_nn_f32};

/// Head counts and size, masking and score scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionParams {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Queries are the last positions of the keys and see only keys up to their own position.
    pub causal: bool,
    /// Multiplies the scores before the softmax (usually `1/sqrt(head_dim)`).
    pub scale: f32,
}

impl AttentionParams {
    /// Non-causal attention with scale `1/sqrt(head_dim)`.
    pub fn new(n_heads: usize, n_kv_heads: usize, head_dim: usize) -> Self {
        AttentionParams {
            n_heads,
            n_kv_heads,
            head_dim,
            causal: false,
            scale: 1.0 / (head_dim.max(1) as f32).sqrt(),
        }
    }

    /// The same, causal.
    pub fn causal(self) -> Self {
        AttentionParams {
            causal: true,
            ..self
        }
    }
}

/// Keys or values: `n_kv` rows of `n_kv_heads · head_dim`, row-major.
#[derive(Clone, Copy, Debug)]
pub enum KvRows<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

impl KvRows<'_> {
    fn len(&self) -> usize {
        match self {
            KvRows::F32(v) => v.len(),
            KvRows::F16(v) => v.len(),
        }
    }

    /// Column block `[col, col + width)` of every row (row length `stride`), as f32 [n × width].
    fn gather(&self, n: usize, stride: usize, col: usize, width: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * width);
        for r in 0..n {
            let range = r * stride + col..r * stride + col + width;
            match self {
                KvRows::F32(v) => out.extend_from_slice(&v[range]),
                KvRows::F16(v) => out.extend(v[range].iter().map(|x| x.to_f32())),
            }
        }
        out
    }
}

/// Attention of the queries `q` ([n_q × n_heads·head_dim]) over `n_kv` keys `k` and values
/// `v` ([n_kv × n_kv_heads·head_dim]; the buffers may be longer, e.g. a cache sized for the
/// whole context: the first `n_kv` rows are used), into `out` ([n_q × n_heads·head_dim]).
///
/// With `params.causal`, the queries are the last `n_q` positions of the `n_kv` (n_q ≤ n_kv):
/// query `i` sees keys `0 ..= n_kv - n_q + i`.
pub fn attention(
    q: &[f32],
    k: KvRows<'_>,
    v: KvRows<'_>,
    n_kv: usize,
    params: &AttentionParams,
    out: &mut [f32],
) -> Result<(), OpError> {
    let AttentionParams {
        n_heads,
        n_kv_heads,
        head_dim: d,
        causal,
        scale,
    } = *params;
    if n_kv_heads == 0 || !n_heads.is_multiple_of(n_kv_heads) || d == 0 {
        return Err(OpError::Invalid {
            op: "attention",
            reason: format!(
                "{n_heads} query heads are not a multiple of {n_kv_heads} key/value heads \
                 (head size {d})"
            ),
        });
    }
    let n_q = rows_of(
        "attention",
        "query elements (queries × heads × head size)",
        q.len(),
        n_heads * d,
    )?;
    if causal && n_q > n_kv {
        return Err(OpError::Invalid {
            op: "attention",
            reason: format!("causal attention of {n_q} queries over only {n_kv} keys"),
        });
    }
    let q_width = n_heads * d;
    let kv_width = n_kv_heads * d;
    check_len("attention", "output elements", out.len(), n_q * q_width)?;
    // The K/V buffers may hold more rows (a cache sized for the whole context): use the first n_kv.
    if k.len() < n_kv * kv_width || v.len() < n_kv * kv_width {
        return Err(OpError::Shape {
            op: "attention",
            what: "key/value elements",
            expected: n_kv * kv_width,
            actual: k.len().min(v.len()),
        });
    }
    if n_q == 0 {
        return Ok(());
    }
    if n_q == 1 && n_kv > 0 {
        // Decoding: one query, which sees every key (causal or not).
        super::attention_decode::one_query(q, k, v, n_kv, params, out);
        return Ok(());
    }
    let group = n_heads / n_kv_heads;
    let offset = n_kv - n_q.min(n_kv);

    // One task per key/value head: gather its K and V once, serve the query heads of its group.
    let per_kv_head: Result<Vec<Vec<f32>>, OpError> = (0..n_kv_heads)
        .into_par_iter()
        .map(|kvh| {
            let kh = k.gather(n_kv, kv_width, kvh * d, d);
            let vh = v.gather(n_kv, kv_width, kvh * d, d);
            let mut outs = vec![0f32; group * n_q * d];
            let mut scores = vec![0f32; n_q * n_kv];
            for (g, out_h) in outs.chunks_exact_mut(n_q * d).enumerate() {
                let h = kvh * group + g;
                let qh: Vec<f32> = q
                    .chunks_exact(q_width)
                    .flat_map(|row| &row[h * d..(h + 1) * d])
                    .copied()
                    .collect();
                matmul_f32(&qh, n_q, &kh, n_kv, d, &mut scores)?;
                for (i, row) in scores.chunks_exact_mut(n_kv.max(1)).enumerate() {
                    for s in row.iter_mut() {
                        *s *= scale;
                    }
                    if causal {
                        row[(offset + i + 1).min(n_kv)..].fill(f32::NEG_INFINITY);
                    }
                    softmax_in_place(row);
                }
                matmul_nn_f32(&scores, n_q, n_kv, &vh, d, out_h)?;
            }
            Ok(outs)
        })
        .collect();
    for (kvh, outs) in per_kv_head?.iter().enumerate() {
        for (g, out_h) in outs.chunks_exact(n_q * d).enumerate() {
            let h = kvh * group + g;
            for (row, src) in out.chunks_exact_mut(q_width).zip(out_h.chunks_exact(d)) {
                row[h * d..(h + 1) * d].copy_from_slice(src);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{rel_err, values};

    fn reference(q: &[f32], k: &[f32], v: &[f32], n_kv: usize, s: &AttentionParams) -> Vec<f64> {
        let n_q = q.len() / (s.n_heads * s.head_dim);
        let (causal, scale) = (s.causal, s.scale as f64);
        let (qw, kw, d) = (
            s.n_heads * s.head_dim,
            s.n_kv_heads * s.head_dim,
            s.head_dim,
        );
        let mut out = vec![0f64; n_q * qw];
        for h in 0..s.n_heads {
            let kvh = h / (s.n_heads / s.n_kv_heads);
            for i in 0..n_q {
                let visible = if causal { n_kv - n_q + i + 1 } else { n_kv };
                let scores: Vec<f64> = (0..visible)
                    .map(|j| {
                        (0..d)
                            .map(|c| q[i * qw + h * d + c] as f64 * k[j * kw + kvh * d + c] as f64)
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
                let sum: f64 = e.iter().sum();
                for c in 0..d {
                    out[i * qw + h * d + c] = (0..visible)
                        .map(|j| e[j] / sum * v[j * kw + kvh * d + c] as f64)
                        .sum();
                }
            }
        }
        out
    }

    #[test]
    fn grouped_query_causal_and_full_match_f64_reference() {
        let (n_q, n_kv) = (5, 9);
        let q = values(n_q * 48, 1, 2.0);
        let k = values(n_kv * 16, 2, 2.0);
        let v = values(n_kv * 16, 3, 1.0);
        let full = AttentionParams::new(6, 2, 8);
        for p in [full, full.causal()] {
            let mut out = vec![0f32; n_q * 48];
            attention(&q, KvRows::F32(&k), KvRows::F32(&v), n_kv, &p, &mut out).unwrap();
            let r = reference(&q, &k, &v, n_kv, &p);
            let err = rel_err(&out, &r);
            assert!(err < 1e-5, "causal {}: {err}", p.causal);
        }
    }

    #[test]
    fn f16_keys_and_values_equal_f32_ones_of_the_same_values() {
        let p = AttentionParams {
            scale: 0.25,
            ..AttentionParams::new(4, 4, 16).causal()
        };
        let n_kv = 13;
        let q = values(64, 4, 1.0);
        let to_f16 = |v: Vec<f32>| v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<f16>>();
        let k16 = to_f16(values(n_kv * 64, 5, 1.0));
        let v16 = to_f16(values(n_kv * 64, 6, 1.0));
        let k32: Vec<f32> = k16.iter().map(|x| x.to_f32()).collect();
        let v32: Vec<f32> = v16.iter().map(|x| x.to_f32()).collect();
        let (mut a, mut b) = (vec![0f32; 64], vec![0f32; 64]);
        attention(&q, KvRows::F16(&k16), KvRows::F16(&v16), n_kv, &p, &mut a).unwrap();
        attention(&q, KvRows::F32(&k32), KvRows::F32(&v32), n_kv, &p, &mut b).unwrap();
        assert_eq!(a, b);
        let r = reference(&q, &k32, &v32, n_kv, &p);
        assert!(rel_err(&a, &r) < 1e-5);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let kv = vec![0f32; 8];
        let (k, v) = (KvRows::F32(&kv), KvRows::F32(&kv));
        let mut out = vec![0f32; 12];
        // 3 query heads over 2 key/value heads.
        assert!(
            attention(
                &[0.0; 12],
                k,
                v,
                1,
                &AttentionParams::new(3, 2, 4),
                &mut out
            )
            .is_err()
        );
        let p = AttentionParams::new(2, 2, 4);
        let mut out = vec![0f32; 16];
        // Causal with more queries than keys.
        assert!(attention(&[0.0; 16], k, v, 1, &p.causal(), &mut out).is_err());
        // Too few key rows.
        assert!(attention(&[0.0; 16], k, v, 2, &p, &mut out).is_err());
        // Queries not a whole number of rows.
        assert!(attention(&[0.0; 15], k, v, 1, &p, &mut out).is_err());
    }
}
