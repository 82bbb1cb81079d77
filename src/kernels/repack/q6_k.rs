//! **Q6_K×8** ([`super::WeightLayout::Q6KX8`]): a Q6_K matrix cut in groups of 8 consecutive rows,
//! each group a run of x8 blocks of [`Q6K_X8_BLOCK_BYTES`] (8 × 210) holding block `b` of the
//! 8 rows:
//!
//! | bytes      | content |
//! |------------|---------|
//! | 0..16      | `d` of rows 0..8, f16: bytes 2r..2r+2 = row r's ggml bytes 208..210 |
//! | 16..144    | the 16 i8 scales, transposed: byte 16 + 8s + r = row r's `scales[s]` |
//! | 144..1680  | 16 pieces of 96 bytes, piece (h, g) at 144 + 96·(8h + g), h in 0..2, g in 0..8 |
//!
//! A piece is three 32-byte runs `A0`, `A1`, `B`; byte 4r + t of each belongs to row r and
//! the four elements e_k = 128h + 32k + 4g + t (k in 0..4), whose 6-bit levels q_k (0..64,
//! the quant plus 32) it holds as: `A0 = q_0 | (q_2 >> 4) << 6`, `A1 = q_1 | (q_3 >> 4) << 6`,
//! `B = (q_2 & 15) | (q_3 & 15) << 4`. One piece is 4 elements of 4 sub-blocks of 8 rows, and
//! its four quant registers take 11 vector operations (q_0 = A0 & 63, q_1 = A1 & 63, q_2 and
//! q_3 from `B`'s nibbles and the top bits of `A0`/`A1`) where ggml's `ql`/`qh` take 17.
//! Every bit of a row's 192 quant bytes is stored once, so a group takes exactly its 8 rows'
//! bytes and a matrix is repacked in place; the pieces are in the order the dots read them.

use super::{QK_K, scalar};

/// Bytes of one Q6_K×8 block: block `b` of 8 rows (8 × 210).
pub const Q6K_X8_BLOCK_BYTES: usize = 8 * Q6K_BLOCK_BYTES;
pub(super) const Q6K_BLOCK_BYTES: usize = 210;
/// Offsets in an x8 block (the table above).
const SCALES_AT: usize = 16;
const PIECES_AT: usize = 144;
const PIECE_BYTES: usize = 96;
/// Offsets in a ggml Q6_K block.
const QH_AT: usize = 128;
const GGML_SCALES_AT: usize = 192;
const GGML_D_AT: usize = 208;

/// A ggml block's quant bytes for elements 128h + 4g.. + 4 of its four 32-element runs k, as
/// little-endian u32 (a byte per element t): `ql` of runs 0 and 2 (`ql0`: low nibbles run 0,
/// high run 2), of runs 1 and 3 (`ql1`), and their `qh` (2 bits per run, run k at bit 2k).
#[derive(Clone, Copy)]
struct GgmlQuants {
    ql0: u32,
    ql1: u32,
    qh: u32,
}

/// The same elements' piece bytes, `A0`, `A1` and `B` (module docs), as little-endian u32.
#[derive(Clone, Copy)]
struct Piece {
    a0: u32,
    a1: u32,
    b: u32,
}

/// Byte-wise masks: every operation below stays within its byte (SWAR on 4 elements).
const LOW4: u32 = 0x0f0f_0f0f;
const HIGH4: u32 = 0xf0f0_f0f0;
const LOW2: u32 = 0x0303_0303;

impl GgmlQuants {
    fn at(block: &[u8], h: usize, g: usize) -> GgmlQuants {
        GgmlQuants {
            ql0: word(block, 64 * h + 4 * g),
            ql1: word(block, 64 * h + 32 + 4 * g),
            qh: word(block, QH_AT + 32 * h + 4 * g),
        }
    }

    fn put(self, block: &mut [u8], h: usize, g: usize) {
        for (at, word) in [
            (64 * h + 4 * g, self.ql0),
            (64 * h + 32 + 4 * g, self.ql1),
            (QH_AT + 32 * h + 4 * g, self.qh),
        ] {
            put_word(block, at, word);
        }
    }

    /// q_k = low nibble | (qh bits 2k..2k+2) << 4; `A0` keeps q_2's top bits, `A1` q_3's.
    fn to_piece(self) -> Piece {
        let hi = |k: u32| (self.qh >> (2 * k)) & LOW2;
        Piece {
            a0: (self.ql0 & LOW4) | hi(0) << 4 | hi(2) << 6,
            a1: (self.ql1 & LOW4) | hi(1) << 4 | hi(3) << 6,
            b: (self.ql0 >> 4) & LOW4 | (self.ql1 & HIGH4),
        }
    }
}

impl Piece {
    fn at(x8: &[u8], at: usize) -> Piece {
        Piece {
            a0: word(x8, at),
            a1: word(x8, at + 32),
            b: word(x8, at + 64),
        }
    }

    fn put(self, x8: &mut [u8], at: usize) {
        for (run, word) in [(0, self.a0), (32, self.a1), (64, self.b)] {
            put_word(x8, at + run, word);
        }
    }

