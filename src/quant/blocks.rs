//! ggml's block structs, field for field (`ggml-common.h`), and their little-endian byte codec.
//!
//! The structs are `#[repr(C)]` with ggml's field order, so `size_of` equals ggml's
//! `sizeof(block_*)` (checked at compile time). Bytes from a GGUF mmap are only byte-aligned and
//! `BlockQ8K` needs 4-byte alignment, so bytes are never reinterpreted as structs: they are
//! decoded field by field ([`BlockFormat::from_bytes`]) and encoded back ([`BlockFormat::to_bytes`]).

use half::f16;

use crate::GgmlType;
use crate::dtype::QK_K;

/// A ggml block format holding `QK` elements in `BYTES` bytes.
pub trait BlockFormat<const QK: usize, const BYTES: usize>: Copy {
    /// The ggml type of this format.
    const TYPE: GgmlType;
    /// Quantizes one block, as ggml's `quantize_row_*_reference` does for that block.
    fn quantize(src: &[f32; QK]) -> Self;
    /// Dequantizes one block, as ggml's `dequantize_row_*` does for that block.
    fn dequantize(&self, dst: &mut [f32; QK]);
    /// Decodes the block from its bytes (ggml's in-memory layout, little-endian).
    fn from_bytes(bytes: &[u8; BYTES]) -> Self;
    /// Encodes the block into its bytes (ggml's in-memory layout, little-endian).
    fn to_bytes(&self) -> [u8; BYTES];
}

/// One field of a block: its size in bytes and its little-endian codec.
trait Field: Sized {
    const SIZE: usize;
    /// Reads the field at `bytes[at..at + SIZE]`.
    fn read(bytes: &[u8], at: usize) -> Self;
    /// Writes the field to `bytes[at..at + SIZE]`.
    fn write(&self, bytes: &mut [u8], at: usize);
}

impl Field for f16 {
    const SIZE: usize = 2;
    fn read(bytes: &[u8], at: usize) -> Self {
        f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
    }
    fn write(&self, bytes: &mut [u8], at: usize) {
        bytes[at..at + 2].copy_from_slice(&self.to_bits().to_le_bytes());
    }
}

impl Field for f32 {
    const SIZE: usize = 4;
    fn read(bytes: &[u8], at: usize) -> Self {
        f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }
    fn write(&self, bytes: &mut [u8], at: usize) {
        bytes[at..at + 4].copy_from_slice(&self.to_le_bytes());
    }
}

impl<const N: usize> Field for [u8; N] {
    const SIZE: usize = N;
    fn read(bytes: &[u8], at: usize) -> Self {
        std::array::from_fn(|i| bytes[at + i])
    }
    fn write(&self, bytes: &mut [u8], at: usize) {
        bytes[at..at + N].copy_from_slice(self);
    }
}

impl<const N: usize> Field for [i8; N] {
    const SIZE: usize = N;
    fn read(bytes: &[u8], at: usize) -> Self {
        std::array::from_fn(|i| bytes[at + i] as i8)
    }
    fn write(&self, bytes: &mut [u8], at: usize) {
        for (out, v) in bytes[at..at + N].iter_mut().zip(self) {
            *out = *v as u8;
        }
    }
}

