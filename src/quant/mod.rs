//! ggml's tensor block formats: bit-exact scalar reference quantize and dequantize.
//!
//! [`quantize_row`] and [`dequantize_row`] work on ggml's byte layout (as stored in GGUF; any
//! alignment) for every type with [`GgmlType::has_block_format`]. The typed per-format functions
//! (`quantize_row_q4_k(&[f32], &mut [BlockQ4K])`, ...) are the same code on aligned structs.
//!
//! Quantization without an importance matrix is byte-identical to ggml's `ggml_quantize_chunk`
//! (the `quantize_row_*_reference` functions), dequantization bit-identical to its `to_float`;
//! `tests/ggml_oracle.rs` checks both against ggml itself. Formats: F32, F16, BF16, Q4_0, Q4_1,
//! Q5_0, Q5_1, Q8_0, Q8_1, Q2_K..Q6_K, Q8_K and IQ4_NL; see docs/block-formats.md.

mod blocks;
mod c_math;
mod float;
mod iq4_nl;
mod kquants;
mod kquants_helpers;
mod kquants_k4;
mod kquants_lanes;
mod legacy;
mod rows;

use thiserror::Error;

use crate::GgmlType;

pub use blocks::{
    BlockFormat, BlockIq4Nl, BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0,
    BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0, BlockQ8_1, BlockQ8K,
};
pub use float::{Bf16Bits, bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
pub use iq4_nl::{
    KVALUES_IQ4NL, dequantize_block_iq4_nl, dequantize_row_iq4_nl, quantize_block_iq4_nl,
    quantize_row_iq4_nl,
};
pub use kquants::{
    dequantize_block_q2_k, dequantize_block_q3_k, dequantize_block_q6_k, dequantize_block_q8_k,
    dequantize_row_q2_k, dequantize_row_q3_k, dequantize_row_q6_k, dequantize_row_q8_k,
    quantize_block_q2_k, quantize_block_q3_k, quantize_block_q6_k, quantize_block_q8_k,
    quantize_row_q2_k, quantize_row_q3_k, quantize_row_q6_k, quantize_row_q8_k,
};
pub use kquants_k4::{
    dequantize_block_q4_k, dequantize_block_q5_k, dequantize_row_q4_k, dequantize_row_q5_k,
    quantize_block_q4_k, quantize_block_q5_k, quantize_row_q4_k, quantize_row_q5_k,
};
pub use legacy::{
    dequantize_block_q4_0, dequantize_block_q4_1, dequantize_block_q5_0, dequantize_block_q5_1,
    dequantize_block_q8_0, dequantize_block_q8_1, dequantize_row_q4_0, dequantize_row_q4_1,
    dequantize_row_q5_0, dequantize_row_q5_1, dequantize_row_q8_0, dequantize_row_q8_1,
    quantize_block_q4_0, quantize_block_q4_1, quantize_block_q5_0, quantize_block_q5_1,
    quantize_block_q8_0, quantize_block_q8_1, quantize_row_q4_0, quantize_row_q4_1,
    quantize_row_q5_0, quantize_row_q5_1, quantize_row_q8_0, quantize_row_q8_1,
};

/// Why a row could not be quantized or dequantized.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QuantError {
    #[error("type {0} has no block format in llava-rs (cannot quantize or dequantize it)")]
    Unsupported(GgmlType),
    #[error("{ty}: {elements} elements is not a whole number of {block}-element blocks")]
    PartialBlock {
        ty: GgmlType,
        elements: usize,
        block: usize,
    },
    #[error("{ty}: buffer holds {actual} {what}, expected {expected}")]
    LengthMismatch {
        ty: GgmlType,
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("{ty}: the size of {elements} elements overflows usize")]
    Overflow { ty: GgmlType, elements: usize },
}

/// Bytes taken by a row of `n` elements of type `ty`.
pub fn row_bytes(ty: GgmlType, n: usize) -> Result<usize, QuantError> {
    if !ty.has_block_format() {
        return Err(QuantError::Unsupported(ty));
    }
    let blocks = rows::whole_blocks(ty, n)?;
    blocks
        .checked_mul(ty.type_size())
        .ok_or(QuantError::Overflow { ty, elements: n })
}

