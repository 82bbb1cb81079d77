//! The n = 1 (decoding) side of [`super::matmul`]: one activation row against every weight row.
//! Bound by memory bandwidth, so the weight rows are split in chunks of about
//! [`DECODE_CHUNK_BYTES`] processed in parallel with rayon. [`matmul_vec_many`] does several
//! matrices sharing one input row in one parallel pass (the decode loop's Q/K/V and gate/up).
//! Where the tier has a [`DecodeDot`](super::DecodeDot) for the weight type, the converted
//! activation row is prepared once into its layout and every row is dotted with that.

use std::ops::{Deref, Range};

use rayon::prelude::*;

use super::matmul::QuantMatrix;
use super::{
    DotRowsFn, GroupDotFn, KernelError, Kernels, VecDotFn, WeightLayout, activation_type, bytes_of,
    repack,
};
use crate::GgmlType;

/// Target bytes of weights per parallel task for n = 1: small enough for many tasks (load
/// balance), large enough to amortise scheduling.
pub const DECODE_CHUNK_BYTES: usize = 32 * 1024;

/// Where the dot takes several rows at once ([`DotRowsFn`]: x86's F16 and Q8_0 take 4, each from
/// its own contiguous part of the task's rows), a task holds [`ROW_STREAMS`] parts of at least
/// [`ROW_STREAM_BYTES`] each: long sequential streams for the hardware prefetchers.
const ROW_STREAMS: usize = 4;
const ROW_STREAM_BYTES: usize = 128 * 1024;

/// The dot an n = 1 matmul runs over a task's rows: several at once, one by one, or (on a
/// repacked matrix) whole groups of interleaved rows.
#[derive(Clone, Copy)]
enum RowDot {
    Rows(DotRowsFn),
    One(VecDotFn),
    /// The group dot, rows per group, target bytes per task ([`GroupDot::task_bytes`](super::GroupDot::task_bytes)).
    Groups(GroupDotFn, usize, usize),
}

impl RowDot {
    /// Weight rows per parallel task for rows of `row_bytes`.
    fn chunk_rows(self, row_bytes: usize) -> usize {
        let row_bytes = row_bytes.max(1);
        match self {
            RowDot::Rows(_) => ROW_STREAMS * ROW_STREAM_BYTES.div_ceil(row_bytes),
            RowDot::One(_) => (DECODE_CHUNK_BYTES / row_bytes).clamp(1, 256),
            // Whole groups, so every task starts on one.
            RowDot::Groups(_, group, task_bytes) => (task_bytes / row_bytes)
                .clamp(1, 256)
                .next_multiple_of(group),
        }
    }

    /// `out[i] = dot(W[first + i], acts)`.
    fn run(
        self,
        k: usize,
        data: &[u8],
        row_bytes: usize,
        first: usize,
        acts: &[u8],
        out: &mut [f32],
    ) {
        let rows = &data[first * row_bytes..(first + out.len()) * row_bytes];
        match self {
            RowDot::Rows(dot) => dot(k, rows, row_bytes, acts, out),
            RowDot::Groups(dot, _, _) => dot(k, rows, acts, out),
            RowDot::One(dot) => {
                for (i, v) in out.iter_mut().enumerate() {
                    *v = dot(k, &rows[i * row_bytes..(i + 1) * row_bytes], acts);
                }
            }
        }
    }
}

/// The activation bytes an n = 1 matmul dots every row with: prepared (owned, starting at a
/// 64-byte boundary) or the converted row as it is.
enum DecodeActs<'a> {
    Prepared { buf: Vec<u8>, at: Range<usize> },
    Plain(&'a [u8]),
}

