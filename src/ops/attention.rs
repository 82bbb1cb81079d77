//! Scaled dot-product attention over row-major activations, built on the f32 matmuls of
//! [`crate::kernels::matmul`]: per head, `softmax(scale · Q·Kᵀ + mask) · V`.
//!
//! Grouped-query attention: `n_kv_heads` divides `n_heads`, and query head `h` uses key/value
//! head `h / (n_heads / n_kv_heads)` (Hugging Face's `repeat_kv`, llama.cpp's broadcast).
//! Keys and values may be f32 or f16 (a KV cache): f16 rows are widened to f32 per head, so
//! products and sums are f32 either way.

use half::f16;
use rayon::prelude::*;

use super::activation::exp;
#[cfg(doc)]
use super::softmax::softmax_in_place;
use super::{OpError, check_len, rows_of, sum_f64};
use crate::kernels::kernels;
use crate::kernels::matmul::{matmul_f32, matmul_f32_in_task};

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

    /// As [`KvRows::gather`], cut in blocks of `block` rows, each transposed ([width × rows]).
    fn gather_transposed_blocks(
        &self,
        n: usize,
        stride: usize,
        col: usize,
        width: usize,
        block: usize,
    ) -> Vec<Vec<f32>> {
        (0..n)
            .step_by(block.max(1))
            .map(|r0| {
                let rows = block.min(n - r0);
                let mut t = vec![0f32; width * rows];
                for r in 0..rows {
                    let at = (r0 + r) * stride + col;
                    match self {
                        KvRows::F32(v) => {
                            for (c, &x) in v[at..at + width].iter().enumerate() {
                                t[c * rows + r] = x;
                            }
                        }
                        KvRows::F16(v) => {
                            for (c, x) in v[at..at + width].iter().enumerate() {
                                t[c * rows + r] = x.to_f32();
                            }
                        }
                    }
                }
                t
            })
            .collect()
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
    if n_kv == 0 {
        // No keys: nothing to attend to (the softmax of an empty row weighs nothing).
        out.fill(0.0);
        return Ok(());
    }
    let kv_block = kv_block_len(n_kv);
    // With a head per thread or more, each head's products run in its task (splitting them
    // among threads again would repack their operands once per part).
    let in_task = n_kv_heads >= rayon::current_num_threads();

    // One task per key/value head: gather its K and V once, serve the query heads of its group.
    let per_kv_head: Result<Vec<Vec<f32>>, OpError> = (0..n_kv_heads)
        .into_par_iter()
        .map(|kvh| {
            let kh = k.gather(n_kv, kv_width, kvh * d, d);
            let v_blocks = v.gather_transposed_blocks(n_kv, kv_width, kvh * d, d, kv_block);
            let mut outs = vec![0f32; group * n_q * d];
            let mut state = BlockState::new(d, kv_block, in_task);
            for (g, out_h) in outs.chunks_exact_mut(n_q * d).enumerate() {
                let h = kvh * group + g;
                for q0 in (0..n_q).step_by(Q_BLOCK) {
                    let rows = Q_BLOCK.min(n_q - q0);
                    let q_rows = &q[q0 * q_width..(q0 + rows) * q_width];
                    state.start(q_rows.chunks_exact(q_width).map(|r| &r[h * d..(h + 1) * d]));
                    // Causal: the block's last query sees keys up to offset + q0 + rows - 1.
                    let visible = if causal { offset + q0 + rows } else { n_kv };
                    for (b, k0) in (0..visible).step_by(kv_block).enumerate() {
                        let cols = kv_block.min(n_kv - k0);
                        // Causal: query q0 + i sees keys < offset + q0 + 1 + i.
                        let seen_by_first =
                            causal.then(|| (offset + q0 + 1) as isize - k0 as isize);
                        state.add_block(
                            &kh[k0 * d..(k0 + cols) * d],
                            &v_blocks[b],
                            cols,
                            scale,
                            seen_by_first,
                        )?;
                    }
                    state.finish(&mut out_h[q0 * d..(q0 + rows) * d]);
                }
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

/// Queries per block: their scores against one key block stay in L2 (128 × 1024 f32: 512 KiB),
/// and each key block is packed by the f32 tiles once per 128 queries (64: 10% slower at
/// 2928 tokens, 32: 60%; 192 and 256 no faster).
const Q_BLOCK: usize = 128;
/// Keys per block when the keys do not fit one block (512: 10% slower at 2928 tokens).
const KV_BLOCK: usize = 256;
/// Up to this many keys form one block: the softmax is then exact in one pass.
const KV_ONE_BLOCK_MAX: usize = 1024;

fn kv_block_len(n_kv: usize) -> usize {
    if n_kv <= KV_ONE_BLOCK_MAX {
        n_kv
    } else {
        KV_BLOCK
    }
}

/// One block of queries of one head, attended block of keys after block of keys with an
/// online softmax (flash attention): per query a running maximum `m`, a running sum of
/// `exp(score - m)` (f64, as [`softmax_in_place`] sums) and an unnormalised output, rescaled
/// whenever the maximum grows. The scores of one key block are all that exist at a time.
struct BlockState {
    d: usize,
    /// Products in the calling task ([`matmul_f32_in_task`]), else split ([`matmul_f32`]).
    in_task: bool,
    rows: usize,
    q: Vec<f32>,
    scores: Vec<f32>,
    pv: Vec<f32>,
    acc: Vec<f32>,
    max: Vec<f32>,
    sum: Vec<f64>,
}

impl BlockState {
    fn new(d: usize, kv_block: usize, in_task: bool) -> Self {
        BlockState {
            d,
            in_task,
            rows: 0,
            q: Vec::with_capacity(Q_BLOCK * d),
            scores: vec![0f32; Q_BLOCK * kv_block],
            pv: vec![0f32; Q_BLOCK * d],
            acc: vec![0f32; Q_BLOCK * d],
            max: vec![0f32; Q_BLOCK],
            sum: vec![0f64; Q_BLOCK],
        }
    }

    /// Starts a block of queries (each `d` values).
    fn start<'a>(&mut self, queries: impl Iterator<Item = &'a [f32]>) {
        self.q.clear();
        for row in queries {
            self.q.extend_from_slice(row);
        }
        self.rows = self.q.len() / self.d;
        self.acc[..self.rows * self.d].fill(0.0);
        self.max[..self.rows].fill(f32::NEG_INFINITY);
        self.sum[..self.rows].fill(0.0);
    }

    /// Attends the queries to `cols` keys `k` ([cols × d]) with values `v_t` ([d × cols],
    /// transposed). `seen_by_first`: causal, query `i` sees the block's first
    /// `seen_by_first + i` keys (clamped to `0 ..= cols`).
    fn add_block(
        &mut self,
        k: &[f32],
        v_t: &[f32],
        cols: usize,
        scale: f32,
        seen_by_first: Option<isize>,
    ) -> Result<(), OpError> {
        let (d, rows) = (self.d, self.rows);
        let product = if self.in_task {
            matmul_f32_in_task
        } else {
            matmul_f32
        };
        let scores = &mut self.scores[..rows * cols];
        product(&self.q, rows, k, cols, d, scores)?;
        for (i, row) in scores.chunks_exact_mut(cols).enumerate() {
            let seen =
                seen_by_first.map_or(cols, |f| (f + i as isize).clamp(0, cols as isize) as usize);
            let block_max = row[..seen]
                .iter()
                .fold(f32::NEG_INFINITY, |m, &s| m.max(s * scale));
            let new_max = self.max[i].max(block_max);
            if new_max == f32::NEG_INFINITY {
                // Nothing seen yet (every score -inf, or every key masked): weigh nothing.
                row.fill(0.0);
                continue;
            }
            (kernels().unary.scaled_exp)(&mut row[..seen], scale, new_max);
            let sum = sum_f64(&row[..seen], |p| p);
            row[seen..].fill(0.0);
            if new_max > self.max[i] {
                let correction = exp(self.max[i] - new_max);
                self.sum[i] *= f64::from(correction);
                for a in &mut self.acc[i * d..(i + 1) * d] {
                    *a *= correction;
                }
                self.max[i] = new_max;
            }
            self.sum[i] += sum;
        }
        let pv = &mut self.pv[..rows * d];
        product(scores, rows, v_t, d, cols, pv)?;
        for (a, p) in self.acc[..rows * d].iter_mut().zip(pv.iter()) {
            *a += p;
        }
        Ok(())
    }

    /// Writes the normalised outputs ([rows × d]).
    fn finish(&self, out: &mut [f32]) {
        let d = self.d;
        for (i, o) in out.chunks_exact_mut(d).enumerate() {
            let inv = if self.sum[i] > 0.0 {
                (1.0 / self.sum[i]) as f32
            } else {
                0.0
            };
            for (x, a) in o.iter_mut().zip(&self.acc[i * d..(i + 1) * d]) {
                *x = a * inv;
            }
        }
    }
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

    /// Keys growing with their position, so later key blocks raise the running maximum and
    /// the online softmax must rescale what it summed before.
    fn growing_keys(n_kv: usize, width: usize, seed: u64) -> Vec<f32> {
        let mut k = values(n_kv * width, seed, 1.0);
        for (j, row) in k.chunks_exact_mut(width).enumerate() {
            let grow = 1.0 + 3.0 * j as f32 / n_kv as f32;
            row.iter_mut().for_each(|x| *x *= grow);
        }
        k
    }

    /// The blocked paths: queries not a multiple of [`Q_BLOCK`], keys over
    /// [`KV_ONE_BLOCK_MAX`] (several key blocks, the last one partial), n_q = n_kv and
    /// n_q < n_kv, causal and not, grouped-query, f32 and f16 keys/values.
    #[test]
    fn blocked_paths_match_f64_reference() {
        let p = AttentionParams::new(4, 2, 8);
        let kv_width = 16;
        let cases = [
            (Q_BLOCK + 6, 2 * KV_BLOCK + 100),
            (2 * Q_BLOCK + 1, 2 * Q_BLOCK + 1),
            (KV_ONE_BLOCK_MAX + 37, KV_ONE_BLOCK_MAX + 37),
            (3, KV_BLOCK + 5),
            (Q_BLOCK, Q_BLOCK + 1),
        ];
        assert!(cases.iter().any(|&(_, n_kv)| n_kv > KV_ONE_BLOCK_MAX));
        assert!(
            cases
                .iter()
                .any(|&(n_q, _)| n_q % Q_BLOCK != 0 && n_q > Q_BLOCK)
        );
        for (n_q, n_kv) in cases {
            let q = values(n_q * 32, 7, 2.0);
            let k = growing_keys(n_kv, kv_width, 8);
            let v = values(n_kv * kv_width, 9, 1.0);
            let to_f16 = |v: &[f32]| v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<f16>>();
            let (k16, v16) = (to_f16(&k), to_f16(&v));
            let widen = |v: &[f16]| v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
            let (k16w, v16w) = (widen(&k16), widen(&v16));
            for p in [p, p.causal()] {
                let mut out = vec![0f32; n_q * 32];
                attention(&q, KvRows::F32(&k), KvRows::F32(&v), n_kv, &p, &mut out).unwrap();
                let err = rel_err(&out, &reference(&q, &k, &v, n_kv, &p));
                assert!(err < 1e-5, "f32 {n_q}×{n_kv} causal {}: {err}", p.causal);
                let mut out16 = vec![0f32; n_q * 32];
                attention(
                    &q,
                    KvRows::F16(&k16),
                    KvRows::F16(&v16),
                    n_kv,
                    &p,
                    &mut out16,
                )
                .unwrap();
                let err = rel_err(&out16, &reference(&q, &k16w, &v16w, n_kv, &p));
                assert!(err < 1e-5, "f16 {n_q}×{n_kv} causal {}: {err}", p.causal);
            }
        }
    }

    /// Causal: each query's output depends on no key after its own position (a change there
    /// leaves it bit for bit the same), across key blocks.
    #[test]
    fn causal_outputs_ignore_later_keys() {
        let p = AttentionParams::new(2, 2, 8).causal();
        let (n_q, n_kv) = (Q_BLOCK + 3, KV_ONE_BLOCK_MAX + 200);
        let q = values(n_q * 16, 10, 2.0);
        let k = values(n_kv * 16, 11, 2.0);
        let mut v = values(n_kv * 16, 12, 1.0);
        let mut before = vec![0f32; n_q * 16];
        attention(&q, KvRows::F32(&k), KvRows::F32(&v), n_kv, &p, &mut before).unwrap();
        // The last key is seen only by the last query.
        v[(n_kv - 1) * 16..].fill(100.0);
        let mut after = vec![0f32; n_q * 16];
        attention(&q, KvRows::F32(&k), KvRows::F32(&v), n_kv, &p, &mut after).unwrap();
        assert_eq!(before[..(n_q - 1) * 16], after[..(n_q - 1) * 16]);
        assert_ne!(before[(n_q - 1) * 16..], after[(n_q - 1) * 16..]);
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