impl<const N: usize> Field for [i16; N] {
    const SIZE: usize = 2 * N;
    fn read(bytes: &[u8], at: usize) -> Self {
        std::array::from_fn(|i| i16::from_le_bytes([bytes[at + 2 * i], bytes[at + 2 * i + 1]]))
    }
    fn write(&self, bytes: &mut [u8], at: usize) {
        for (out, v) in bytes[at..at + 2 * N].chunks_exact_mut(2).zip(self) {
            out.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// Declares a `#[repr(C)]` block struct, asserts at compile time that it has ggml's size and
/// that its fields tile exactly that many bytes, and gives it the byte codec.
macro_rules! block_struct {
    (
        $(#[$meta:meta])*
        $name:ident, $ty:ident, $elems:expr, $bytes:expr, { $($(#[$fmeta:meta])* $field:ident : $fty:ty),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $fty),+
        }

        const _: () = assert!(std::mem::size_of::<$name>() == $bytes);
        const _: () = assert!(0 $(+ <$fty as Field>::SIZE)+ == $bytes);

        impl $name {
            /// The ggml type of this format.
            pub const TYPE: GgmlType = GgmlType::$ty;
            /// Elements per block.
            pub const ELEMS: usize = $elems;
            /// Bytes per block (ggml's `type_size`).
            pub const BYTES: usize = $bytes;

            /// Decodes the block from ggml's byte layout.
            pub fn decode(bytes: &[u8; $bytes]) -> Self {
                let mut _at = 0;
                $(
                    let $field = <$fty as Field>::read(bytes, _at);
                    _at += <$fty as Field>::SIZE;
                )+
                Self { $($field),+ }
            }

            /// Encodes the block into ggml's byte layout.
            pub fn encode(&self) -> [u8; $bytes] {
                let mut bytes = [0u8; $bytes];
                let mut _at = 0;
                $(
                    Field::write(&self.$field, &mut bytes, _at);
                    _at += <$fty as Field>::SIZE;
                )+
                bytes
            }
        }
    };
}

/// Implements [`BlockFormat`] for a block struct with its per-block quantize and dequantize.
macro_rules! impl_block_format {
    ($name:ident, $quantize:path, $dequantize:path) => {
        impl $crate::quant::blocks::BlockFormat<{ $name::ELEMS }, { $name::BYTES }> for $name {
            const TYPE: $crate::GgmlType = $name::TYPE;
            fn quantize(src: &[f32; $name::ELEMS]) -> Self {
                $quantize(src)
            }
            fn dequantize(&self, dst: &mut [f32; $name::ELEMS]) {
                $dequantize(self, dst)
            }
            fn from_bytes(bytes: &[u8; $name::BYTES]) -> Self {
                Self::decode(bytes)
            }
            fn to_bytes(&self) -> [u8; $name::BYTES] {
                self.encode()
            }
        }
    };
}
pub(crate) use impl_block_format;

block_struct!(
    /// Q4_0: 32 weights `d * (q - 8)`, q in 0..16.
    BlockQ4_0, Q4_0, 32, 18, { d: f16, qs: [u8; 16] }
);
block_struct!(
    /// Q4_1: 32 weights `d * q + m`, q in 0..16.
    BlockQ4_1, Q4_1, 32, 20, { d: f16, m: f16, qs: [u8; 16] }
);
block_struct!(
    /// Q5_0: 32 weights `d * (q - 16)`, q in 0..32; bit 4 of weight j is bit j of `qh`.
    BlockQ5_0, Q5_0, 32, 22, { d: f16, qh: [u8; 4], qs: [u8; 16] }
);
block_struct!(
    /// Q5_1: 32 weights `d * q + m`, q in 0..32; bit 4 of weight j is bit j of `qh`.
    BlockQ5_1, Q5_1, 32, 24, { d: f16, m: f16, qh: [u8; 4], qs: [u8; 16] }
);
block_struct!(
    /// Q8_0: 32 weights `d * q`, q in -127..=127.
    BlockQ8_0, Q8_0, 32, 34, { d: f16, qs: [i8; 32] }
);
block_struct!(
    /// Q8_1: like Q8_0, plus `s = d * sum(q)` (an activation format).
    BlockQ8_1, Q8_1, 32, 36, { d: f16, s: f16, qs: [i8; 32] }
);
block_struct!(
    /// Q2_K: 16 sub-blocks of 16 weights `d * sc * q - dmin * m`, q in 0..4, sc and m 4 bits.
    BlockQ2K, Q2_K, QK_K, 84, {
        /// Low nibble: scale, high nibble: min, per sub-block of 16.
        scales: [u8; 16],
        qs: [u8; 64],
        d: f16,
        dmin: f16,
    }
);
block_struct!(
    /// Q3_K: 16 sub-blocks of 16 weights `d * (sc - 32) * (q - 4)`, q in 0..8, sc 6 bits.
    BlockQ3K, Q3_K, QK_K, 110, {
        /// High bit of each 3-bit quant.
        hmask: [u8; 32],
        /// Low 2 bits of each quant.
        qs: [u8; 64],
        /// 16 six-bit scales: low nibbles in bytes 0..8, high 2 bits in bytes 8..12.
        scales: [u8; 12],
        d: f16,
    }
);
block_struct!(
    /// Q4_K: 8 sub-blocks of 32 weights `d * sc * q - dmin * m`, q in 0..16, sc and m 6 bits.
    BlockQ4K, Q4_K, QK_K, 144, {
        d: f16,
        dmin: f16,
        /// 8 six-bit scales and 8 six-bit mins, packed (see `get_scale_min_k4`).
        scales: [u8; 12],
        qs: [u8; 128],
    }
);
block_struct!(
    /// Q5_K: as Q4_K with a fifth bit per quant in `qh`, q in 0..32.
    BlockQ5K, Q5_K, QK_K, 176, {
        d: f16,
        dmin: f16,
        scales: [u8; 12],
        qh: [u8; 32],
        qs: [u8; 128],
    }
);
block_struct!(
    /// Q6_K: 16 sub-blocks of 16 weights `d * sc * (q - 32)`, q in 0..64, sc an i8.
    BlockQ6K, Q6_K, QK_K, 210, {
        /// Low 4 bits of each quant.
        ql: [u8; 128],
        /// High 2 bits of each quant.
        qh: [u8; 64],
        scales: [i8; 16],
        d: f16,
    }
);
block_struct!(
    /// Q8_K: 256 weights `d * q`, with per-16 sums of q (an activation format; f32 scale).
    BlockQ8K, Q8_K, QK_K, 292, {
        d: f32,
        qs: [i8; 256],
        bsums: [i16; 16],
    }
);
block_struct!(
    /// IQ4_NL: 32 weights `d * KVALUES_IQ4NL[q]`, q in 0..16 (a non-linear 4-bit grid).
    BlockIq4Nl, IQ4_NL, 32, 18, { d: f16, qs: [u8; 16] }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_agree_with_the_type_table() {
        let table = [
            (BlockQ4_0::TYPE, BlockQ4_0::ELEMS, BlockQ4_0::BYTES),
            (GgmlType::Q4_1, BlockQ4_1::ELEMS, BlockQ4_1::BYTES),
            (GgmlType::Q5_0, BlockQ5_0::ELEMS, BlockQ5_0::BYTES),
            (GgmlType::Q5_1, BlockQ5_1::ELEMS, BlockQ5_1::BYTES),
            (GgmlType::Q8_0, BlockQ8_0::ELEMS, BlockQ8_0::BYTES),
            (GgmlType::Q8_1, BlockQ8_1::ELEMS, BlockQ8_1::BYTES),
            (GgmlType::Q2_K, BlockQ2K::ELEMS, BlockQ2K::BYTES),
            (GgmlType::Q3_K, BlockQ3K::ELEMS, BlockQ3K::BYTES),
            (GgmlType::Q4_K, BlockQ4K::ELEMS, BlockQ4K::BYTES),
            (GgmlType::Q5_K, BlockQ5K::ELEMS, BlockQ5K::BYTES),
            (GgmlType::Q6_K, BlockQ6K::ELEMS, BlockQ6K::BYTES),
            (GgmlType::Q8_K, BlockQ8K::ELEMS, BlockQ8K::BYTES),
            (GgmlType::IQ4_NL, BlockIq4Nl::ELEMS, BlockIq4Nl::BYTES),
        ];
        for (ty, elems, bytes) in table {
            assert_eq!(ty.block_geometry(), (elems, bytes), "{ty}");
        }
    }

    #[test]
    fn codec_round_trips_and_is_little_endian() {
        let bytes: [u8; 292] = std::array::from_fn(|i| (i * 7 + 3) as u8);
        let block = BlockQ8K::decode(&bytes);
        assert_eq!(block.d.to_bits(), u32::from_le_bytes([3, 10, 17, 24]));
        assert_eq!(block.qs[0], 31);
        assert_eq!(
            block.bsums[15],
            i16::from_le_bytes([bytes[290], bytes[291]])
        );
        assert_eq!(block.encode(), bytes);

        let bytes: [u8; 84] = std::array::from_fn(|i| (i * 13 + 1) as u8);
        let block = BlockQ2K::decode(&bytes);
        assert_eq!(block.scales[0], 1);
        assert_eq!(
            block.d.to_bits(),
            u16::from_le_bytes([bytes[80], bytes[81]])
        );
        assert_eq!(
            block.dmin.to_bits(),
            u16::from_le_bytes([bytes[82], bytes[83]])
        );
        assert_eq!(block.encode(), bytes);
    }
}
