//! **Q8_0×8** ([`super::WeightLayout::Q8_0X8`]): a Q8_0 matrix cut in groups of 8 consecutive
//! rows, each group a run of x8 blocks of [`Q8_0_X8_BLOCK_BYTES`] (8 × 34) holding block `b`
//! (32 elements) of the 8 rows:
//!
//! | bytes    | content |
//! |----------|---------|
//! | 0..16    | `d` of rows 0..8, f16: bytes 2r..2r+2 = row r's ggml bytes 0..2 |
//! | 16..272  | the quants in 8 pieces of 32 bytes: byte 16 + 32p + 4r + t = row r's quant 4p + t |
//!
//! One 32-byte load is then the same 4 quants of all 8 rows (row r in i32 lane r), dotted
//! with 4 activations broadcast: 8 dots per pass with no horizontal sums, where ggml's layout
//! reduces every block of every row across its lanes. The quants keep their bytes, so a group
//! takes exactly its 8 rows' bytes and a matrix is repacked in place.

use super::scalar;

/// Bytes of one Q8_0×8 block: block `b` of 8 rows (8 × 34).
pub const Q8_0_X8_BLOCK_BYTES: usize = 8 * Q8_0_BLOCK_BYTES;
pub(super) const Q8_0_BLOCK_BYTES: usize = 34;
/// Elements of a Q8_0 block.
pub(super) const QK8_0: usize = 32;
/// Where the quant pieces start in an x8 block.
const PIECES_AT: usize = 16;

/// Calls `copy(row_at, x8_at, len)` for every run of bytes of row `r`'s block that stays
/// contiguous in its x8 block (the table above): `d` (2 bytes), then 8 pieces of 4 quants.
#[inline(always)]
fn for_each_run(r: usize, mut copy: impl FnMut(usize, usize, usize)) {
    copy(0, 2 * r, 2);
    for piece in 0..8 {
        copy(2 + 4 * piece, PIECES_AT + 32 * piece + 4 * r, 4);
    }
}

/// 8 ggml rows of `k` Q8_0 elements (`rows`, back to back) into one Q8_0×8 group (`group`).
pub(super) fn repack_group(k: usize, rows: &[u8], group: &mut [u8]) {
    let row_bytes = k / QK8_0 * Q8_0_BLOCK_BYTES;
    for (b, x8) in group.chunks_exact_mut(Q8_0_X8_BLOCK_BYTES).enumerate() {
        let x8: &mut [u8; Q8_0_X8_BLOCK_BYTES] = x8.try_into().expect("whole x8 block");
        for r in 0..8 {
            let at = r * row_bytes + b * Q8_0_BLOCK_BYTES;
            let block: &[u8; Q8_0_BLOCK_BYTES] = rows[at..at + Q8_0_BLOCK_BYTES]
                .try_into()
                .expect("whole block");
            for_each_run(r, |row_at, x8_at, len| {
                x8[x8_at..x8_at + len].copy_from_slice(&block[row_at..row_at + len]);
            });
        }
    }
}

/// One Q8_0×8 group (`group`) back into its 8 ggml rows of `k` elements (`rows`).
pub(super) fn unpack_group(k: usize, group: &[u8], rows: &mut [u8]) {
    let row_bytes = k / QK8_0 * Q8_0_BLOCK_BYTES;
    for (b, x8) in group.chunks_exact(Q8_0_X8_BLOCK_BYTES).enumerate() {
        let x8: &[u8; Q8_0_X8_BLOCK_BYTES] = x8.try_into().expect("whole x8 block");
        for r in 0..8 {
            let at = r * row_bytes + b * Q8_0_BLOCK_BYTES;
            let block: &mut [u8; Q8_0_BLOCK_BYTES] = (&mut rows[at..at + Q8_0_BLOCK_BYTES])
                .try_into()
                .expect("whole block");
            for_each_run(r, |row_at, x8_at, len| {
                block[row_at..row_at + len].copy_from_slice(&x8[x8_at..x8_at + len]);
            });
        }
    }
}

