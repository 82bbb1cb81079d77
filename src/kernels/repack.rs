//! Weight layouts other than ggml's, made once at load so that n = 1 (decoding) dots run
//! faster than they can on ggml's bytes.
//!
//! **Q4_K×8** ([`WeightLayout::Q4KX8`]): a Q4_K matrix cut in groups of 8 consecutive rows,
//! each group a run of "x8 blocks" of [`Q4K_X8_BLOCK_BYTES`] holding block `b` of all 8 rows:
//! their `d`s, their `dmin`s, their 12 packed scale bytes transposed (byte `i` of the 8 rows
//! side by side) and their nibbles in 4-byte pieces interleaved over the rows. One 32-byte load
//! then covers the same 4 bytes of 8 rows, the 6-bit scales of 8 rows unpack in a few byte-wise
//! vector ops, and 8 dots come out of one pass without horizontal sums: ggml's layout spends
//! about half of an AVX2 dot unpacking one row's scales. A group takes exactly the bytes its
//! 8 rows took, so a matrix is repacked in place. Byte table: docs/kernels.md.
//!
//! **Q6_K×8** ([`WeightLayout::Q6KX8`]): likewise 8 rows per block, the quant bits regrouped
//! so that 4 quant registers of 8 rows take 11 vector operations ([`q6_k`]).
//!
//! **Q8_0×8** ([`WeightLayout::Q8_0X8`]): likewise 8 rows per 32-element block, their 8 `d`s
//! then their quants in 4-byte pieces interleaved over the rows ([`q8_0`]).
//!
//! The portable group dot here is the reference: per row, bit for bit the scalar
//! [`scalar::dot_q4_k`] (Q6_K×8: [`scalar::dot_q6_k`], Q8_0×8: [`scalar::dot_q8_0`]) of the
//! unpacked row. Tiers put their
//! own in [`super::RepackedKernels`].

mod q6_k;
mod q8_0;

use rayon::prelude::*;

use super::matmul::QuantMatrix;
use super::{DECODE_CHUNK_BYTES, GroupDot, KernelError, Kernels, bytes_of, scalar};
use crate::GgmlType;
use crate::dtype::QK_K;

/// How a weight matrix's bytes are arranged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WeightLayout {
    /// As stored in GGUF: row after row of the type's blocks.
    #[default]
    Ggml,
    /// Q4_K, 8 rows interleaved per block ([the module docs](self)).
    Q4KX8,
    /// Q6_K, 8 rows interleaved per block, quant bits regrouped ([`q6_k`]).
    Q6KX8,
    /// Q8_0, 8 rows interleaved per block ([`q8_0`]).
    Q8_0X8,
}

