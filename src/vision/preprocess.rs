//! From an RGB image to the normalised tiles the CLIP tower takes, as transformers' processors
//! (PIL backend) compute them. See docs/vision.md for the rules and where each comes from.

use super::anyres::{AnyresLayout, Resolution};
use super::decode::{AlphaMode, DecodedImage, RgbImage};
use super::error::VisionError;
use super::resize::{resize_bicubic, resize_bicubic_window};

/// How an image becomes the model's square input.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageMode {
    /// llava-hf's LLaVA-1.5 processor: resize the shortest edge to the image size (bicubic), then
    /// centre-crop.
    Crop,
    /// The original LLaVA (`image_aspect_ratio = pad`, llama.cpp too): pad to a square with the
    /// mean colour, image centred, then resize.
    Pad,
    /// LLaVA-NeXT: the base image squashed to one tile, then the tiles of the best grid.
    Anyres { pinpoints: Vec<Resolution> },
}

/// The processor settings (read from the mmproj's keys).
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessConfig {
    /// The CLIP input side (336 for ViT-L/14-336).
    pub image_size: usize,
    /// The CLIP patch side (14).
    pub patch_size: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub mode: ImageMode,
    /// Transparency: composited onto white by transformers' processors (crop, anyres), dropped
    /// by the original LLaVA (pad). See [`AlphaMode`].
    pub alpha: AlphaMode,
}

/// Normalised pixel values, `[n_tiles][3][size][size]` (NCHW, as `pixel_values`).
#[derive(Clone, Debug, PartialEq)]
pub struct PixelValues {
    pub n_tiles: usize,
    pub size: usize,
    pub data: Vec<f32>,
    /// The original image's size (height, width), `image_sizes` in transformers.
    pub image_size_hw: (usize, usize),
    /// The anyres layout, for NeXT images.
    pub anyres: Option<AnyresLayout>,
}

impl PixelValues {
    /// One tile's `3 * size * size` values.
    pub fn tile(&self, i: usize) -> &[f32] {
        let n = 3 * self.size * self.size;
        &self.data[i * n..(i + 1) * n]
    }
}

impl PreprocessConfig {
    /// The same settings with another mode (`--image-aspect`), transparency handled as that
    /// mode's reference does (pad: dropped, as the original LLaVA; otherwise composited).
    pub fn with_mode(&self, mode: ImageMode) -> Self {
        let alpha = if mode == ImageMode::Pad {
            AlphaMode::Drop
        } else {
            AlphaMode::CompositeOnWhite
        };
        Self {
            mode,
            alpha,
            ..self.clone()
        }
    }

    /// The number of image tokens an image of `height` x `width` becomes.
    pub fn n_tokens(&self, height: usize, width: usize) -> Result<usize, VisionError> {
        match &self.mode {
            ImageMode::Anyres { pinpoints } => {
                Ok(
                    AnyresLayout::new(height, width, pinpoints, self.image_size, self.patch_size)?
                        .n_tokens(),
                )
            }
            _ => {
                let side = self.image_size / self.patch_size;
                Ok(side * side)
            }
        }
    }

    fn check(&self) -> Result<(), VisionError> {
        if self.image_size == 0
            || self.patch_size == 0
            || !self.image_size.is_multiple_of(self.patch_size)
        {
            return Err(VisionError::Config(format!(
                "image size {} is not a positive multiple of the patch size {}",
                self.image_size, self.patch_size
            )));
        }
        if self.std.iter().any(|&s| s == 0.0 || !s.is_finite())
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err(VisionError::Config(format!(
                "bad normalisation mean {:?} / std {:?}",
                self.mean, self.std
            )));
        }
        Ok(())
    }
}

/// Preprocesses a decoded image: to RGB as `config.alpha` says, then [`preprocess`].
pub fn preprocess_image(
    image: &DecodedImage,
    config: &PreprocessConfig,
) -> Result<PixelValues, VisionError> {
    preprocess(&image.to_rgb(config.alpha), config)
}