/// Calls `$f::<Block, ELEMS, BYTES>` for the block type of `$ty`, or handles the float types
/// with `$float`.
macro_rules! dispatch {
    ($ty:expr, $f:ident, $float:expr, ($($arg:expr),*)) => {{
        use GgmlType::*;
        match $ty {
            F32 | F16 | BF16 => $float,
            Q4_0 => rows::$f::<BlockQ4_0, { BlockQ4_0::ELEMS }, { BlockQ4_0::BYTES }>($($arg),*),
            Q4_1 => rows::$f::<BlockQ4_1, { BlockQ4_1::ELEMS }, { BlockQ4_1::BYTES }>($($arg),*),
            Q5_0 => rows::$f::<BlockQ5_0, { BlockQ5_0::ELEMS }, { BlockQ5_0::BYTES }>($($arg),*),
            Q5_1 => rows::$f::<BlockQ5_1, { BlockQ5_1::ELEMS }, { BlockQ5_1::BYTES }>($($arg),*),
            Q8_0 => rows::$f::<BlockQ8_0, { BlockQ8_0::ELEMS }, { BlockQ8_0::BYTES }>($($arg),*),
            Q8_1 => rows::$f::<BlockQ8_1, { BlockQ8_1::ELEMS }, { BlockQ8_1::BYTES }>($($arg),*),
            Q2_K => rows::$f::<BlockQ2K, { BlockQ2K::ELEMS }, { BlockQ2K::BYTES }>($($arg),*),
            Q3_K => rows::$f::<BlockQ3K, { BlockQ3K::ELEMS }, { BlockQ3K::BYTES }>($($arg),*),
            Q4_K => rows::$f::<BlockQ4K, { BlockQ4K::ELEMS }, { BlockQ4K::BYTES }>($($arg),*),
            Q5_K => rows::$f::<BlockQ5K, { BlockQ5K::ELEMS }, { BlockQ5K::BYTES }>($($arg),*),
            Q6_K => rows::$f::<BlockQ6K, { BlockQ6K::ELEMS }, { BlockQ6K::BYTES }>($($arg),*),
            Q8_K => rows::$f::<BlockQ8K, { BlockQ8K::ELEMS }, { BlockQ8K::BYTES }>($($arg),*),
            IQ4_NL => {
                rows::$f::<BlockIq4Nl, { BlockIq4Nl::ELEMS }, { BlockIq4Nl::BYTES }>($($arg),*)
            }
            other => Err(QuantError::Unsupported(other)),
        }
    }};
}

/// Quantizes `src` (a whole number of blocks) into `dst`, which must be exactly
/// [`row_bytes`]`(ty, src.len())` long, in ggml's byte layout.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    dispatch!(
        ty,
        quantize_bytes,
        float_rows::quantize(ty, src, dst),
        (src, dst)
    )
}

/// Dequantizes `src` (ggml's byte layout) into `dst`, which must be a whole number of blocks
/// whose size is exactly `src.len()` bytes.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    dispatch!(
        ty,
        dequantize_bytes,
        float_rows::dequantize(ty, src, dst),
        (src, dst)
    )
}

/// Rows of the unblocked float types F32, F16 and BF16.
mod float_rows {
    use super::QuantError;
    use super::float::{bf16_to_f32, f32_to_bf16, f32_to_f16};
    use super::rows::check_len;
    use crate::GgmlType;
    use half::f16;
    use half::slice::HalfFloatSliceExt;

