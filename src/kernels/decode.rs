//! The n = 1 (decoding) side of [`super::matmul`]: one activation row against every weight row.
//! Bound by memory bandwidth, so the weight rows are split in chunks of about
//! [`DECODE_CHUNK_BYTES`] processed in parallel with rayon.

use rayon::prelude::*;

use super::VecDotFn;
use super::matmul::QuantMatrix;

/// Target bytes of weights per parallel task for n = 1: small enough for many tasks (load
/// balance), large enough to amortise scheduling.
pub const DECODE_CHUNK_BYTES: usize = 32 * 1024;

/// `y[r] = dot(W[r], acts)` for every row; `acts` is one activation row already converted to
/// the weight type's activation type, `y` holds `w.rows()` values. The caller checked the shapes.
pub(super) fn matmul_decode(dot: VecDotFn, w: &QuantMatrix<'_>, acts: &[u8], y: &mut [f32]) {
    let (k, row_bytes, data) = (w.k(), w.row_bytes(), w.data());
    let chunk_rows = (DECODE_CHUNK_BYTES / row_bytes).clamp(1, 256);
    y.par_chunks_mut(chunk_rows)
        .enumerate()
        .for_each(|(chunk, out)| {
            let first = chunk * chunk_rows;
            for (i, v) in out.iter_mut().enumerate() {
                let row = &data[(first + i) * row_bytes..(first + i + 1) * row_bytes];
                *v = dot(k, row, acts);
            }
        });
}
