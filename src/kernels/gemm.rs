//! The n > 1 side of [`super::matmul`] (prompt processing, image tokens): the work is cut in
//! tiles of [`ROW_TILE`] weight rows × [`TOKEN_TILE`] tokens, parallel over row tiles, so each
//! weight block is read from memory once per tile of tokens (and stays in cache across it).

use rayon::prelude::*;

use super::matmul::QuantMatrix;
use super::{GemmKernels, KernelError, Kernels, WeightLayout, repack};
use crate::GgmlType;

/// Weight rows per tile for n > 1: 64 rows of a 4096-wide Q4_K row are 147 KiB, which stay
/// in L2 while a tile of tokens streams past them.
pub const ROW_TILE: usize = 64;
/// Rows of a repacked matrix unpacked at a time for the packed tiles: one packing run of
/// theirs (64 rows), 147 KiB of a 4096-wide Q4_K (215 KiB Q6_K), which stay in L2.
const UNPACK_ROWS: usize = 64;
/// Tokens per tile for n > 1: 32 Q8_K rows of 4096 are 146 KiB.
pub const TOKEN_TILE: usize = 32;

/// `Y = X·Wᵀ` for `n > 1` rows whose activations `acts` (`n` rows of `act_row_bytes`) are
/// already converted to the weight type's activation type. The caller checked the shapes.
/// A repacked matrix takes, below [`PACKED_MIN_TOKENS`], the tier's group dots token by
/// token where it has them; else the tier's packed tile for its layout where it has one
/// (packed straight from the x8 groups), else its rows unpacked to ggml's layout 64 rows at a
/// time (a copy of its bytes, small beside the `n` dots each weight block takes part in).
pub(super) fn matmul_tiled(
    kernels: &Kernels,
    w: &QuantMatrix<'_>,
    acts: &[u8],
    act_row_bytes: usize,
    n: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    let (rows, k, row_bytes, data) = (w.rows(), w.k(), w.row_bytes(), w.data());
    if n < PACKED_MIN_TOKENS && kernels.repacked.get(w.layout()).is_some() {
        // Few tokens on a repacked matrix: the tier's group dots, token by token (each
        // token's outputs are its n = 1 matmul's). The matrix is read once per token, but
        // after the first from the L3 where it fits there, and a group dot per token cost
        // less than packing the rows for the tiles or unpacking them for ggml's (BENCHMARKS.md,
        // rv11 helper, session 11: 4096×4096 Q4_K from DRAM at n = 2, 0.57 against 2.4 ms).
        for (a, y) in acts
            .chunks_exact(act_row_bytes)
            .zip(y.chunks_exact_mut(rows))
        {
            super::decode::matmul_decode(kernels, w, a, y)?;
        }
        return Ok(());
    }
    if n >= packed_min_tokens(w.ty())
        && kernels.packed_token_major.get(w.ty()).is_some()
        && w.layout() == WeightLayout::Ggml
    {
        // Token-major tiles write Y itself: one task per thread, each all rows × a run of
        // tokens, so each task's output is a block of Y's rows. The runs are whole panels,
        // the earlier tasks rounded up; the last task also takes the tokens past the last
        // whole panel (which the tiles' narrow micro-tile serves at a fraction of a panel's
        // cost): 577 tokens in panels of 14 are 21 panels + 20 panels and 3 tokens.
        let tasks = rayon::current_num_threads().max(1);
        let panel = kernels.float_panel_tokens.max(1);
        let panels = n / panel;
        let mut parts = Vec::with_capacity(tasks);
        let (mut rest, mut first) = (y, 0);
        for i in 1..=tasks {
            let end = if i == tasks {
                n
            } else {
                (i * panels).div_ceil(tasks) * panel
            };
            let (part, tail) = std::mem::take(&mut rest).split_at_mut((end - first) * rows);
            if end > first {
                parts.push((first, part));
            }
            (rest, first) = (tail, end);
        }
        return parts.into_par_iter().try_for_each(|(first, out)| {
            let cols = out.len() / rows;
            let a = &acts[first * act_row_bytes..(first + cols) * act_row_bytes];
            kernels.gemm_tile_token_major(
                w.ty(),
                k,
                data,
                row_bytes,
                rows,
                a,
                act_row_bytes,
                cols,
                out,
                rows,
            )
        });
    }
    // Yᵀ [rows × n], cut in row tiles owned by one task each, then transposed into Y.
    let mut y_t = vec![0f32; rows * n];
    if n >= packed_min_tokens(w.ty()) && kernels.packed.get(w.ty()).is_some() {
        // Packed tiles repack their rows once per call: give each call every token.
        let chunk = packed_chunk_rows(w.ty(), rows);
        // A tile that packs straight from the repacked layout (no unpacking), where the tier
        // has one.
        let direct = match w.layout() {
            WeightLayout::Q4KX8 => kernels.packed_q4_k_x8,
            WeightLayout::Q6KX8 => kernels.packed_q6_k_x8,
            WeightLayout::Q8_0X8 => kernels.packed_q8_0_x8,
            WeightLayout::Ggml => None,
        };
        y_t.par_chunks_mut(chunk * n)
            .enumerate()
            .try_for_each(|(i, out)| {
                let first_row = i * chunk;
                let chunk_rows = out.len() / n;
                let own_rows = &data[first_row * row_bytes..(first_row + chunk_rows) * row_bytes];
                if let Some(tile) = direct {
                    tile(
                        k,
                        own_rows,
                        row_bytes,
                        chunk_rows,
                        acts,
                        act_row_bytes,
                        n,
                        out,
                        n,
                    );
                    return Ok(());
                }
                if w.layout() == WeightLayout::Ggml {
                    let w_rows = own_rows;
                    return kernels.gemm_tile(
                        w.ty(),
                        k,
                        w_rows,
                        row_bytes,
                        chunk_rows,
                        acts,
                        act_row_bytes,
                        n,
                        out,
                        n,
                    );
                }
                // Repacked: unpack UNPACK_ROWS at a time into one small buffer, which the tile
                // packs from while it is still in L2 (a whole chunk's copy went out to L3 and
                // back). Each output is its own row's and token's dot, so the results are those
                // of one call over the chunk.
                let mut unpacked = vec![0u8; UNPACK_ROWS.min(chunk_rows) * row_bytes];
                for sub_first in (0..chunk_rows).step_by(UNPACK_ROWS) {
                    let sub_rows = UNPACK_ROWS.min(chunk_rows - sub_first);
                    let w_rows = &mut unpacked[..sub_rows * row_bytes];
                    repack::unpack_rows(w, first_row + sub_first, w_rows)?;
                    kernels.gemm_tile(
                        w.ty(),
                        k,
                        w_rows,
                        row_bytes,
                        sub_rows,
                        acts,
                        act_row_bytes,
                        n,
                        &mut out[sub_first * n..],
                        n,
                    )?;
                }
                Ok(())
            })?;
        transpose_into(&y_t, rows, n, y);
        return Ok(());
    }
    // Few tokens: the per-call repacking would cost more than it saves.
    let kernels = &Kernels {
        packed: GemmKernels::NONE,
        ..*kernels
    };
    let tiles: Result<(), KernelError> =
        y_t.par_chunks_mut(ROW_TILE * n)
            .enumerate()
            .try_for_each(|(tile, out)| {
                let first_row = tile * ROW_TILE;
                let tile_rows = out.len() / n;
                let mut unpacked = Vec::new();
                let w_tile = ggml_rows(w, first_row, tile_rows, &mut unpacked)?;
                for first_token in (0..n).step_by(TOKEN_TILE) {
                    let cols = TOKEN_TILE.min(n - first_token);
                    let a_tile =
                        &acts[first_token * act_row_bytes..(first_token + cols) * act_row_bytes];
                    kernels.gemm_tile(
                        w.ty(),
                        k,
                        w_tile,
                        row_bytes,
                        tile_rows,
                        a_tile,
                        act_row_bytes,
                        cols,
                        &mut out[first_token..],
                        n,
                    )?;
                }
                Ok(())
            });
    tiles?;
    transpose_into(&y_t, rows, n, y);
    Ok(())
}

