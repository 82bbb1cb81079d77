//! Converting one planned tensor: source rows (F32/F16/BF16/F64 in the mmap) → f32 → checked
//! finite → the output type (with ggml's rounding, via `llava::quant`), q/k rows permuted for
//! llama.cpp's rope, rows in parallel, a bounded batch of rows at a time.

use indicatif::ProgressBar;
use rayon::prelude::*;

use super::error::ConvertError;
use super::plan::PlannedTensor;
use super::store::TensorStore;
use crate::GgmlType;
use crate::gguf::GgufDataWriter;
use crate::quant;

/// Rows converted per batch are capped at this many bytes of f32 (bounds memory per tensor).
const BATCH_BYTES: usize = 32 << 20;

/// The source row that lands in output row `row` after llama.cpp's `LlamaModel.permute`:
/// `w.reshape(n_head, 2, rows / n_head / 2, cols).swapaxes(1, 2).reshape(rows, cols)`, i.e.
/// within each head, the two rotate-half halves are interleaved.
pub fn permuted_source_row(row: usize, rows: usize, n_head: usize) -> usize {
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let (head, within) = (row / head_dim, row % head_dim);
    let (i, j) = (within / 2, within % 2);
    head * head_dim + j * half + i
}

/// Writes `plan`'s tensor into `out` (whose next declared tensor it must be).
pub fn write_tensor(
    store: &TensorStore,
    plan: &PlannedTensor,
    out: &mut GgufDataWriter,
    progress: &ProgressBar,
) -> Result<(), ConvertError> {
    let src = store
        .get(&plan.source)
        .ok_or_else(|| ConvertError::MissingTensor {
            tensor: plan.source.clone(),
            hint: String::new(),
        })?;
    let data = store.data(src);
    let n = src.n_elements();
    let rows = if plan.shape.len() <= 1 {
        1
    } else {
        plan.shape[0]
    };
    let row_len = n.checked_div(rows).unwrap_or(0);
    let elem = src.dtype.size();
    let qerr = |e| ConvertError::Quant {
        tensor: plan.name.clone(),
        source: e,
    };
    let out_row = quant::row_bytes(plan.ty, row_len).map_err(qerr)?;
    if let Some(h) = plan.permute_heads
        && (h == 0 || rows % (2 * h) != 0)
    {
        return Err(ConvertError::Shape {
            tensor: plan.source.clone(),
            expected: vec![h * 2, row_len],
            found: plan.shape.clone(),
        });
    }
    let batch = (BATCH_BYTES / (row_len.max(1) * 4)).clamp(1, rows.max(1));
    let mut buf = vec![0u8; batch * out_row];
    let mut writer = out.begin_tensor(&plan.name)?;
    let mut start = 0;
    while start < rows {
        let count = batch.min(rows - start);
        buf[..count * out_row]
            .par_chunks_mut(out_row.max(1))
            .enumerate()
            .try_for_each_init(
                || vec![0f32; row_len],
                |row_f32, (i, dst)| {
                    let row = start + i;
                    let src_row = match plan.permute_heads {
                        Some(h) => permuted_source_row(row, rows, h),
                        None => row,
                    };
                    let bytes = &data[src_row * row_len * elem..(src_row + 1) * row_len * elem];
                    src.dtype
                        .decode(bytes, row_f32)
                        .ok_or_else(|| ConvertError::Dtype {
                            tensor: plan.source.clone(),
                            dtype: src.dtype.name().into(),
                        })?;
                    check_values(plan, row_f32, src_row * row_len)?;
                    quant::quantize_row(plan.ty, row_f32, dst).map_err(qerr)
                },
            )?;
        writer.write_chunk(&buf[..count * out_row])?;
        progress.inc((count * row_len * elem) as u64);
        start += count;
    }
    writer.finish()?;
    store.release(src);
    Ok(())
}

/// NaN and infinities are refused, and so are values the output float type cannot hold.
fn check_values(plan: &PlannedTensor, row: &[f32], first: usize) -> Result<(), ConvertError> {
    for (j, &x) in row.iter().enumerate() {
        if !x.is_finite() {
            return Err(ConvertError::NonFinite {
                tensor: plan.source.clone(),
                index: first + j,
                value: x,
            });
        }
        let overflow = match plan.ty {
            GgmlType::F16 => quant::f32_to_f16(x).is_infinite().then_some("F16"),
            GgmlType::BF16 => quant::bf16_to_f32(quant::f32_to_bf16(x))
                .is_infinite()
                .then_some("BF16"),
            _ => None,
        };
        if let Some(to) = overflow {
            return Err(ConvertError::Overflow {
                tensor: plan.source.clone(),
                index: first + j,
                value: x,
                to,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_matches_numpy_reshape_swapaxes() {
        // 2 heads of 6 rows: per head, rows [0 1 2 | 3 4 5] become [0 3 1 4 2 5].
        let got: Vec<usize> = (0..12).map(|r| permuted_source_row(r, 12, 2)).collect();
        assert_eq!(got, vec![0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
    }
}
