//! LLaVA-NeXT "anyres" geometry: which grid an image gets, how it is resized and padded into it,
//! and how many image tokens it becomes after unpadding. Transcribed from transformers 5
//! (`image_processing_utils.select_best_resolution`, `get_patch_output_size`,
//! `LlavaNextImageProcessorPil._get_padding_size`, `modeling_llava_next.unpad_image`,
//! `LlavaNextProcessor._get_number_of_features`), with Python's float arithmetic in f64.

use super::error::VisionError;

/// A grid resolution, in pixels (the config lists pinpoints as `[height, width]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub height: usize,
    pub width: usize,
}

/// `select_best_resolution((height, width), pinpoints)`: the largest effective area, ties to the
/// least waste, exact ties to the earlier pinpoint.
pub fn select_best_resolution(
    height: usize,
    width: usize,
    pinpoints: &[Resolution],
) -> Result<Resolution, VisionError> {
    let mut best = None;
    let mut max_effective = 0usize;
    let mut min_wasted = f64::INFINITY;
    for &p in pinpoints {
        let scale = f64::min(
            p.width as f64 / width as f64,
            p.height as f64 / height as f64,
        );
        let down_w = (width as f64 * scale) as usize;
        let down_h = (height as f64 * scale) as usize;
        let effective = (down_w * down_h).min(width * height);
        let wasted = (p.width * p.height) as f64 - effective as f64;
        if effective > max_effective || (effective == max_effective && wasted < min_wasted) {
            max_effective = effective;
            min_wasted = wasted;
            best = Some(p);
        }
    }
    best.ok_or_else(|| {
        VisionError::Config(format!(
            "no grid pinpoint fits a {width} x {height} image (pinpoints: {pinpoints:?})"
        ))
    })
}

/// `get_patch_output_size`: the aspect-preserving size inside `target` (height, width).
pub fn fit_within(height: usize, width: usize, target: Resolution) -> (usize, usize) {
    let scale_w = target.width as f64 / width as f64;
    let scale_h = target.height as f64 / height as f64;
    if scale_w < scale_h {
        let new_h = ((height as f64 * scale_w).ceil() as usize).min(target.height);
        (new_h, target.width)
    } else {
        let new_w = ((width as f64 * scale_h).ceil() as usize).min(target.width);
        (target.height, new_w)
    }
}

/// Python's `int(round(x, 7))` for a non-negative float: round to 7 decimals (correctly
/// rounded, as CPython does through its dtoa), then truncate. Rust's `{:.7}` formatting is also
/// exact decimal rounding.
fn int_round7(x: f64) -> usize {
    let s = format!("{x:.7}");
    s.split('.')
        .next()
        .and_then(|i| i.parse().ok())
        .unwrap_or(0)
}

/// The feature map kept after `unpad_image` of a `cur_h` x `cur_w` map for an original image of
/// `height` x `width`: (first row, rows kept, first column, columns kept).
pub fn unpad_region(
    height: usize,
    width: usize,
    cur_h: usize,
    cur_w: usize,
) -> (usize, usize, usize, usize) {
    let original_aspect = width as f64 / height as f64;
    let current_aspect = cur_w as f64 / cur_h as f64;
    if original_aspect > current_aspect {
        let scale = cur_w as f64 / width as f64;
        let new_h = int_round7(height as f64 * scale);
        let pad = cur_h.saturating_sub(new_h) / 2;
        (pad, cur_h - 2 * pad, 0, cur_w)
    } else {
        let scale = cur_h as f64 / height as f64;
        let new_w = int_round7(width as f64 * scale);
        let pad = cur_w.saturating_sub(new_w) / 2;
        (0, cur_h, pad, cur_w - 2 * pad)
    }
}

/// Everything about one image's anyres layout that the pipeline and the token count need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnyresLayout {
    /// The chosen pinpoint.
    pub grid: Resolution,
    /// Tiles per column and per row of the grid.
    pub tile_rows: usize,
    pub tile_cols: usize,
    /// The aspect-preserving resize inside the grid, before padding (height, width).
    pub resized: (usize, usize),
    /// Padding before (top, left); the remainder goes to the bottom/right.
    pub pad_top: usize,
    pub pad_left: usize,
    /// Features per tile side (image_size / patch_size).
    pub side: usize,
    /// The unpadded feature map: first row, rows, first column, columns.
    pub keep: (usize, usize, usize, usize),
}

