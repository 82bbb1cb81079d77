//! Row loops shared by every block format: typed (`&[f32]` <-> `&[Block]`) and byte-level
//! (`&[f32]` <-> `&[u8]` in ggml's layout, any alignment). All lengths are checked up front.

use super::QuantError;
use super::blocks::BlockFormat;
use crate::GgmlType;

/// The number of whole blocks in `n` elements, or an error naming the partial block.
pub(crate) fn whole_blocks(ty: GgmlType, n: usize) -> Result<usize, QuantError> {
    let block = ty.block_size();
    if !n.is_multiple_of(block) {
        return Err(QuantError::PartialBlock {
            ty,
            elements: n,
            block,
        });
    }
    Ok(n / block)
}

/// Checks that a buffer holds `expected` units.
pub(crate) fn check_len(
    ty: GgmlType,
    what: &'static str,
    actual: usize,
    expected: usize,
) -> Result<(), QuantError> {
    if actual != expected {
        return Err(QuantError::LengthMismatch {
            ty,
            what,
            expected,
            actual,
        });
    }
    Ok(())
}

/// `elements` as whole blocks of `QK` (= `ty`'s block size), or the error naming the partial block.
fn as_whole_blocks<const QK: usize>(
    ty: GgmlType,
    elements: &[f32],
) -> Result<&[[f32; QK]], QuantError> {
    whole_blocks(ty, elements.len())?;
    Ok(elements.as_chunks::<QK>().0)
}

/// [`as_whole_blocks`] for an output buffer.
fn as_whole_blocks_mut<const QK: usize>(
    ty: GgmlType,
    elements: &mut [f32],
) -> Result<&mut [[f32; QK]], QuantError> {
    whole_blocks(ty, elements.len())?;
    Ok(elements.as_chunks_mut::<QK>().0)
}

/// Quantizes `src` into `dst.len()` blocks.
pub(crate) fn quantize_blocks<B, const QK: usize, const BYTES: usize>(
    src: &[f32],
    dst: &mut [B],
) -> Result<(), QuantError>
where
    B: BlockFormat<QK, BYTES>,
{
    let chunks = as_whole_blocks::<QK>(B::TYPE, src)?;
    check_len(B::TYPE, "blocks", dst.len(), chunks.len())?;
    for (x, y) in chunks.iter().zip(dst) {
        *y = B::quantize(x);
    }
    Ok(())
}

/// Dequantizes `src` blocks into `dst`, which must hold exactly their elements.
pub(crate) fn dequantize_blocks<B, const QK: usize, const BYTES: usize>(
    src: &[B],
    dst: &mut [f32],
) -> Result<(), QuantError>
where
    B: BlockFormat<QK, BYTES>,
{
    let chunks = as_whole_blocks_mut::<QK>(B::TYPE, dst)?;
    check_len(B::TYPE, "blocks", src.len(), chunks.len())?;
    for (x, y) in src.iter().zip(chunks) {
        x.dequantize(y);
    }
    Ok(())
}

/// Quantizes `src` into ggml's bytes; `dst` must be exactly the row's size.
pub(crate) fn quantize_bytes<B, const QK: usize, const BYTES: usize>(
    src: &[f32],
    dst: &mut [u8],
) -> Result<(), QuantError>
where
    B: BlockFormat<QK, BYTES>,
{
    let chunks = as_whole_blocks::<QK>(B::TYPE, src)?;
    check_len(B::TYPE, "bytes", dst.len(), chunks.len() * BYTES)?;
    let (out, _) = dst.as_chunks_mut::<BYTES>();
    for (x, y) in chunks.iter().zip(out) {
        *y = B::quantize(x).to_bytes();
    }
    Ok(())
}

/// Dequantizes ggml's bytes; `dst` must hold whole blocks and `src` exactly their bytes.
pub(crate) fn dequantize_bytes<B, const QK: usize, const BYTES: usize>(
    src: &[u8],
    dst: &mut [f32],
) -> Result<(), QuantError>
where
    B: BlockFormat<QK, BYTES>,
{
    let chunks = as_whole_blocks_mut::<QK>(B::TYPE, dst)?;
    check_len(B::TYPE, "bytes", src.len(), chunks.len() * BYTES)?;
    let (blocks, _) = src.as_chunks::<BYTES>();
    for (x, y) in blocks.iter().zip(chunks) {
        B::from_bytes(x).dequantize(y);
    }
    Ok(())
}

/// Declares the typed row functions of a format: `src.len()` must be `dst.len()` blocks.
macro_rules! typed_rows {
    ($block:ident, $quantize_row:ident, $dequantize_row:ident, $name:literal) => {
        #[doc = concat!("Quantizes a row to ", $name, " blocks (ggml's reference quantizer).")]
        pub fn $quantize_row(
            src: &[f32],
            dst: &mut [$block],
        ) -> Result<(), $crate::quant::QuantError> {
            $crate::quant::rows::quantize_blocks(src, dst)
        }
        #[doc = concat!("Dequantizes ", $name, " blocks to a row (ggml's `to_float`).")]
        pub fn $dequantize_row(
            src: &[$block],
            dst: &mut [f32],
        ) -> Result<(), $crate::quant::QuantError> {
            $crate::quant::rows::dequantize_blocks(src, dst)
        }
    };
}
pub(crate) use typed_rows;
