//! Rotary position embedding in llama.cpp's "normal" layout: the converter permutes the rows
//! of `attn_q` / `attn_k` (as llama.cpp's `convert_hf_to_gguf.py` does) so that the pairs that
//! rotate together are adjacent, `(x[2i], x[2i+1])`, instead of Hugging Face's halves
//! `(x[i], x[i + d/2])`. Pair `i` at position `p` rotates by `p · freq_scale · base^(-2i/n_rot)`.
//! Angles are computed in f64 (Hugging Face computes them in f32; the difference is well below
//! f32 rounding of the result).

use super::{OpError, check_len, rows_of};

/// Rope settings from the model's metadata.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams {
    /// Leading dimensions of each head that rotate (`rope.dimension_count`, usually the head
    /// size); the rest pass through unchanged. Must be even and ≤ the head size.
    pub n_rot: usize,
    /// `rope.freq_base` (10000 for LLaMA, 1e6 for Mistral v0.2, 5e6 for Yi).
    pub freq_base: f32,
    /// Linear scaling: positions are multiplied by this (1 / `rope.scaling.factor`).
    pub freq_scale: f32,
}

/// Rotates `x` ([n_tokens × n_heads·head_dim], one row per token) in place; token `t` is at
/// position `positions[t]`.
pub fn rope(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    positions: &[usize],
    params: &RopeParams,
) -> Result<(), OpError> {
    let width = n_heads * head_dim;
    let n_tokens = rows_of(
        "rope",
        "input elements (tokens × heads × head size)",
        x.len(),
        width,
    )?;
    check_len("rope", "positions", positions.len(), n_tokens)?;
    if !params.n_rot.is_multiple_of(2) || params.n_rot > head_dim {
        return Err(OpError::Invalid {
            op: "rope",
            reason: format!(
                "rotated dimensions {} must be even and at most the head size {head_dim}",
                params.n_rot
            ),
        });
    }
    let half = params.n_rot / 2;
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| f64::from(params.freq_base).powf(-2.0 * i as f64 / params.n_rot as f64))
        .collect();
    let mut cos_sin = vec![(0f32, 0f32); half];
    for (row, &pos) in x.chunks_exact_mut(width).zip(positions) {
        let p = pos as f64 * f64::from(params.freq_scale);
        for (cs, f) in cos_sin.iter_mut().zip(&inv_freq) {
            let theta = p * f;
            *cs = (theta.cos() as f32, theta.sin() as f32);
        }
        for head in row.chunks_exact_mut(head_dim) {
            for (pair, &(c, s)) in head[..params.n_rot].chunks_exact_mut(2).zip(&cos_sin) {
                let (x0, x1) = (pair[0], pair[1]);
                pair[0] = x0 * c - x1 * s;
                pair[1] = x0 * s + x1 * c;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{rel_err, values};

    /// Hugging Face's rotate-half rope on un-permuted rows, in f64.
    fn hf_rope_reference(
        head: &[f64],
        pos: usize,
        base: f64,
        scale: f64,
        n_rot: usize,
    ) -> Vec<f64> {
        let half = n_rot / 2;
        let mut out = head.to_vec();
        for i in 0..half {
            let theta = pos as f64 * scale * base.powf(-2.0 * i as f64 / n_rot as f64);
            let (a, b) = (head[i], head[i + half]);
            out[i] = a * theta.cos() - b * theta.sin();
            out[i + half] = b * theta.cos() + a * theta.sin();
        }
        out
    }

    /// The converter's permutation: HF row `i` of a head goes to position 2i (first half) or
    /// 2(i - d/2) + 1 (second half), i.e. llama.cpp's `permute`.
    fn permute(head: &[f64], n_rot: usize) -> Vec<f64> {
        let half = n_rot / 2;
        let mut out = head.to_vec();
        for i in 0..half {
            out[2 * i] = head[i];
            out[2 * i + 1] = head[i + half];
        }
        out
    }

    #[test]
    fn equals_hugging_face_rotate_half_after_the_permutation() {
        let (n_heads, head_dim) = (3, 16);
        for &(base, scale, n_rot) in &[
            (10000f32, 1f32, 16usize),
            (1e6, 0.25, 16),
            (10000.0, 1.0, 8),
        ] {
            let params = RopeParams {
                n_rot,
                freq_base: base,
                freq_scale: scale,
            };
            let positions = [0usize, 1, 7, 511, 4000];
            let hf_rows = values(positions.len() * n_heads * head_dim, 11, 2.0);
            // Our input: each head permuted as the converter stores it.
            let mut x: Vec<f32> = hf_rows
                .chunks(head_dim)
                .flat_map(|h| {
                    let h: Vec<f64> = h.iter().map(|&v| v as f64).collect();
                    permute(&h, n_rot).into_iter().map(|v| v as f32)
                })
                .collect();
            rope(&mut x, n_heads, head_dim, &positions, &params).unwrap();
            let mut reference = Vec::new();
            for (t, row) in hf_rows.chunks(n_heads * head_dim).enumerate() {
                for h in row.chunks(head_dim) {
                    let h: Vec<f64> = h.iter().map(|&v| v as f64).collect();
                    let r = hf_rope_reference(&h, positions[t], base as f64, scale as f64, n_rot);
                    reference.extend(permute(&r, n_rot));
                }
            }
            let err = rel_err(&x, &reference);
            assert!(err < 1e-6, "base {base} scale {scale} n_rot {n_rot}: {err}");
        }
    }

    #[test]
    fn position_zero_is_identity_and_bad_shapes_are_errors() {
        let params = RopeParams {
            n_rot: 4,
            freq_base: 10000.0,
            freq_scale: 1.0,
        };
        let orig = values(8, 3, 1.0);
        let mut x = orig.clone();
        rope(&mut x, 2, 4, &[0], &params).unwrap();
        assert_eq!(x, orig);
        assert!(rope(&mut x, 2, 4, &[0, 1], &params).is_err());
        let odd = RopeParams { n_rot: 3, ..params };
        assert!(rope(&mut x, 2, 4, &[0], &odd).is_err());
    }
}