    fn to_ggml(self) -> GgmlQuants {
        let (a0, a1) = (self.a0, self.a1);
        GgmlQuants {
            ql0: (a0 & LOW4) | (self.b & LOW4) << 4,
            ql1: (a1 & LOW4) | (self.b & HIGH4),
            qh: (a0 >> 4) & LOW2
                | ((a1 >> 4) & LOW2) << 2
                | ((a0 >> 6) & LOW2) << 4
                | ((a1 >> 6) & LOW2) << 6,
        }
    }
}

/// The little-endian u32 at `at` (a multiple of 4: every word here is) of `bytes`, read as
/// one of its 4-byte chunks (one bounds check instead of four).
fn word(bytes: &[u8], at: usize) -> u32 {
    debug_assert!(at.is_multiple_of(4));
    u32::from_le_bytes(bytes.as_chunks::<4>().0[at / 4])
}

fn put_word(bytes: &mut [u8], at: usize, word: u32) {
    debug_assert!(at.is_multiple_of(4));
    bytes.as_chunks_mut::<4>().0[at / 4] = word.to_le_bytes();
}

/// Where row `r`'s 4 bytes of piece (h, g) start in an x8 block (`A0`; `A1` 32 further, `B` 64).
fn piece_at(r: usize, h: usize, g: usize) -> usize {
    PIECES_AT + PIECE_BYTES * (8 * h + g) + 4 * r
}

/// 8 ggml rows of `k` Q6_K elements (`rows`, back to back) into one Q6_K×8 group (`group`).
pub(super) fn repack_group(k: usize, rows: &[u8], group: &mut [u8]) {
    let row_bytes = k / QK_K * Q6K_BLOCK_BYTES;
    for (b, x8) in group.chunks_exact_mut(Q6K_X8_BLOCK_BYTES).enumerate() {
        for r in 0..8 {
            let block = &rows[r * row_bytes + b * Q6K_BLOCK_BYTES..][..Q6K_BLOCK_BYTES];
            for (h, g) in (0..2).flat_map(|h| (0..8).map(move |g| (h, g))) {
                GgmlQuants::at(block, h, g)
                    .to_piece()
                    .put(x8, piece_at(r, h, g));
            }
            for s in 0..16 {
                x8[SCALES_AT + 8 * s + r] = block[GGML_SCALES_AT + s];
            }
            x8[2 * r..2 * r + 2].copy_from_slice(&block[GGML_D_AT..]);
        }
    }
}

/// One Q6_K×8 group (`group`) back into its 8 ggml rows of `k` elements (`rows`).
pub(super) fn unpack_group(k: usize, group: &[u8], rows: &mut [u8]) {
    let row_bytes = k / QK_K * Q6K_BLOCK_BYTES;
    for (b, x8) in group.chunks_exact(Q6K_X8_BLOCK_BYTES).enumerate() {
        for r in 0..8 {
            let block = &mut rows[r * row_bytes + b * Q6K_BLOCK_BYTES..][..Q6K_BLOCK_BYTES];
            for (h, g) in (0..2).flat_map(|h| (0..8).map(move |g| (h, g))) {
                Piece::at(x8, piece_at(r, h, g)).to_ggml().put(block, h, g);
            }
            for s in 0..16 {
                block[GGML_SCALES_AT + s] = x8[SCALES_AT + 8 * s + r];
            }
            block[GGML_D_AT..].copy_from_slice(&x8[2 * r..2 * r + 2]);
        }
    }
}

/// The reference Q6_K×8 group dot ([`super::super::GroupDotFn`]) on the Q8_K row as it is:
/// each group unpacked, then each row dotted by [`scalar::dot_q6_k`], so equal to it bit for
/// bit.
pub fn dot_q6_k_x8_portable(k: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let row_bytes = k / QK_K * Q6K_BLOCK_BYTES;
    super::unpacked_group_dots(k, row_bytes, unpack_group, scalar::dot_q6_k, w, a, out);
}

