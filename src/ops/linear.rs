//! A linear layer: `y = x·Wᵀ + b` with `W` a weight of any block type (a view into the mmap).

use super::{OpError, add_rows_in_place, check_len, rows_of};
use crate::kernels::Kernels;
use crate::kernels::matmul::{QuantMatrix, matmul};

/// `x` [n × w.k()] → a new `y` [n × w.rows()], plus `bias` (length w.rows()) on every row if
/// given.
pub fn linear(
    kernels: &Kernels,
    w: &QuantMatrix<'_>,
    bias: Option<&[f32]>,
    x: &[f32],
) -> Result<Vec<f32>, OpError> {
    let n = rows_of(
        "linear",
        "input elements (rows × weight columns)",
        x.len(),
        w.k(),
    )?;
    let mut y = vec![0f32; n * w.rows()];
    linear_into(kernels, w, bias, x, &mut y)?;
    Ok(y)
}

/// As [`linear`], into `y` (exactly [n × w.rows()]; its contents are overwritten), so that
/// a caller running layer after layer reuses one buffer.
pub fn linear_into(
    kernels: &Kernels,
    w: &QuantMatrix<'_>,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), OpError> {
    let n = rows_of(
        "linear",
        "input elements (rows × weight columns)",
        x.len(),
        w.k(),
    )?;
    if let Some(b) = bias {
        check_len("linear", "bias length", b.len(), w.rows())?;
    }
    matmul(kernels, w, x, n, y)?;
    if let Some(b) = bias {
        add_rows_in_place(y, b)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GgmlType;
    use crate::kernels::kernels;
    use crate::ops::test_util::{rel_err, values};

    #[test]
    fn f32_and_q8_0_weights_match_f64_reference() {
        let (rows, k, n) = (7, 64, 3);
        let w = values(rows * k, 1, 1.0);
        let x = values(n * k, 2, 1.0);
        let b = values(rows, 3, 1.0);
        let mut reference = vec![0f64; n * rows];
        for t in 0..n {
            for r in 0..rows {
                reference[t * rows + r] = (0..k)
                    .map(|i| x[t * k + i] as f64 * w[r * k + i] as f64)
                    .sum::<f64>()
                    + b[r] as f64;
            }
        }
        let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let m = QuantMatrix::new(GgmlType::F32, rows, k, &bytes).unwrap();
        let y = linear(kernels(), &m, Some(&b), &x).unwrap();
        assert!(rel_err(&y, &reference) < 1e-6);

        let row_bytes = crate::quant::row_bytes(GgmlType::Q8_0, k).unwrap();
        let mut q = vec![0u8; rows * row_bytes];
        for (src, dst) in w.chunks(k).zip(q.chunks_mut(row_bytes)) {
            crate::quant::quantize_row(GgmlType::Q8_0, src, dst).unwrap();
        }
        let m = QuantMatrix::new(GgmlType::Q8_0, rows, k, &q).unwrap();
        let y = linear(kernels(), &m, Some(&b), &x).unwrap();
        assert!(rel_err(&y, &reference) < 2e-2);
        assert!(linear(kernels(), &m, Some(&b[..3]), &x).is_err());
        assert!(linear(kernels(), &m, None, &x[..10]).is_err());
        // Into a reused buffer: the same values, whatever it held; a wrong length is an error.
        let mut into = vec![f32::NAN; n * rows];
        linear_into(kernels(), &m, Some(&b), &x, &mut into).unwrap();
        assert_eq!(into, y);
        assert!(linear_into(kernels(), &m, Some(&b), &x, &mut into[1..]).is_err());
    }
}
