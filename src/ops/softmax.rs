//! Softmax over rows, max-subtracted (so large logits do not overflow), the sum in f64.

use super::{OpError, rows_of, sum_f64};
use crate::kernels::kernels;

/// Softmax of `x` in place. Entries equal to `-inf` (masked) get probability 0; a row that is
/// entirely `-inf` becomes all zeros rather than NaN.
pub fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        x.fill(0.0);
        return;
    }
    (kernels().unary.scaled_exp)(x, 1.0, max);
    let sum = sum_f64(x, |p| p);
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Softmax of each row of `x` ([n × dim]) in place.
pub fn softmax_rows_in_place(x: &mut [f32], dim: usize) -> Result<(), OpError> {
    rows_of("softmax", "input elements (rows × dim)", x.len(), dim)?;
    for row in x.chunks_exact_mut(dim) {
        softmax_in_place(row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{rel_err, values};

    #[test]
    fn matches_f64_reference_including_large_values_and_masks() {
        let dim = 37;
        let mut x = values(3 * dim, 7, 30.0);
        x[5] = 1000.0; // would overflow exp without the max subtraction
        x[dim + 3] = f32::NEG_INFINITY;
        let reference: Vec<f64> = x
            .chunks(dim)
            .flat_map(|row| {
                let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(move |v| v / s)
            })
            .collect();
        softmax_rows_in_place(&mut x, dim).unwrap();
        assert!(rel_err(&x, &reference) < 1e-6);
        assert_eq!(x[dim + 3], 0.0);
        let mut masked = [f32::NEG_INFINITY; 4];
        softmax_in_place(&mut masked);
        assert_eq!(masked, [0.0; 4]);
        assert!(softmax_rows_in_place(&mut [0.0; 5], 2).is_err());
    }
}
