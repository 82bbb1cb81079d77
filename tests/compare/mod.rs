//! The one error measure the model tests report against references: max |ours − ref| /
//! max |ref|, in f64.

/// max |a − b| / max |b| (the lengths must agree).
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let max_ref = b
        .iter()
        .fold(0f64, |m, &v| m.max(f64::from(v).abs()))
        .max(1e-30);
    let max_diff = a.iter().zip(b).fold(0f64, |m, (&x, &y)| {
        m.max((f64::from(x) - f64::from(y)).abs())
    });
    max_diff / max_ref
}
