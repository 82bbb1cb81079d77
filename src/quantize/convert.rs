//! Streaming one tensor into the output: copied unchanged, or converted row by row in parallel.

use indicatif::ProgressBar;
use rayon::prelude::*;

use super::error::QuantizeError;
use crate::dtype::GgmlType;
use crate::gguf::TensorWriter;
use crate::quant::{self, QuantError};

/// Elements converted per batch. Bounds the output buffer (at most 32 MiB, for F32) whatever the
/// tensor's size; big enough that every thread gets many rows.
const BATCH_ELEMENTS: usize = 1 << 23;

/// Bytes handed to the writer at a time when a tensor is copied unchanged.
const COPY_CHUNK_BYTES: usize = 16 << 20;

/// Writes `data` unchanged.
pub(super) fn copy_tensor(
    data: &[u8],
    out: &mut TensorWriter,
    progress: &ProgressBar,
) -> Result<(), QuantizeError> {
    for chunk in data.chunks(COPY_CHUNK_BYTES) {
        out.write_chunk(chunk)?;
        progress.inc(chunk.len() as u64);
    }
    Ok(())
}

/// What a conversion works on: a tensor's rows of `row_length` elements, from `from` to `to`.
pub(super) struct Conversion<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
    pub from: GgmlType,
    pub to: GgmlType,
    pub row_length: usize,
}

/// Dequantizes each row to f32 and quantizes it to the target type, a batch of rows at a time,
/// rows in parallel on the current rayon pool; writes each batch as it is done.
pub(super) fn convert_tensor(
    conversion: &Conversion,
    out: &mut TensorWriter,
    progress: &ProgressBar,
) -> Result<(), QuantizeError> {
    let Conversion {
        name,
        data,
        from,
        to,
        row_length,
    } = *conversion;
    let in_context = |source: QuantError| QuantizeError::Quant {
        tensor: name.to_owned(),
        source,
    };
    if data.is_empty() {
        return Ok(());
    }
    let in_row_bytes = quant::row_bytes(from, row_length).map_err(in_context)?;
    let out_row_bytes = quant::row_bytes(to, row_length).map_err(in_context)?;
    if in_row_bytes == 0 {
        return Ok(());
    }
    let rows_per_batch = (BATCH_ELEMENTS / row_length.max(1)).max(1);
    let mut converted = Vec::new();
    for batch in data.chunks(rows_per_batch * in_row_bytes) {
        converted.resize(batch.len() / in_row_bytes * out_row_bytes, 0u8);
        converted
            .par_chunks_mut(out_row_bytes)
            .zip(batch.par_chunks(in_row_bytes))
            .try_for_each_init(
                || vec![0.0f32; row_length],
                |row, (dst, src)| {
                    quant::dequantize_row(from, src, row)?;
                    quant::quantize_row(to, row, dst)
                },
            )
            .map_err(in_context)?;
        out.write_chunk(&converted)?;
        progress.inc(batch.len() as u64);
    }
    Ok(())
}