impl DecodeActs<'_> {
    /// `len` bytes from a 64-byte boundary, written by `prepare`. The prepared blocks are
    /// multiples of 32 bytes, so their 32-byte loads then stay within cache lines; from a
    /// 16-byte aligned allocation half of them could straddle two (AVX2 Q4_K: 2–3% slower).
    fn prepared(len: usize, prepare: impl FnOnce(&mut [u8])) -> Self {
        let mut buf = vec![0u8; len + 63];
        // `align_offset` may decline (`usize::MAX`): then unaligned, still correct.
        let start = match buf.as_ptr().align_offset(64) {
            offset if offset < 64 => offset,
            _ => 0,
        };
        let at = start..start + len;
        prepare(&mut buf[at.clone()]);
        DecodeActs::Prepared { buf, at }
    }
}

impl Deref for DecodeActs<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            DecodeActs::Prepared { buf, at } => &buf[at.clone()],
            DecodeActs::Plain(acts) => acts,
        }
    }
}

/// The dot an n = 1 matmul of `w_type` weights in `layout` runs and the activation bytes it
/// takes: on a repacked layout its [`GroupDot`](super::GroupDot); on ggml's the tier's
/// [`DecodeDot`](super::DecodeDot) on `acts` prepared, or its plain dot on `acts` as they are.
fn decode_input<'a>(
    kernels: &Kernels,
    w_type: GgmlType,
    layout: WeightLayout,
    k: usize,
    acts: &'a [u8],
) -> Result<(RowDot, DecodeActs<'a>), KernelError> {
    if let Some(group) = repack::group_dot(kernels, layout) {
        let len = (group.prepared_bytes)(k);
        let out = DecodeActs::prepared(len, |out| (group.prepare)(k, acts, out));
        let dot = RowDot::Groups(group.dot, layout.group_rows(), group.task_bytes);
        return Ok((dot, out));
    }
    if let Some(prepared) = kernels.decode_dot(w_type) {
        let len = (prepared.prepared_bytes)(k);
        let out = DecodeActs::prepared(len, |out| (prepared.prepare)(k, acts, out));
        let dot = prepared
            .rows
            .map_or(RowDot::One(prepared.dot), RowDot::Rows);
        return Ok((dot, out));
    }
    let dot = kernels
        .vec_dot(w_type)
        .ok_or(KernelError::UnsupportedWeightType(w_type))?;
    Ok((RowDot::One(dot), DecodeActs::Plain(acts)))
}

/// `y[r] = dot(W[r], acts)` for every row; `acts` is one activation row already converted to
/// the weight type's activation type, `y` holds `w.rows()` values. The caller checked the shapes.
pub(super) fn matmul_decode(
    kernels: &Kernels,
    w: &QuantMatrix<'_>,
    acts: &[u8],
    y: &mut [f32],
) -> Result<(), KernelError> {
    let (k, row_bytes, data) = (w.k(), w.row_bytes(), w.data());
    let (dot, acts) = decode_input(kernels, w.ty(), w.layout(), k, acts)?;
    let acts = &acts[..];
    let chunk_rows = dot.chunk_rows(row_bytes);
    y.par_chunks_mut(chunk_rows)
        .enumerate()
        .for_each(|(chunk, out)| dot.run(k, data, row_bytes, chunk * chunk_rows, acts, out));
    Ok(())
}

