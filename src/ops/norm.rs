//! Normalisations over rows: RMSNorm (LLaMA's `attn_norm`, `ffn_norm`, `output_norm`) and
//! LayerNorm (CLIP). Sums are accumulated in f64, as ggml's `ggml_float` does.

use rayon::prelude::*;

use super::{OpError, check_len, rows_of, sum_f64};

/// RMSNorm of each row of `x` ([n × dim], dim = `weight.len()`), times `weight`, into `out`:
/// `out = x / sqrt(mean(x²) + eps) · weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) -> Result<(), OpError> {
    let dim = weight.len();
    rows_of(
        "rms_norm",
        "input elements (rows × weight length)",
        x.len(),
        dim,
    )?;
    check_len("rms_norm", "output elements", out.len(), x.len())?;
    for (row, dst) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let sum: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let mean = (sum / dim as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, &v), &w) in dst.iter_mut().zip(row).zip(weight) {
            *o = v * scale * w;
        }
    }
    Ok(())
}

/// LayerNorm of each row of `x` ([n × dim], dim = `weight.len()`) with affine `weight` and
/// `bias`, into `out`: `out = (x - mean) / sqrt(var + eps) · weight + bias` (biased variance,
/// as torch's `nn.LayerNorm`). Rows are shared among the threads (CLIP normalises 577 rows
/// twice a layer).
pub fn layer_norm(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    eps: f32,
    out: &mut [f32],
) -> Result<(), OpError> {
    let dim = weight.len();
    check_len("layer_norm", "bias length", bias.len(), dim)?;
    let rows = rows_of(
        "layer_norm",
        "input elements (rows × weight length)",
        x.len(),
        dim,
    )?;
    check_len("layer_norm", "output elements", out.len(), x.len())?;
    if dim == 0 {
        return Ok(());
    }
    let norm_rows = |x: &[f32], out: &mut [f32]| {
        for (row, dst) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            layer_norm_row(row, weight, bias, eps, dst);
        }
    };
    if rows < 2 * PARALLEL_ROWS {
        norm_rows(x, out);
    } else {
        x.par_chunks(PARALLEL_ROWS * dim)
            .zip(out.par_chunks_mut(PARALLEL_ROWS * dim))
            .for_each(|(x, out)| norm_rows(x, out));
    }
    Ok(())
}

/// Rows per parallel task of [`layer_norm`].
const PARALLEL_ROWS: usize = 32;

fn layer_norm_row(row: &[f32], weight: &[f32], bias: &[f32], eps: f32, dst: &mut [f32]) {
    let dim = row.len();
    let mean = (sum_f64(row, |v| v) / dim as f64) as f32;
    for (o, &v) in dst.iter_mut().zip(row) {
        *o = v - mean;
    }
    let var = (sum_f64(dst, |c| c * c) / dim as f64) as f32;
    let scale = 1.0 / (var + eps).sqrt();
    for ((o, &w), &b) in dst.iter_mut().zip(weight).zip(bias) {
        *o = *o * scale * w + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{rel_err, values};

    #[test]
    fn rms_norm_matches_f64_reference() {
        let (n, dim, eps) = (5, 96, 1e-6f32);
        let x = values(n * dim, 1, 3.0);
        let w = values(dim, 2, 1.5);
        let mut out = vec![0f32; n * dim];
        rms_norm(&x, &w, eps, &mut out).unwrap();
        let mut reference = vec![0f64; n * dim];
        for r in 0..n {
            let row = &x[r * dim..(r + 1) * dim];
            let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / dim as f64;
            let s = 1.0 / (ms + eps as f64).sqrt();
            for i in 0..dim {
                reference[r * dim + i] = row[i] as f64 * s * w[i] as f64;
            }
        }
        assert!(rel_err(&out, &reference) < 1e-6);
    }

    #[test]
    fn layer_norm_matches_f64_reference() {
        // 150 rows: the parallel path, with a partial last task; dim 83: a partial sum chunk.
        let (n, dim, eps) = (150, 83, 1e-5f32);
        // An offset mean, where a one-pass variance would lose precision.
        let x: Vec<f32> = values(n * dim, 3, 2.0).iter().map(|v| v + 50.0).collect();
        let w = values(dim, 4, 1.0);
        let b = values(dim, 5, 0.5);
        let mut out = vec![0f32; n * dim];
        layer_norm(&x, &w, &b, eps, &mut out).unwrap();
        let mut reference = vec![0f64; n * dim];
        for r in 0..n {
            let row: Vec<f64> = x[r * dim..(r + 1) * dim]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let mean = row.iter().sum::<f64>() / dim as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / dim as f64;
            for i in 0..dim {
                reference[r * dim + i] =
                    (row[i] - mean) / (var + eps as f64).sqrt() * w[i] as f64 + b[i] as f64;
            }
        }
        assert!(
            rel_err(&out, &reference) < 1e-5,
            "{}",
            rel_err(&out, &reference)
        );
    }

    #[test]
    fn shapes_are_checked() {
        let mut out = vec![0f32; 7];
        assert!(rms_norm(&[0.0; 7], &[1.0; 4], 1e-5, &mut out).is_err());
        let mut out = vec![0f32; 8];
        assert!(layer_norm(&[0.0; 8], &[1.0; 4], &[0.0; 3], 1e-5, &mut out).is_err());
        assert!(rms_norm(&[0.0; 8], &[], 1e-5, &mut out).is_err());
    }
}