/// The reference Q8_0×8 group dot ([`super::super::GroupDotFn`]) on the Q8_0 activation row
/// as it is: each group unpacked, then each row dotted by [`scalar::dot_q8_0`], so equal to it
/// bit for bit.
pub fn dot_q8_0_x8_portable(k: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let row_bytes = k / QK8_0 * Q8_0_BLOCK_BYTES;
    super::unpacked_group_dots(k, row_bytes, unpack_group, scalar::dot_q8_0, w, a, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GgmlType;
    use crate::kernels::KernelError;
    use crate::kernels::repack::tests::{assert_round_trip, matrix, quantized};
    use crate::kernels::repack::{WeightLayout, preferred_layout, repack_in_place};

    const LAYOUT: WeightLayout = WeightLayout::Q8_0X8;

    fn q8_0_matrix(rows: usize, k: usize, seed: u32) -> Vec<u8> {
        matrix(GgmlType::Q8_0, rows, k, seed)
    }

    /// Every byte of a block is copied once, to a distinct place of its x8 block.
    #[test]
    fn runs_cover_every_byte_once() {
        let mut seen = [false; Q8_0_X8_BLOCK_BYTES];
        for r in 0..8 {
            let mut covered = [0u8; Q8_0_BLOCK_BYTES];
            for_each_run(r, |row_at, x8_at, len| {
                for t in 0..len {
                    covered[row_at + t] += 1;
                    assert!(!seen[x8_at + t], "row {r} byte {row_at}+{t} lands twice");
                    seen[x8_at + t] = true;
                }
            });
            assert!(covered.iter().all(|&c| c == 1), "row {r}: {covered:?}");
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn repacking_then_unpacking_gives_the_rows_back() {
        // k = 32 and 96: one and three blocks, not whole 256-element super-blocks.
        assert_round_trip(GgmlType::Q8_0, LAYOUT, &[(8, 32), (16, 96), (24, 4128)]);
    }

    /// Blocks 0 and 2's bytes, by the table in the module docs.
    #[test]
    fn each_field_goes_where_the_table_says() {
        let (rows, k) = (8, 96);
        let ggml = q8_0_matrix(rows, k, 3);
        let mut packed = ggml.clone();
        repack_in_place(GgmlType::Q8_0, LAYOUT, rows, k, &mut packed).unwrap();
        let row = |r: usize, b: usize| &ggml[r * 102 + b * 34..][..34];
        for b in [0, 2] {
            let x8 = &packed[b * 272..][..272];
            for r in 0..8 {
                assert_eq!(x8[2 * r..2 * r + 2], row(r, b)[0..2]);
                for e in 0..32 {
                    let (p, t) = (e / 4, e % 4);
                    assert_eq!(x8[16 + 32 * p + 4 * r + t], row(r, b)[2 + e], "{b} {r} {e}");
                }
            }
        }
    }

    #[test]
    fn the_layout_refuses_what_it_cannot_hold() {
        let mut data = q8_0_matrix(12, 64, 1);
        let err = repack_in_place(GgmlType::Q8_0, LAYOUT, 12, 64, &mut data);
        assert!(
            matches!(err, Err(KernelError::LayoutRows { rows: 12, .. })),
            "{err:?}"
        );
        let mut q4 = vec![0u8; 8 * 144];
        let err = repack_in_place(GgmlType::Q4_K, LAYOUT, 8, 256, &mut q4);
        assert!(
            matches!(err, Err(KernelError::LayoutType { .. })),
            "{err:?}"
        );
        let mut short = vec![0u8; 8 * 34 - 1];
        let err = repack_in_place(GgmlType::Q8_0, LAYOUT, 8, 32, &mut short);
        assert!(matches!(err, Err(KernelError::Shape { .. })), "{err:?}");
        let scalar = &scalar::KERNELS;
        assert_eq!(
            preferred_layout(scalar, GgmlType::Q8_0, 8, 32),
            WeightLayout::Ggml
        );
    }

    /// The portable group dot is the scalar row dot of each unpacked row.
    #[test]
    fn portable_group_dot_equals_the_scalar_row_dots() {
        for (rows, k) in [(24, 32), (16, 96), (8, 4128)] {
            let ggml = q8_0_matrix(rows, k, 11);
            let x: Vec<f32> = (0..k)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let acts = quantized(GgmlType::Q8_0, &x);
            let mut packed = ggml.clone();
            repack_in_place(GgmlType::Q8_0, LAYOUT, rows, k, &mut packed).unwrap();
            let mut out = vec![0f32; rows];
            dot_q8_0_x8_portable(k, &packed, &acts, &mut out);
            let row_bytes = k / QK8_0 * Q8_0_BLOCK_BYTES;
            for (r, &v) in out.iter().enumerate() {
                let expected =
                    scalar::dot_q8_0(k, &ggml[r * row_bytes..(r + 1) * row_bytes], &acts);
                assert_eq!(v.to_bits(), expected.to_bits(), "{rows}×{k} row {r}");
            }
        }
    }
}