/// `ys[i] = W_i · x` for several matrices sharing one input row `x` (a layer's Q, K and V
/// projections; its FFN gate and up): `x` is converted once per activation type, and the rows
/// of all the matrices are shared among the threads in one parallel pass (one fork-join for
/// all, and no thread idles at the end of a small matrix). Each `ys[i]` holds `ws[i].rows()`
/// values and equals [`super::matmul`]'s result for `ws[i]` alone, bit for bit.
pub fn matmul_vec_many(
    kernels: &Kernels,
    ws: &[QuantMatrix<'_>],
    x: &[f32],
    ys: &mut [&mut [f32]],
) -> Result<(), KernelError> {
    let shape = |what, expected: usize, actual: usize| {
        if expected == actual {
            Ok(())
        } else {
            Err(KernelError::Shape {
                what,
                expected,
                actual,
            })
        }
    };
    shape("output vectors (one per matrix)", ws.len(), ys.len())?;
    // Converted activations, one buffer per activation type met.
    let mut acts: Vec<(GgmlType, Vec<u8>)> = Vec::new();
    for (w, y) in ws.iter().zip(ys.iter()) {
        shape("input elements (the matrix's k)", w.k(), x.len())?;
        shape("output elements (the matrix's rows)", w.rows(), y.len())?;
        let ty = w.ty();
        kernels
            .vec_dot(ty)
            .ok_or(KernelError::UnsupportedWeightType(ty))?;
        let act_type = activation_type(ty).ok_or(KernelError::UnsupportedWeightType(ty))?;
        if x.is_empty() || acts.iter().any(|(t, _)| *t == act_type) {
            continue;
        }
        let mut bytes = vec![0u8; bytes_of(act_type, x.len())?];
        kernels.quantize_activations(act_type, x, &mut bytes)?;
        acts.push((act_type, bytes));
    }
    if x.is_empty() {
        ys.iter_mut().for_each(|y| y.fill(0.0));
        return Ok(());
    }
    // Each weight type and layout's dot and input (prepared once per pair met), and which of
    // them each matrix takes.
    let mut inputs: Vec<((GgmlType, WeightLayout), RowDot, DecodeActs<'_>)> = Vec::new();
    let mut input_of: Vec<usize> = Vec::with_capacity(ws.len());
    for w in ws {
        let (ty, layout) = (w.ty(), w.layout());
        if let Some(at) = inputs.iter().position(|(t, _, _)| *t == (ty, layout)) {
            input_of.push(at);
            continue;
        }
        let act_type = activation_type(ty).ok_or(KernelError::UnsupportedWeightType(ty))?;
        let converted = acts
            .iter()
            .find(|(t, _)| *t == act_type)
            .map_or(&[][..], |(_, b)| &b[..]);
        let (dot, input) = decode_input(kernels, ty, layout, x.len(), converted)?;
        input_of.push(inputs.len());
        inputs.push(((ty, layout), dot, input));
    }
    let per_matrix: Vec<(RowDot, &[u8])> = input_of
        .iter()
        .map(|&at| (inputs[at].1, &inputs[at].2[..]))
        .collect();
    // Tasks of about DECODE_CHUNK_BYTES of weights: (matrix, first row, its outputs).
    let mut tasks: Vec<(usize, usize, &mut [f32])> = Vec::new();
    for (i, (w, y)) in ws.iter().zip(ys.iter_mut()).enumerate() {
        let chunk_rows = per_matrix[i].0.chunk_rows(w.row_bytes());
        for (c, out) in y.chunks_mut(chunk_rows).enumerate() {
            tasks.push((i, c * chunk_rows, out));
        }
    }
    tasks.into_par_iter().for_each(|(i, first, out)| {
        let (w, (dot, a)) = (&ws[i], per_matrix[i]);
        dot.run(w.k(), w.data(), w.row_bytes(), first, a, out);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::DecodeActs;

    /// The prepared bytes are exactly what `prepare` wrote, `len` of them, from a 64-byte
    /// boundary, whatever the length.
    #[test]
    fn prepared_activations_start_on_a_cache_line() {
        for len in [0, 1, 31, 64, 288, 4608, 4609] {
            let acts = DecodeActs::prepared(len, |out| {
                assert_eq!(out.len(), len);
                for (i, b) in out.iter_mut().enumerate() {
                    *b = (i % 251) as u8 + 1;
                }
            });
            assert_eq!(acts.len(), len);
            assert_eq!(acts.as_ptr().align_offset(64), 0, "len {len}");
            assert!(
                acts.iter()
                    .enumerate()
                    .all(|(i, &b)| b == (i % 251) as u8 + 1)
            );
        }
    }
}
