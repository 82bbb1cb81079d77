//! Element-wise helpers: residual adds, broadcast of a per-channel vector over rows, scaling.

use super::{OpError, check_len, rows_of};

/// `a += b`.
pub fn add_in_place(a: &mut [f32], b: &[f32]) -> Result<(), OpError> {
    check_len("add", "right-hand elements", b.len(), a.len())?;
    for (x, &y) in a.iter_mut().zip(b) {
        *x += y;
    }
    Ok(())
}

/// `a *= b`.
pub fn mul_in_place(a: &mut [f32], b: &[f32]) -> Result<(), OpError> {
    check_len("mul", "right-hand elements", b.len(), a.len())?;
    for (x, &y) in a.iter_mut().zip(b) {
        *x *= y;
    }
    Ok(())
}

/// Adds `row` to every row of `a` ([n × row.len()]), e.g. a bias.
pub fn add_rows_in_place(a: &mut [f32], row: &[f32]) -> Result<(), OpError> {
    rows_of(
        "add_rows",
        "elements (rows × row length)",
        a.len(),
        row.len(),
    )?;
    for r in a.chunks_exact_mut(row.len()) {
        for (x, &y) in r.iter_mut().zip(row) {
            *x += y;
        }
    }
    Ok(())
}

/// Multiplies every row of `a` ([n × row.len()]) by `row` element-wise.
pub fn mul_rows_in_place(a: &mut [f32], row: &[f32]) -> Result<(), OpError> {
    rows_of(
        "mul_rows",
        "elements (rows × row length)",
        a.len(),
        row.len(),
    )?;
    for r in a.chunks_exact_mut(row.len()) {
        for (x, &y) in r.iter_mut().zip(row) {
            *x *= y;
        }
    }
    Ok(())
}

/// `a *= s`.
pub fn scale_in_place(a: &mut [f32], s: f32) {
    for x in a {
        *x *= s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_compute_and_check_shapes() {
        let mut a = vec![1.0f32, 2.0, 3.0, 4.0];
        add_in_place(&mut a, &[1.0, 1.0, 1.0, 1.0]).unwrap();
        assert_eq!(a, [2.0, 3.0, 4.0, 5.0]);
        mul_in_place(&mut a, &[2.0, 2.0, 0.5, 1.0]).unwrap();
        assert_eq!(a, [4.0, 6.0, 2.0, 5.0]);
        add_rows_in_place(&mut a, &[1.0, -1.0]).unwrap();
        assert_eq!(a, [5.0, 5.0, 3.0, 4.0]);
        mul_rows_in_place(&mut a, &[2.0, 0.0]).unwrap();
        assert_eq!(a, [10.0, 0.0, 6.0, 0.0]);
        scale_in_place(&mut a, 0.5);
        assert_eq!(a, [5.0, 0.0, 3.0, 0.0]);
        assert!(add_in_place(&mut a, &[1.0]).is_err());
        assert!(mul_in_place(&mut a, &[1.0]).is_err());
        assert!(add_rows_in_place(&mut a, &[1.0, 2.0, 3.0]).is_err());
        assert!(mul_rows_in_place(&mut a, &[]).is_err());
    }
}