const _: () = assert!(PIECES_AT + 16 * PIECE_BYTES == Q6K_X8_BLOCK_BYTES);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GgmlType;
    use crate::kernels::KernelError;
    use crate::kernels::repack::tests::{assert_round_trip, matrix, quantized};
    use crate::kernels::repack::{WeightLayout, repack_in_place};

    fn q6_k_matrix(rows: usize, k: usize, seed: u32) -> Vec<u8> {
        matrix(GgmlType::Q6_K, rows, k, seed)
    }

    #[test]
    fn repacking_then_unpacking_gives_the_rows_back() {
        assert_round_trip(
            GgmlType::Q6_K,
            WeightLayout::Q6KX8,
            &[(8, 256), (16, 512), (24, 768)],
        );
    }

    #[test]
    fn the_layout_refuses_what_it_cannot_hold() {
        let layout = WeightLayout::Q6KX8;
        let mut data = q6_k_matrix(12, 256, 1);
        let err = repack_in_place(GgmlType::Q6_K, layout, 12, 256, &mut data);
        assert!(
            matches!(err, Err(KernelError::LayoutRows { rows: 12, .. })),
            "{err:?}"
        );
        let mut q4 = vec![0u8; 8 * 144];
        let err = repack_in_place(GgmlType::Q4_K, layout, 8, 256, &mut q4);
        assert!(
            matches!(err, Err(KernelError::LayoutType { .. })),
            "{err:?}"
        );
    }

    /// The portable group dot is the scalar row dot of each unpacked row.
    #[test]
    fn portable_group_dot_equals_the_scalar_row_dots() {
        let (rows, k) = (24, 768);
        let ggml = q6_k_matrix(rows, k, 11);
        let x: Vec<f32> = (0..k)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let acts = quantized(GgmlType::Q8_K, &x);
        let mut packed = ggml.clone();
        repack_in_place(GgmlType::Q6_K, WeightLayout::Q6KX8, rows, k, &mut packed).unwrap();
        let mut out = vec![0f32; rows];
        dot_q6_k_x8_portable(k, &packed, &acts, &mut out);
        let row_bytes = k / QK_K * Q6K_BLOCK_BYTES;
        for (r, &v) in out.iter().enumerate() {
            let expected = scalar::dot_q6_k(k, &ggml[r * row_bytes..(r + 1) * row_bytes], &acts);
            assert_eq!(v.to_bits(), expected.to_bits(), "row {r}");
        }
    }

    /// The 256 six-bit levels (quant + 32) of a ggml Q6_K block, element by element (as
    /// `scalar::dot_q6_k` reads them): element 128h + 32k + l is a nibble of
    /// `ql[64h + 32(k % 2) + l]` (low for k < 2) and bits 2k.. of `qh[32h + l]`.
    fn levels(block: &[u8]) -> [u8; QK_K] {
        std::array::from_fn(|i| {
            let (h, k, l) = (i / 128, (i % 128) / 32, i % 32);
            let byte = block[64 * h + 32 * (k % 2) + l];
            let low = if k < 2 { byte & 0x0f } else { byte >> 4 };
            low | ((block[QH_AT + 32 * h + l] >> (2 * k)) & 3) << 4
        })
    }

    /// Bytes where every bit counts: any 8 blocks survive repacking and unpacking, each
    /// row's piece bytes are distinct, and the three runs of the pieces fill 144..1680.
    #[test]
    fn every_block_survives_and_every_piece_byte_is_used_once() {
        let rows: Vec<u8> = (0..8 * 2 * Q6K_BLOCK_BYTES)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
            .collect();
        let mut group = vec![0u8; rows.len()];
        repack_group(512, &rows, &mut group);
        let mut back = vec![0u8; rows.len()];
        unpack_group(512, &group, &mut back);
        assert_eq!(back, rows);
        let mut seen = vec![false; Q6K_X8_BLOCK_BYTES];
        for r in 0..8 {
            for (h, g, t) in (0..64).map(|i| (i / 32, (i / 4) % 8, i % 4)) {
                let at = piece_at(r, h, g) + t;
                for run in [0, 32, 64] {
                    assert!(
                        !seen[at + run],
                        "row {r} piece {h} {g} byte {t} run {run} twice"
                    );
                    seen[at + run] = true;
                }
            }
        }
        assert!(seen[PIECES_AT..].iter().all(|&s| s));
        assert!(!seen[..PIECES_AT].iter().any(|&s| s));
    }

    /// The bytes of the table in the module docs, for one element of each k and both halves.
    #[test]
    fn pieces_hold_the_levels_as_the_table_says() {
        let mut block = [0u8; Q6K_BLOCK_BYTES];
        for (i, b) in block.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let mut rows = vec![0u8; 8 * Q6K_BLOCK_BYTES];
        rows[3 * Q6K_BLOCK_BYTES..4 * Q6K_BLOCK_BYTES].copy_from_slice(&block);
        let mut group = vec![0u8; rows.len()];
        repack_group(256, &rows, &mut group);
        let q = levels(&block);
        for (h, g, t) in [(0, 0, 0), (1, 5, 3), (0, 7, 2)] {
            let e = 128 * h + 4 * g + t;
            let at = 144 + 96 * (8 * h + g) + 4 * 3 + t;
            assert_eq!(group[at], q[e] | (q[e + 64] >> 4) << 6);
            assert_eq!(group[at + 32], q[e + 32] | (q[e + 96] >> 4) << 6);
            assert_eq!(group[at + 64], (q[e + 64] & 15) | (q[e + 96] & 15) << 4);
        }
        // Element 128 + 32·2 + 5: ql[64 + 5] high nibble, qh[32 + 5] bits 4..6.
        assert_eq!(
            q[128 + 64 + 5],
            (block[69] >> 4) | ((block[128 + 37] >> 4) & 3) << 4
        );
        for s in 0..16 {
            assert_eq!(group[16 + 8 * s + 3], block[192 + s]);
        }
        assert_eq!(group[6..8], block[208..210]);
    }
}