/// Preprocesses one RGB image into its tiles of normalised pixel values.
pub fn preprocess(image: &RgbImage, config: &PreprocessConfig) -> Result<PixelValues, VisionError> {
    config.check()?;
    if image.width == 0 || image.height == 0 {
        return Err(VisionError::Config(
            "cannot preprocess an empty image".into(),
        ));
    }
    let size = config.image_size;
    let (tiles, anyres) = match &config.mode {
        ImageMode::Crop => (vec![resize_shortest_edge_and_crop(image, size)?], None),
        ImageMode::Pad => {
            let square = expand_to_square(image, mean_colour(&config.mean));
            (vec![resize_shortest_edge_and_crop(&square, size)?], None)
        }
        ImageMode::Anyres { pinpoints } => {
            let layout = AnyresLayout::new(
                image.height,
                image.width,
                pinpoints,
                size,
                config.patch_size,
            )?;
            (anyres_tiles(image, &layout, size)?, Some(layout))
        }
    };
    let mut data = Vec::with_capacity(tiles.len() * 3 * size * size);
    for tile in &tiles {
        normalize_into(tile, &config.mean, &config.std, &mut data);
    }
    Ok(PixelValues {
        n_tiles: tiles.len(),
        size,
        data,
        image_size_hw: (image.height, image.width),
        anyres,
    })
}

/// transformers' `get_resize_output_image_size(size=s, default_to_square=False)`: the short side
/// becomes `s`, the long side `int(s * long / short)`. Returns (height, width).
pub fn shortest_edge_size(height: usize, width: usize, s: usize) -> (usize, usize) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = ((s * long) as f64 / short as f64) as usize;
    if width <= height {
        (new_long, s)
    } else {
        (s, new_long)
    }
}

/// CLIPImageProcessor: resize the shortest edge to `size`, then `center_crop` to `size` x `size`.
/// Only the cropped window of the resize is computed (identical to cropping the full resize).
fn resize_shortest_edge_and_crop(image: &RgbImage, size: usize) -> Result<RgbImage, VisionError> {
    let (h, w) = shortest_edge_size(image.height, image.width, size);
    if h == 0 || w == 0 {
        return Err(VisionError::Config(format!(
            "a {} x {} image resizes to nothing",
            image.width, image.height
        )));
    }
    if h >= size && w >= size {
        let (top, left) = ((h - size) / 2, (w - size) / 2);
        return resize_bicubic_window(image, w, h, left..left + size, top..top + size);
    }
    // Smaller than the crop (only when crop > size): transformers pads with zeros around it.
    let resized = resize_bicubic(image, w, h)?;
    Ok(center_crop_padded(&resized, size))
}

/// transformers' `center_crop` when the image is smaller than the crop: zero padding, placed at
/// ceil((size - side) / 2), then the crop window.
fn center_crop_padded(image: &RgbImage, size: usize) -> RgbImage {
    let (nh, nw) = (size.max(image.height), size.max(image.width));
    let (top_pad, left_pad) = (
        (nh - image.height).div_ceil(2),
        (nw - image.width).div_ceil(2),
    );
    let mut canvas = RgbImage::filled(nw, nh, [0, 0, 0]);
    paste(&mut canvas, image, left_pad, top_pad);
    let top = (image.height as isize - size as isize).div_euclid(2) + top_pad as isize;
    let left = (image.width as isize - size as isize).div_euclid(2) + left_pad as isize;
    let (top, left) = (top.max(0) as usize, left.max(0) as usize);
    let mut out = RgbImage::filled(size, size, [0, 0, 0]);
    for y in 0..size.min(nh - top) {
        let src = &canvas.data[((top + y) * nw + left) * 3..];
        let n = size.min(nw - left) * 3;
        out.data[y * size * 3..y * size * 3 + n].copy_from_slice(&src[..n]);
    }
    out
}

