//! LLaVA-NeXT's packing of an image's tile embeddings (transformers'
//! `LlavaNextModel.pack_image_features`, `mm_patch_merge_type = spatial_unpad`): the base tile's
//! features first, then the grid tiles reassembled into one feature map, unpadded, with the
//! `image_newline` vector after every row.

use super::anyres::AnyresLayout;
use super::error::VisionError;

/// Packs `tiles` ([n_tiles][side²][n_embd], the base tile first, then the grid row by row) into
/// the image's token embeddings [n_tokens][n_embd].
pub fn pack_anyres(
    tiles: &[f32],
    n_embd: usize,
    layout: &AnyresLayout,
    newline: &[f32],
) -> Result<Vec<f32>, VisionError> {
    let side = layout.side;
    let per_tile = side * side * n_embd;
    if tiles.len() != layout.n_tiles() * per_tile || newline.len() != n_embd {
        return Err(VisionError::Config(format!(
            "anyres packing: {} values for {} tiles of {side}x{side}x{n_embd}, newline of {}",
            tiles.len(),
            layout.n_tiles(),
            newline.len()
        )));
    }
    let (top, rows, left, cols) = layout.keep;
    let mut out = Vec::with_capacity(layout.n_tokens() * n_embd);
    out.extend_from_slice(&tiles[..per_tile]);
    for r in top..top + rows {
        let (tile_row, y) = (r / side, r % side);
        for c in left..left + cols {
            let (tile_col, x) = (c / side, c % side);
            let tile = 1 + tile_row * layout.tile_cols + tile_col;
            let at = tile * per_tile + (y * side + x) * n_embd;
            out.extend_from_slice(&tiles[at..at + n_embd]);
        }
        out.extend_from_slice(newline);
    }
    debug_assert_eq!(out.len(), layout.n_tokens() * n_embd);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::anyres::Resolution;

    #[test]
    fn packs_base_then_unpadded_rows_with_newlines() {
        // Tiny: tile 28, patch 14 (2 x 2 features per tile); a wide 60 x 20 (w x h) image on a
        // 1 x 2 grid (h 28, w 56): map 2 x 4, unpadded to rows 0..1? check against the layout.
        let pinpoints = [Resolution {
            height: 28,
            width: 56,
        }];
        let layout = AnyresLayout::new(20, 60, &pinpoints, 28, 14).unwrap();
        assert_eq!((layout.tile_rows, layout.tile_cols), (1, 2));
        // One feature per token, value = tile * 100 + y * 10 + x.
        let tiles: Vec<f32> = (0..3)
            .flat_map(|t| (0..4).map(move |i| (t * 100 + (i / 2) * 10 + i % 2) as f32))
            .collect();
        let out = pack_anyres(&tiles, 1, &layout, &[-1.0]).unwrap();
        let (top, rows, left, cols) = layout.keep;
        assert_eq!((left, cols), (0, 4));
        let mut want = vec![0.0, 1.0, 10.0, 11.0];
        for r in top..top + rows {
            for c in 0..4 {
                want.push((100 * (1 + c / 2) + (r % 2) * 10 + c % 2) as f32);
            }
            want.push(-1.0);
        }
        assert_eq!(out, want);
    }
}