impl AnyresLayout {
    pub fn new(
        height: usize,
        width: usize,
        pinpoints: &[Resolution],
        tile: usize,
        patch: usize,
    ) -> Result<Self, VisionError> {
        if tile == 0 || patch == 0 || !tile.is_multiple_of(patch) {
            return Err(VisionError::Config(format!(
                "tile size {tile} is not a multiple of the patch size {patch}"
            )));
        }
        if height == 0 || width == 0 {
            return Err(VisionError::Config(
                "anyres layout of an empty image".into(),
            ));
        }
        let grid = select_best_resolution(height, width, pinpoints)?;
        if grid.height % tile != 0 || grid.width % tile != 0 || grid.height == 0 || grid.width == 0
        {
            return Err(VisionError::Config(format!(
                "grid pinpoint {} x {} (h x w) is not a multiple of the tile size {tile}",
                grid.height, grid.width
            )));
        }
        let resized = fit_within(height, width, grid);
        // `_get_padding_size`: divmod(target - size, 2), the remainder after.
        let pad_top = (grid.height - resized.0) / 2;
        let pad_left = (grid.width - resized.1) / 2;
        let side = tile / patch;
        let (tile_rows, tile_cols) = (grid.height / tile, grid.width / tile);
        let keep = unpad_region(height, width, tile_rows * side, tile_cols * side);
        Ok(Self {
            grid,
            tile_rows,
            tile_cols,
            resized,
            pad_top,
            pad_left,
            side,
            keep,
        })
    }

    /// Tiles encoded: the base image then the grid.
    pub fn n_tiles(&self) -> usize {
        1 + self.tile_rows * self.tile_cols
    }

    /// Image tokens: the base tile's features, then each kept row plus its newline.
    pub fn n_tokens(&self) -> usize {
        let (_, rows, _, cols) = self.keep;
        self.side * self.side + rows * (cols + 1)
    }
}

/// The largest grid side accepted from a file (real grids go up to a few thousand pixels);
/// bounds the memory of the padded grid image.
pub const MAX_PINPOINT_SIDE: usize = 8192;

/// Parses pinpoints stored flat as in the GGUF key `clip.vision.image_grid_pinpoints`
/// (h0, w0, h1, w1, ...), the order of the config's `[[h, w], ...]`.
pub fn pinpoints_from_flat(flat: &[usize]) -> Result<Vec<Resolution>, VisionError> {
    if flat.is_empty() || !flat.len().is_multiple_of(2) {
        return Err(VisionError::Config(format!(
            "image_grid_pinpoints must hold (height, width) pairs, got {} values",
            flat.len()
        )));
    }
    if let Some(&bad) = flat.iter().find(|&&v| v == 0 || v > MAX_PINPOINT_SIDE) {
        return Err(VisionError::Config(format!(
            "image_grid_pinpoints: side {bad} outside 1..={MAX_PINPOINT_SIDE}"
        )));
    }
    Ok(flat
        .chunks_exact(2)
        .map(|p| Resolution {
            height: p[0],
            width: p[1],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_pinpoints() -> Vec<Resolution> {
        pinpoints_from_flat(&[336, 672, 672, 336, 672, 672, 1008, 336, 336, 1008]).unwrap()
    }

    #[test]
    fn worked_examples_of_the_preprocessing_notes() {
        let tiny: Vec<Resolution> = real_pinpoints()
            .iter()
            .map(|p| Resolution {
                height: p.height / 6,
                width: p.width / 6,
            })
            .collect();
        // 120 x 90 (w x h) picks 112 x 112, map 8 x 8 unpadded to 6 x 8: 16 + 6 * 9 = 70.
        let a = AnyresLayout::new(90, 120, &tiny, 56, 14).unwrap();
        assert_eq!(
            a.grid,
            Resolution {
                height: 112,
                width: 112
            }
        );
        assert_eq!(a.keep, (1, 6, 0, 8));
        assert_eq!(a.n_tokens(), 70);
        // 64 x 150 (w x h) picks 168 x 56 (h x w): 10 x 4 kept, 16 + 10 * 5 = 66.
        let b = AnyresLayout::new(150, 64, &tiny, 56, 14).unwrap();
        assert_eq!(
            b.grid,
            Resolution {
                height: 168,
                width: 56
            }
        );
        assert_eq!(b.n_tokens(), 66);
    }

    #[test]
    fn square_image_on_the_real_grid_has_2928_tokens() {
        let l = AnyresLayout::new(1000, 1000, &real_pinpoints(), 336, 14).unwrap();
        assert_eq!(
            l.grid,
            Resolution {
                height: 672,
                width: 672
            }
        );
        assert_eq!(l.n_tokens(), 2928);
    }

    #[test]
    fn python_round_then_int() {
        assert_eq!(int_round7(5.99999996), 6);
        assert_eq!(int_round7(5.9999999), 5);
        assert_eq!(int_round7(7.0), 7);
    }
}