/// The original LLaVA's padding colour: `tuple(int(x * 255) for x in image_mean)`.
pub fn mean_colour(mean: &[f32; 3]) -> [u8; 3] {
    mean.map(|m| (f64::from(m) * 255.0).clamp(0.0, 255.0) as u8)
}

/// The original LLaVA's `expand2square`: the image pasted into a square of `colour`, at
/// ((side - w) // 2, 0) or (0, (side - h) // 2).
pub fn expand_to_square(image: &RgbImage, colour: [u8; 3]) -> RgbImage {
    if image.width == image.height {
        return image.clone();
    }
    let side = image.width.max(image.height);
    let mut out = RgbImage::filled(side, side, colour);
    paste(
        &mut out,
        image,
        (side - image.width) / 2,
        (side - image.height) / 2,
    );
    out
}

fn paste(canvas: &mut RgbImage, image: &RgbImage, left: usize, top: usize) {
    let row = image.width * 3;
    for y in 0..image.height {
        let at = ((top + y) * canvas.width + left) * 3;
        canvas.data[at..at + row].copy_from_slice(&image.data[y * row..(y + 1) * row]);
    }
}

/// LLaVA-NeXT's tiles: the whole image squashed to one tile, then the grid's tiles row by row,
/// cut from the aspect-preserving resize padded with black to the grid.
fn anyres_tiles(
    image: &RgbImage,
    layout: &AnyresLayout,
    tile: usize,
) -> Result<Vec<RgbImage>, VisionError> {
    let mut tiles = Vec::with_capacity(layout.n_tiles());
    tiles.push(resize_bicubic(image, tile, tile)?);
    let (rh, rw) = layout.resized;
    let resized = resize_bicubic(image, rw, rh)?;
    let mut padded = RgbImage::filled(layout.grid.width, layout.grid.height, [0, 0, 0]);
    paste(&mut padded, &resized, layout.pad_left, layout.pad_top);
    for ty in 0..layout.tile_rows {
        for tx in 0..layout.tile_cols {
            let mut t = RgbImage::filled(tile, tile, [0, 0, 0]);
            for y in 0..tile {
                let src = ((ty * tile + y) * padded.width + tx * tile) * 3;
                t.data[y * tile * 3..(y + 1) * tile * 3]
                    .copy_from_slice(&padded.data[src..src + tile * 3]);
            }
            tiles.push(t);
        }
    }
    Ok(tiles)
}

/// transformers' `rescale` then `normalize`: `f32(f64(v) * (1/255))`, then `(x - mean) / std` in
/// f32, written channel-first.
fn normalize_into(tile: &RgbImage, mean: &[f32; 3], std: &[f32; 3], out: &mut Vec<f32>) {
    let scale: f64 = 1.0 / 255.0;
    let lut: [f32; 256] = std::array::from_fn(|v| (v as f64 * scale) as f32);
    for c in 0..3 {
        out.extend(
            tile.data
                .chunks_exact(3)
                .map(|p| (lut[p[c] as usize] - mean[c]) / std[c]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_edge_rounds_down_like_python() {
        assert_eq!(shortest_edge_size(480, 640, 336), (336, 448));
        assert_eq!(shortest_edge_size(700, 333, 336), (706, 336));
    }

    #[test]
    fn expand_to_square_centres_the_image() {
        let image = RgbImage::filled(4, 1, [9, 9, 9]);
        let sq = expand_to_square(&image, [1, 2, 3]);
        assert_eq!((sq.width, sq.height), (4, 4));
        // (4 - 1) // 2 = 1 row above.
        assert_eq!(&sq.data[0..3], &[1, 2, 3]);
        assert_eq!(&sq.data[12..15], &[9, 9, 9]);
        assert_eq!(
            mean_colour(&[0.48145466, 0.4578275, 0.40821073]),
            [122, 116, 104]
        );
    }
}