impl WeightLayout {
    pub fn name(self) -> &'static str {
        match self {
            WeightLayout::Ggml => "ggml",
            WeightLayout::Q4KX8 => "Q4_K×8",
            WeightLayout::Q6KX8 => "Q6_K×8",
            WeightLayout::Q8_0X8 => "Q8_0×8",
        }
    }

    /// Rows interleaved per group (1: none).
    pub fn group_rows(self) -> usize {
        match self {
            WeightLayout::Ggml => 1,
            WeightLayout::Q4KX8 | WeightLayout::Q6KX8 | WeightLayout::Q8_0X8 => 8,
        }
    }

    /// The weight type the layout holds (`None`: any).
    fn weight_type(self) -> Option<GgmlType> {
        match self {
            WeightLayout::Ggml => None,
            WeightLayout::Q4KX8 => Some(GgmlType::Q4_K),
            WeightLayout::Q6KX8 => Some(GgmlType::Q6_K),
            WeightLayout::Q8_0X8 => Some(GgmlType::Q8_0),
        }
    }

    /// Whether a `ty` matrix of `rows` rows can take this layout (`k` is checked by the
    /// type's block size).
    pub fn check(self, ty: GgmlType, rows: usize) -> Result<(), KernelError> {
        if let Some(wanted) = self.weight_type()
            && wanted != ty
        {
            return Err(KernelError::LayoutType { layout: self, ty });
        }
        if !rows.is_multiple_of(self.group_rows()) {
            return Err(KernelError::LayoutRows {
                layout: self,
                group: self.group_rows(),
                rows,
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for WeightLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes of one Q4_K×8 block: block `b` of 8 rows (8 × 144).
pub const Q4K_X8_BLOCK_BYTES: usize = 8 * Q4K_BLOCK_BYTES;
const Q4K_BLOCK_BYTES: usize = 144;
pub use q6_k::{Q6K_X8_BLOCK_BYTES, dot_q6_k_x8_portable};
pub use q8_0::{Q8_0_X8_BLOCK_BYTES, dot_q8_0_x8_portable};

/// The layout a `ty` matrix of `rows × k` should be repacked to for the `kernels`' tier: a
/// repacked one where the tier has a fast dot for it and the shape allows, else ggml's.
pub fn preferred_layout(kernels: &Kernels, ty: GgmlType, rows: usize, k: usize) -> WeightLayout {
    let shape =
        |block: usize| rows > 0 && rows.is_multiple_of(8) && k > 0 && k.is_multiple_of(block);
    let repacked = &kernels.repacked;
    match ty {
        GgmlType::Q4_K if shape(QK_K) && repacked.q4_k_x8.is_some() => WeightLayout::Q4KX8,
        GgmlType::Q6_K if shape(QK_K) && repacked.q6_k_x8.is_some() => WeightLayout::Q6KX8,
        GgmlType::Q8_0 if shape(q8_0::QK8_0) && repacked.q8_0_x8.is_some() => WeightLayout::Q8_0X8,
        _ => WeightLayout::Ggml,
    }
}

/// Rearranges `data`, a `ty` matrix of `rows × k` in ggml's layout, into `layout`, in
/// parallel over groups of rows. Errors (leaving `data` as it was) if the layout cannot hold
/// the matrix or `data` is not exactly its bytes.
pub fn repack_in_place(
    ty: GgmlType,
    layout: WeightLayout,
    rows: usize,
    k: usize,
    data: &mut [u8],
) -> Result<(), KernelError> {
    let group_bytes = group_bytes(ty, layout, rows, k, data.len())?;
    match layout {
        WeightLayout::Ggml => {}
        WeightLayout::Q4KX8 => data.par_chunks_mut(group_bytes).for_each_init(
            Vec::new,
            |rows_copy: &mut Vec<u8>, group| {
                rows_copy.clear();
                rows_copy.extend_from_slice(group);
                repack_group_q4_k(k, rows_copy, group);
            },
        ),
        WeightLayout::Q6KX8 => data.par_chunks_mut(group_bytes).for_each_init(
            Vec::new,
            |rows_copy: &mut Vec<u8>, group| {
                rows_copy.clear();
                rows_copy.extend_from_slice(group);
                q6_k::repack_group(k, rows_copy, group);
            },
        ),
        WeightLayout::Q8_0X8 => data.par_chunks_mut(group_bytes).for_each_init(
            Vec::new,
            |rows_copy: &mut Vec<u8>, group| {
                rows_copy.clear();
                rows_copy.extend_from_slice(group);
                q8_0::repack_group(k, rows_copy, group);
            },
        ),
    }
    Ok(())
}

/// Writes rows `first_row..first_row + out.len() / row_bytes` of `w` into `out` in ggml's
/// layout (a copy for a ggml matrix). The run must start and end on whole groups.
pub fn unpack_rows(
    w: &QuantMatrix<'_>,
    first_row: usize,
    out: &mut [u8],
) -> Result<(), KernelError> {
    let (layout, row_bytes) = (w.layout(), w.row_bytes());
    let group = layout.group_rows();
    let count = out.len() / row_bytes.max(1);
    let whole = out.len() == count * row_bytes
        && first_row.is_multiple_of(group)
        && count.is_multiple_of(group)
        && first_row + count <= w.rows();
    if !whole {
        return Err(KernelError::Shape {
            what: "unpacked rows (whole groups of the matrix, as bytes)",
            expected: count.next_multiple_of(group) * row_bytes,
            actual: out.len(),
        });
    }
    let src = &w.data()[first_row * row_bytes..(first_row + count) * row_bytes];
    match layout {
        WeightLayout::Ggml => out.copy_from_slice(src),
        WeightLayout::Q4KX8 | WeightLayout::Q6KX8 | WeightLayout::Q8_0X8 => {
            let unpack = match layout {
                WeightLayout::Q4KX8 => unpack_group_q4_k,
                WeightLayout::Q6KX8 => q6_k::unpack_group,
                _ => q8_0::unpack_group,
            };
            let group_bytes = group * row_bytes;
            for (from, to) in src
                .chunks_exact(group_bytes)
                .zip(out.chunks_exact_mut(group_bytes))
            {
                unpack(w.k(), from, to);
            }
        }
    }
    Ok(())
}

/// The bytes of one group of `layout` for a `ty` matrix of `rows × k` stored in `len` bytes.
fn group_bytes(
    ty: GgmlType,
    layout: WeightLayout,
    rows: usize,
    k: usize,
    len: usize,
) -> Result<usize, KernelError> {
    layout.check(ty, rows)?;
    let row_bytes = bytes_of(ty, k)?;
    let expected = row_bytes.checked_mul(rows).ok_or(KernelError::Shape {
        what: "weight matrix bytes (overflow)",
        expected: usize::MAX,
        actual: len,
    })?;
    if len != expected {
        return Err(KernelError::Shape {
            what: "weight matrix bytes",
            expected,
            actual: len,
        });
    }
    Ok((row_bytes * layout.group_rows()).max(1))
}

/// Where byte `at` of block `b` of row `r` (ggml's Q4_K block: d, dmin, 12 scale bytes, 128
/// nibble bytes) goes in the x8 block holding it.
#[cfg(test)]
fn q4_k_x8_offset(r: usize, at: usize) -> usize {
    match at {
        0..2 => 2 * r + at,
        2..4 => 16 + 2 * r + (at - 2),
        4..16 => 32 + 8 * (at - 4) + r,
        _ => {
            let q = at - 16;
            let (j, g, t) = (q / 32, (q % 32) / 4, q % 4);
            128 + 256 * j + 32 * g + 4 * r + t
        }
    }
}

/// 8 ggml rows of `k` Q4_K elements (`rows`, back to back) into one Q4_K×8 group (`group`).
fn repack_group_q4_k(k: usize, rows: &[u8], group: &mut [u8]) {
    let row_bytes = k / QK_K * Q4K_BLOCK_BYTES;
    for (b, x8) in group.chunks_exact_mut(Q4K_X8_BLOCK_BYTES).enumerate() {
        let x8: &mut [u8; Q4K_X8_BLOCK_BYTES] = x8.try_into().expect("whole x8 block");
        for r in 0..8 {
            let at = r * row_bytes + b * Q4K_BLOCK_BYTES;
            let block: &[u8; Q4K_BLOCK_BYTES] = rows[at..at + Q4K_BLOCK_BYTES]
                .try_into()
                .expect("whole block");
            for_each_q4_k_x8_run(r, |row_at, x8_at, len| {
                x8[x8_at..x8_at + len].copy_from_slice(&block[row_at..row_at + len]);
            });
        }
    }
}

/// One Q4_K×8 group (`group`) back into its 8 ggml rows of `k` elements (`rows`).
fn unpack_group_q4_k(k: usize, group: &[u8], rows: &mut [u8]) {
    let row_bytes = k / QK_K * Q4K_BLOCK_BYTES;
    for (b, x8) in group.chunks_exact(Q4K_X8_BLOCK_BYTES).enumerate() {
        let x8: &[u8; Q4K_X8_BLOCK_BYTES] = x8.try_into().expect("whole x8 block");
        for r in 0..8 {
            let at = r * row_bytes + b * Q4K_BLOCK_BYTES;
            let block: &mut [u8; Q4K_BLOCK_BYTES] = (&mut rows[at..at + Q4K_BLOCK_BYTES])
                .try_into()
                .expect("whole block");
            for_each_q4_k_x8_run(r, |row_at, x8_at, len| {
                block[row_at..row_at + len].copy_from_slice(&x8[x8_at..x8_at + len]);
            });
        }
    }
}

/// Calls `copy(row_at, x8_at, len)` for every run of bytes of row `r`'s block that stays
/// contiguous in its x8 block, as [`q4_k_x8_offset`] places them: `d` and `dmin` (2 bytes
/// each), the scale bytes (1 each) and the nibbles (4-byte pieces). Copies of runs within
/// fixed-size blocks, not a byte-by-byte loop: n > 1 matmuls unpack every chunk of a repacked
/// matrix, and that loop ran at 1.1 GB/s.
#[inline(always)]
fn for_each_q4_k_x8_run(r: usize, mut copy: impl FnMut(usize, usize, usize)) {
    copy(0, 2 * r, 2);
    copy(2, 16 + 2 * r, 2);
    for i in 0..12 {
        copy(4 + i, 32 + 8 * i + r, 1);
    }
    for piece in 0..32 {
        copy(16 + 4 * piece, 128 + 32 * piece + 4 * r, 4);
    }
}

/// The portable Q4_K×8 group dot: its activation row is the Q8_K row as it is.
pub const PORTABLE_Q4K_X8: GroupDot = GroupDot {
    prepared_bytes: q8_k_bytes,
    prepare: copy_acts,
    dot: dot_q4_k_x8_portable,
    task_bytes: DECODE_CHUNK_BYTES,
};

fn q8_k_bytes(k: usize) -> usize {
    k / QK_K * 292
}

fn copy_acts(k: usize, acts: &[u8], out: &mut [u8]) {
    out.copy_from_slice(&acts[..q8_k_bytes(k)]);
}

/// The reference Q4_K×8 group dot ([`super::GroupDotFn`]): each group unpacked, then each row
/// dotted by [`scalar::dot_q4_k`], so equal to it bit for bit.
pub fn dot_q4_k_x8_portable(k: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let row_bytes = k / QK_K * Q4K_BLOCK_BYTES;
    unpacked_group_dots(k, row_bytes, unpack_group_q4_k, scalar::dot_q4_k, w, a, out);
}

/// The portable group dots' one loop: each group of 8 rows of `row_bytes` in `w` unpacked to
/// ggml's layout by `unpack`, then each row dotted with `a` by the scalar `dot`, into `out`
/// (8 per group), so every row's result is `dot`'s bit for bit.
fn unpacked_group_dots(
    k: usize,
    row_bytes: usize,
    unpack: fn(k: usize, group: &[u8], rows: &mut [u8]),
    dot: super::VecDotFn,
    w: &[u8],
    a: &[u8],
    out: &mut [f32],
) {
    assert!(
        out.len().is_multiple_of(8),
        "group dot outputs: {}",
        out.len()
    );
    let mut rows = vec![0u8; 8 * row_bytes];
    for (group, out) in w.chunks_exact(8 * row_bytes).zip(out.chunks_exact_mut(8)) {
        unpack(k, group, &mut rows);
        for (row, v) in rows.chunks_exact(row_bytes).zip(out.iter_mut()) {
            *v = dot(k, row, a);
        }
    }
}

/// The portable Q6_K×8 group dot: its activation row is the Q8_K row as it is.
pub const PORTABLE_Q6K_X8: GroupDot = GroupDot {
    prepared_bytes: q8_k_bytes,
    prepare: copy_acts,
    dot: dot_q6_k_x8_portable,
    task_bytes: DECODE_CHUNK_BYTES,
};

/// The portable Q8_0×8 group dot: its activation row is the Q8_0 row as it is.
pub const PORTABLE_Q8_0_X8: GroupDot = GroupDot {
    prepared_bytes: q8_0_bytes,
    prepare: copy_q8_0_acts,
    dot: dot_q8_0_x8_portable,
    task_bytes: DECODE_CHUNK_BYTES,
};

fn q8_0_bytes(k: usize) -> usize {
    k / q8_0::QK8_0 * q8_0::Q8_0_BLOCK_BYTES
}

fn copy_q8_0_acts(k: usize, acts: &[u8], out: &mut [u8]) {
    out.copy_from_slice(&acts[..q8_0_bytes(k)]);
}

/// The group dot n = 1 runs on a `layout` matrix: the tier's, else the portable one (`None`
/// for ggml's layout, which takes the row dots).
pub(super) fn group_dot(kernels: &Kernels, layout: WeightLayout) -> Option<GroupDot> {
    match layout {
        WeightLayout::Ggml => None,
        WeightLayout::Q4KX8 => Some(kernels.repacked.q4_k_x8.unwrap_or(PORTABLE_Q4K_X8)),
        WeightLayout::Q6KX8 => Some(kernels.repacked.q6_k_x8.unwrap_or(PORTABLE_Q6K_X8)),
        WeightLayout::Q8_0X8 => Some(kernels.repacked.q8_0_x8.unwrap_or(PORTABLE_Q8_0_X8)),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::kernels::scalar;
    use crate::quant::{quantize_row, row_bytes};

    /// `x` quantized to `ty` (whole blocks), in ggml's layout.
    pub(in crate::kernels) fn quantized(ty: GgmlType, x: &[f32]) -> Vec<u8> {
        let mut out = vec![0u8; row_bytes(ty, x.len()).unwrap()];
        quantize_row(ty, x, &mut out).unwrap();
        out
    }

    /// A `rows × k` matrix of `ty` from hashed values in [-0.5, 0.5), in ggml's layout.
    pub(in crate::kernels) fn matrix(ty: GgmlType, rows: usize, k: usize, seed: u32) -> Vec<u8> {
        let x: Vec<f32> = (0..rows * k)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761) ^ seed;
                h as f32 / u32::MAX as f32 - 0.5
            })
            .collect();
        quantized(ty, &x)
    }

    fn q4_k_matrix(rows: usize, k: usize, seed: u32) -> Vec<u8> {
        matrix(GgmlType::Q4_K, rows, k, seed)
    }

    /// The runs the repacking copies put every byte of a block where the byte table says.
    #[test]
    fn q4_k_x8_runs_follow_the_byte_offsets() {
        for r in 0..8 {
            let mut covered = [0u8; Q4K_BLOCK_BYTES];
            for_each_q4_k_x8_run(r, |row_at, x8_at, len| {
                for t in 0..len {
                    assert_eq!(
                        q4_k_x8_offset(r, row_at + t),
                        x8_at + t,
                        "row {r} byte {row_at}+{t}"
                    );
                    covered[row_at + t] += 1;
                }
            });
            assert!(covered.iter().all(|&c| c == 1), "row {r}: {covered:?}");
        }
    }

    /// Every byte of a block lands in a distinct place of its x8 block.
    #[test]
    fn q4_k_x8_offsets_are_a_permutation() {
        let mut seen = vec![false; Q4K_X8_BLOCK_BYTES];
        for r in 0..8 {
            for at in 0..Q4K_BLOCK_BYTES {
                let to = q4_k_x8_offset(r, at);
                assert!(!seen[to], "row {r} byte {at} lands on {to} twice");
                seen[to] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn repacking_then_unpacking_gives_the_rows_back() {
        assert_round_trip(
            GgmlType::Q4_K,
            WeightLayout::Q4KX8,
            &[(8, 256), (16, 512), (24, 768)],
        );
    }

    /// A `ty` matrix of each `(rows, k)` repacked to `layout` changes, and unpacks to its ggml
    /// bytes: whole, and its last group alone.
    pub(in crate::kernels) fn assert_round_trip(
        ty: GgmlType,
        layout: WeightLayout,
        shapes: &[(usize, usize)],
    ) {
        for &(rows, k) in shapes {
            let ggml = matrix(ty, rows, k, 7);
            let mut packed = ggml.clone();
            repack_in_place(ty, layout, rows, k, &mut packed).unwrap();
            assert_ne!(packed, ggml);
            let w = QuantMatrix::with_layout(ty, rows, k, layout, &packed).unwrap();
            let mut back = vec![0u8; ggml.len()];
            unpack_rows(&w, 0, &mut back).unwrap();
            assert_eq!(back, ggml, "{layout} {rows}×{k}");
            let row_bytes = w.row_bytes();
            let mut part = vec![0u8; 8 * row_bytes];
            unpack_rows(&w, rows - 8, &mut part).unwrap();
            assert_eq!(
                part,
                ggml[(rows - 8) * row_bytes..],
                "{layout} {rows}×{k}: last group"
            );
        }
    }

    /// Block 0's first bytes, by the byte table of docs/kernels.md.
    #[test]
    fn q4_k_x8_puts_each_field_where_the_table_says() {
        let (rows, k) = (8, 512);
        let ggml = q4_k_matrix(rows, k, 3);
        let mut packed = ggml.clone();
        repack_in_place(GgmlType::Q4_K, WeightLayout::Q4KX8, rows, k, &mut packed).unwrap();
        let row = |r: usize, b: usize| &ggml[r * 288 + b * 144..][..144];
        for b in 0..2 {
            let x8 = &packed[b * 1152..][..1152];
            for r in 0..8 {
                assert_eq!(x8[2 * r..2 * r + 2], row(r, b)[0..2]);
                assert_eq!(x8[16 + 2 * r..18 + 2 * r], row(r, b)[2..4]);
                for i in 0..12 {
                    assert_eq!(x8[32 + 8 * i + r], row(r, b)[4 + i]);
                }
                assert_eq!(x8[128 + 4 * r..132 + 4 * r], row(r, b)[16..20]);
                assert_eq!(
                    x8[128 + 256 * 3 + 32 * 7 + 4 * r + 3],
                    row(r, b)[16 + 96 + 28 + 3]
                );
            }
        }
    }

    #[test]
    fn layouts_refuse_what_they_cannot_hold() {
        let mut data = q4_k_matrix(12, 256, 1);
        let err = repack_in_place(GgmlType::Q4_K, WeightLayout::Q4KX8, 12, 256, &mut data);
        assert!(
            matches!(err, Err(KernelError::LayoutRows { rows: 12, .. })),
            "{err:?}"
        );
        let mut q8 = vec![0u8; 8 * 34 * 8];
        let err = repack_in_place(GgmlType::Q8_0, WeightLayout::Q4KX8, 8, 256, &mut q8);
        assert!(
            matches!(err, Err(KernelError::LayoutType { .. })),
            "{err:?}"
        );
        let mut short = vec![0u8; 8 * 144 - 1];
        let err = repack_in_place(GgmlType::Q4_K, WeightLayout::Q4KX8, 8, 256, &mut short);
        assert!(matches!(err, Err(KernelError::Shape { .. })), "{err:?}");
        let scalar = &scalar::KERNELS;
        assert_eq!(
            preferred_layout(scalar, GgmlType::Q4_K, 8, 256),
            WeightLayout::Ggml
        );
    }

    /// The portable group dot is the scalar row dot of each unpacked row.
    #[test]
    fn portable_group_dot_equals_the_scalar_row_dots() {
        let (rows, k) = (16, 768);
        let ggml = q4_k_matrix(rows, k, 11);
        let x: Vec<f32> = (0..k)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let acts = quantized(GgmlType::Q8_K, &x);
        let mut packed = ggml.clone();
        repack_in_place(GgmlType::Q4_K, WeightLayout::Q4KX8, rows, k, &mut packed).unwrap();
        let mut out = vec![0f32; rows];
        dot_q4_k_x8_portable(k, &packed, &acts, &mut out);
        for (r, &v) in out.iter().enumerate() {
            let expected = scalar::dot_q4_k(k, &ggml[r * 432..(r + 1) * 432], &acts);
            assert_eq!(v.to_bits(), expected.to_bits(), "row {r}");
        }
    }
}