    pub(super) fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
        let size = ty.type_size();
        check_len(ty, "bytes", dst.len(), src.len().saturating_mul(size))?;
        for (x, out) in src.iter().zip(dst.chunks_exact_mut(size)) {
            match ty {
                GgmlType::F16 => out.copy_from_slice(&f32_to_f16(*x).to_bits().to_le_bytes()),
                GgmlType::BF16 => out.copy_from_slice(&f32_to_bf16(*x).to_le_bytes()),
                _ => out.copy_from_slice(&x.to_le_bytes()),
            }
        }
        Ok(())
    }

    pub(super) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
        let size = ty.type_size();
        check_len(ty, "bytes", src.len(), dst.len().saturating_mul(size))?;
        match ty {
            GgmlType::F16 => {
                // Through a small aligned buffer, so that `half` converts whole slices (with
                // F16C when the CPU has it, detected once per slice rather than per element).
                const CHUNK: usize = 256;
                let mut halves = [f16::ZERO; CHUNK];
                for (bytes, out) in src.chunks(2 * CHUNK).zip(dst.chunks_mut(CHUNK)) {
                    let halves = &mut halves[..out.len()];
                    for (h, b) in halves.iter_mut().zip(bytes.as_chunks::<2>().0) {
                        *h = f16::from_bits(u16::from_le_bytes(*b));
                    }
                    halves.convert_to_f32_slice(out);
                }
            }
            GgmlType::BF16 => {
                for (b, y) in src.as_chunks::<2>().0.iter().zip(dst) {
                    *y = bf16_to_f32(u16::from_le_bytes(*b));
                }
            }
            _ => {
                for (b, y) in src.as_chunks::<4>().0.iter().zip(dst) {
                    *y = f32::from_le_bytes(*b);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_types_are_exactly_the_block_formats() {
        for ty in GgmlType::ALL {
            let n = ty.block_size() * 2;
            let mut bytes = vec![0u8; ty.type_size() * 2];
            let mut floats = vec![0.0f32; n];
            let q = quantize_row(ty, &vec![0.5; n], &mut bytes);
            let d = dequantize_row(ty, &bytes, &mut floats);
            if ty.has_block_format() {
                assert_eq!((q, d), (Ok(()), Ok(())), "{ty}");
                assert_eq!(row_bytes(ty, n), Ok(2 * ty.type_size()));
            } else {
                assert_eq!(q, Err(QuantError::Unsupported(ty)));
                assert_eq!(d, Err(QuantError::Unsupported(ty)));
                assert_eq!(row_bytes(ty, n), Err(QuantError::Unsupported(ty)));
            }
        }
    }

    #[test]
    fn wrong_lengths_are_errors_not_panics() {
        let ty = GgmlType::Q4_K;
        let mut bytes = vec![0u8; 144];
        let mut out = vec![0.0f32; 256];
        let partial = QuantError::PartialBlock {
            ty,
            elements: 100,
            block: 256,
        };
        assert_eq!(
            quantize_row(ty, &[0.0; 100], &mut bytes),
            Err(partial.clone())
        );
        assert_eq!(
            dequantize_row(ty, &bytes, &mut out[..100]),
            Err(partial.clone())
        );
        assert_eq!(row_bytes(ty, 100), Err(partial));
        let short = QuantError::LengthMismatch {
            ty,
            what: "bytes",
            expected: 144,
            actual: 143,
        };
        assert_eq!(
            quantize_row(ty, &[0.0; 256], &mut bytes[..143]),
            Err(short.clone())
        );
        assert_eq!(dequantize_row(ty, &bytes[..143], &mut out), Err(short));
        let long = QuantError::LengthMismatch {
            ty,
            what: "bytes",
            expected: 144,
            actual: 145,
        };
        assert_eq!(quantize_row(ty, &[0.0; 256], &mut [0u8; 145]), Err(long));
        let f16 = GgmlType::F16;
        let odd = QuantError::LengthMismatch {
            ty: f16,
            what: "bytes",
            expected: 6,
            actual: 5,
        };
        assert_eq!(dequantize_row(f16, &[0u8; 5], &mut [0.0; 3]), Err(odd));
        let blocks = QuantError::LengthMismatch {
            ty,
            what: "blocks",
            expected: 1,
            actual: 2,
        };
        let mut typed = [quantize_block_q4_k(&[0.0; 256]); 2];
        assert_eq!(quantize_row_q4_k(&[0.0; 256], &mut typed), Err(blocks));
        assert_eq!(
            row_bytes(GgmlType::F32, usize::MAX),
            Err(QuantError::Overflow {
                ty: GgmlType::F32,
                elements: usize::MAX
            })
        );
    }

    #[test]
    fn byte_api_accepts_unaligned_buffers() {
        let x: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut aligned = vec![0u8; 292];
        quantize_row(GgmlType::Q8_K, &x, &mut aligned).unwrap();
        let mut storage = vec![0u8; 293];
        quantize_row(GgmlType::Q8_K, &x, &mut storage[1..]).unwrap();
        assert_eq!(&storage[1..], &aligned[..]);
        let (mut a, mut b) = (vec![0.0f32; 256], vec![0.0f32; 256]);
        dequantize_row(GgmlType::Q8_K, &aligned, &mut a).unwrap();
        dequantize_row(GgmlType::Q8_K, &storage[1..], &mut b).unwrap();
        assert_eq!(a, b);
        let typed = quantize_block_q8_k(x.as_slice().try_into().unwrap());
        assert_eq!(typed.encode().as_slice(), &aligned[..]);
    }

    #[test]
    fn float_rows_round_trip_exactly_representable_values() {
        let x = [0.0f32, -0.0, 1.5, -1024.0, f32::INFINITY, 2.0f32.powi(-24)];
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
            let mut bytes = vec![0u8; row_bytes(ty, x.len()).unwrap()];
            quantize_row(ty, &x, &mut bytes).unwrap();
            let mut y = [0.0f32; 6];
            dequantize_row(ty, &bytes, &mut y).unwrap();
            for (a, b) in x.iter().zip(&y) {
                assert_eq!(a.to_bits(), b.to_bits(), "{ty}");
            }
        }
    }
}