/// Rows `first..first + count` of `w` in ggml's layout: its own bytes, or (repacked) unpacked
/// into `scratch`. The run is whole groups of rows: the callers' chunks are multiples of 64.
fn ggml_rows<'a>(
    w: &QuantMatrix<'a>,
    first: usize,
    count: usize,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], KernelError> {
    let row_bytes = w.row_bytes();
    if w.layout() == WeightLayout::Ggml {
        return Ok(&w.data()[first * row_bytes..(first + count) * row_bytes]);
    }
    scratch.resize(count * row_bytes, 0);
    repack::unpack_rows(w, first, scratch)?;
    Ok(scratch)
}

/// Tokens from which the packed tiles (which repack their weight rows on every call) beat the
/// plain tiles, by instruction counts: integer types decode a 256-element block in about 150
/// instructions and then save about 0.06 per element and token; float types widen and
/// transpose about 3 per element and save about 0.14 per element and token.
/// Below it a repacked matrix takes its tier's group dots token by token (measured faster
/// than the packed tiles from its x8 groups at n = 2..6, even from DRAM; at n = 8 the tiles
/// won on 4096×11008, beyond the L3).
pub const PACKED_MIN_TOKENS: usize = 8;
/// As [`PACKED_MIN_TOKENS`] for the float weight types.
pub const PACKED_MIN_TOKENS_FLOAT: usize = 32;

fn packed_min_tokens(ty: GgmlType) -> usize {
    if is_float(ty) {
        PACKED_MIN_TOKENS_FLOAT
    } else {
        PACKED_MIN_TOKENS
    }
}

fn is_float(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F16 | GgmlType::BF16 | GgmlType::F32)
}

/// Rows per task for the packed tiles, in whole packing chunks of 64 rows: about four tasks
/// per thread (load balance) for the integer types; for the float types, whose tiles widen
/// every token's activations to f32 once per call (for k = 4096 and 577 tokens, 9.4 MB
/// written per call), about one per thread.
fn packed_chunk_rows(ty: GgmlType, rows: usize) -> usize {
    let per_thread = if is_float(ty) { 1 } else { 4 };
    let tasks = per_thread * rayon::current_num_threads();
    rows.div_ceil(tasks).next_multiple_of(64).max(64)
}

/// Writes the transpose of `src` [rows × cols] into `dst` [cols × rows]: parallel over
/// chunks of 32 `dst` rows; within one, 8 `src` rows at a time, so each `dst` row gets 8
/// consecutive values per pass and the 8 source stripes stay in L1.
fn transpose_into(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const BLOCK: usize = 32;
    const BAND: usize = 8;
    dst.par_chunks_mut(BLOCK * rows)
        .enumerate()
        .for_each(|(cb, out)| {
            let c0 = cb * BLOCK;
            let width = out.len() / rows;
            let full = rows / BAND * BAND;
            for r0 in (0..full).step_by(BAND) {
                let stripes: [&[f32]; BAND] =
                    std::array::from_fn(|i| &src[(r0 + i) * cols + c0..][..width]);
                for (dc, row) in out.chunks_exact_mut(rows).enumerate() {
                    let o: &mut [f32; BAND] = (&mut row[r0..r0 + BAND])
                        .try_into()
                        .expect("a band of BAND values");
                    for (v, stripe) in o.iter_mut().zip(&stripes) {
                        *v = stripe[dc];
                    }
                }
            }
            for r in full..rows {
                let stripe = &src[r * cols + c0..][..width];
                for (row, &v) in out.chunks_exact_mut(rows).zip(stripe) {
                    row[r] = v;
                }
            }
        });
}
