//! Image files to 8-bit RGB, the way transformers' processors see a `PIL.Image.open` result.
//!
//! Decoding uses the `image` crate (JPEG, PNG, WebP, BMP, GIF's first frame) into 8-bit RGBA.
//! Transparency is then handled one of two ways ([`AlphaMode`]):
//! - transformers 5's `convert_to_rgb` (`image_transforms.py`), which the CLIP and LLaVA-NeXT
//!   processors apply (`do_convert_rgb = True`) to the PIL image they are given: an image with an
//!   alpha band (or a transparency colour/palette entry) is alpha-composited onto opaque white
//!   with Pillow's integer `alpha_composite`;
//! - the original LLaVA's `Image.open(f).convert("RGB")` (and llama.cpp's stb_image with 3
//!   channels): alpha is dropped, the colour kept.
//!
//! Grey is replicated and palettes expanded as Pillow's `convert("RGB")` does.
//! Pillow keeps only the high byte of 16-bit RGB(A) PNG samples and clips 16-bit grey (`I;16`)
//! to 255 when converting to RGB; both are reproduced. EXIF orientation is not applied
//! (`Image.open` and the processors do not; `transformers.image_utils.load_image` does, and also
//! drops alpha instead of compositing: see docs/vision.md).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits};

use super::error::VisionError;

/// Pillow's `MAX_IMAGE_PIXELS` (its decompression-bomb warning threshold); larger images are
/// refused rather than decoded.
pub const MAX_PIXELS: u64 = 89_478_485;
/// No side longer than this (also bounds the decoders' allocations).
pub const MAX_SIDE: u32 = 32_768;
/// Files longer than this are not read at all.
const MAX_FILE_BYTES: u64 = 512 << 20;

/// An RGB image, 8 bits per sample, rows top to bottom, pixels interleaved (`[h][w][3]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage {
    /// An image of one colour.
    pub fn filled(width: usize, height: usize, rgb: [u8; 3]) -> Self {
        let mut data = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            data.extend_from_slice(&rgb);
        }
        Self {
            width,
            height,
            data,
        }
    }

    /// Wraps interleaved RGB bytes; the length must be `width * height * 3`.
    pub fn from_raw(width: usize, height: usize, data: Vec<u8>) -> Result<Self, VisionError> {
        if data.len() != width * height * 3 {
            return Err(VisionError::Config(format!(
                "RGB buffer of {} bytes for a {width} x {height} image",
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }
}

/// What becomes of transparency when an image is made RGB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlphaMode {
    /// transformers' processors: composite onto opaque white.
    CompositeOnWhite,
    /// The original LLaVA and llama.cpp: drop the alpha channel.
    Drop,
}

/// A decoded image and where it came from (for messages and caches): 8-bit RGBA, rows top to
/// bottom.
#[derive(Clone, Debug)]
pub struct DecodedImage {
    pub source: PathBuf,
    pub width: usize,
    pub height: usize,
    /// Whether the file had transparency (an alpha channel, tRNS or a transparent index).
    pub has_alpha: bool,
    rgba: Vec<u8>,
}

impl DecodedImage {
    /// Reads and decodes an image file. Every failure names the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, VisionError> {
        let path = path.as_ref();
        let io = |source| VisionError::Io {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_FILE_BYTES {
            return Err(VisionError::Unsupported {
                path: path.to_path_buf(),
                detail: format!("file of {len} bytes, more than {MAX_FILE_BYTES}"),
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::from_bytes(path, &bytes)
    }

    /// Decodes an image held in memory; `source` names it in errors.
    pub fn from_bytes(source: impl AsRef<Path>, bytes: &[u8]) -> Result<Self, VisionError> {
        let source = source.as_ref().to_path_buf();
        let image = decode_dynamic(&source, bytes)?;
        let (width, height) = (image.width() as usize, image.height() as usize);
        let has_alpha = image.color().has_alpha();
        let rgba = to_rgba_like_pillow(&image);
        Ok(Self {
            source,
            width,
            height,
            has_alpha,
            rgba,
        })
    }

    /// The RGB image, transparency handled as `alpha` says.
    pub fn to_rgb(&self, alpha: AlphaMode) -> RgbImage {
        let mut data = Vec::with_capacity(self.width * self.height * 3);
        for p in self.rgba.chunks_exact(4) {
            if alpha == AlphaMode::CompositeOnWhite && self.has_alpha {
                data.extend_from_slice(&composite_on_white(p[0], p[1], p[2], p[3]));
            } else {
                data.extend_from_slice(&p[..3]);
            }
        }
        RgbImage {
            width: self.width,
            height: self.height,
            data,
        }
    }
}

fn decode_dynamic(path: &Path, bytes: &[u8]) -> Result<DynamicImage, VisionError> {
    let image_err = |e: ImageError| classify(path, e);
    if bytes.is_empty() {
        return Err(VisionError::Corrupt {
            path: path.to_path_buf(),
            detail: "empty file".into(),
        });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| VisionError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if reader.format().is_none() {
        return Err(VisionError::Unsupported {
            path: path.to_path_buf(),
            detail: "not a JPEG, PNG, WebP, BMP or GIF file".into(),
        });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    // The decoded image at 16 bits x 4 channels, plus the decoders' working buffers.
    limits.max_alloc = Some(MAX_PIXELS * 8 + (64 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(image_err)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(VisionError::Empty {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS || width > MAX_SIDE || height > MAX_SIDE {
        return Err(too_large(path, width, height));
    }
    DynamicImage::from_decoder(decoder).map_err(image_err)
}

fn too_large(path: &Path, width: u32, height: u32) -> VisionError {
    VisionError::TooLarge {
        path: path.to_path_buf(),
        width,
        height,
        max_pixels: MAX_PIXELS,
        max_side: MAX_SIDE,
    }
}

fn classify(path: &Path, e: ImageError) -> VisionError {
    let path = path.to_path_buf();
    match e {
        ImageError::Unsupported(u) => VisionError::Unsupported {
            path,
            detail: u.to_string(),
        },
        ImageError::Limits(l) => VisionError::Unsupported {
            path,
            detail: format!("{l} (limit: {MAX_PIXELS} pixels, {MAX_SIDE} per side)"),
        },
        ImageError::IoError(source) if source.kind() != std::io::ErrorKind::UnexpectedEof => {
            VisionError::Io { path, source }
        }
        other => VisionError::Corrupt {
            path,
            detail: other.to_string(),
        },
    }
}

/// Pillow's `alpha_composite(white, rgba)` for one pixel (AlphaComposite.c, PRECISION_BITS 7),
/// with the destination opaque white as transformers' `convert_to_rgb` makes it.
fn composite_on_white(r: u8, g: u8, b: u8, a: u8) -> [u8; 3] {
    if a == 0 {
        return [255, 255, 255];
    }
    const PRECISION_BITS: u32 = 7;
    let shift_div_255 = |v: u32| ((v >> 8) + v) >> 8;
    let (sa, da) = (u32::from(a), 255u32);
    let blend = da * (255 - sa);
    let outa255 = sa * 255 + blend;
    let coef1 = sa * 255 * 255 * (1 << PRECISION_BITS) / outa255;
    let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
    let channel = |s: u8| {
        let tmp = u32::from(s) * coef1 + 255 * coef2;
        (shift_div_255(tmp + (0x80 << PRECISION_BITS)) >> PRECISION_BITS) as u8
    };
    [channel(r), channel(g), channel(b)]
}

/// 8-bit RGBA with Pillow's sample conversions: grey replicated; 16-bit RGB(A) and grey+alpha
/// PNG samples keep their high byte (Pillow's "RGB;16B"/"RGBA;16B"/"LA;16B" unpackers); 16-bit
/// grey opens as Pillow's "I;16", whose conversion to RGB clips at 255.
fn to_rgba_like_pillow(image: &DynamicImage) -> Vec<u8> {
    let n = image.width() as usize * image.height() as usize;
    let mut out = Vec::with_capacity(n * 4);
    let hi = |v: u16| (v >> 8) as u8;
    match image {
        DynamicImage::ImageRgb8(im) => {
            for p in im.as_raw().chunks_exact(3) {
                out.extend_from_slice(&[p[0], p[1], p[2], 255]);
            }
        }
        DynamicImage::ImageRgba8(im) => out.extend_from_slice(im.as_raw()),
        DynamicImage::ImageLuma8(im) => {
            for &v in im.as_raw() {
                out.extend_from_slice(&[v, v, v, 255]);
            }
        }
        DynamicImage::ImageLumaA8(im) => {
            for p in im.as_raw().chunks_exact(2) {
                out.extend_from_slice(&[p[0], p[0], p[0], p[1]]);
            }
        }
        DynamicImage::ImageRgb16(im) => {
            for p in im.as_raw().chunks_exact(3) {
                out.extend_from_slice(&[hi(p[0]), hi(p[1]), hi(p[2]), 255]);
            }
        }
        DynamicImage::ImageRgba16(im) => out.extend(im.as_raw().iter().map(|&v| hi(v))),
        DynamicImage::ImageLumaA16(im) => {
            for p in im.as_raw().chunks_exact(2) {
                let v = hi(p[0]);
                out.extend_from_slice(&[v, v, v, hi(p[1])]);
            }
        }
        DynamicImage::ImageLuma16(im) => {
            for &v in im.as_raw() {
                let v = v.min(255) as u8;
                out.extend_from_slice(&[v, v, v, 255]);
            }
        }
        // No enabled decoder produces other layouts; convert generically.
        other => out.extend_from_slice(other.to_rgba8().as_raw()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_matches_pillow_corner_cases() {
        // Opaque keeps the colour; transparent gives white; half alpha blends with rounding.
        assert_eq!(composite_on_white(10, 20, 30, 255), [10, 20, 30]);
        assert_eq!(composite_on_white(10, 20, 30, 0), [255, 255, 255]);
        // Pillow: alpha_composite(white, LA(10, 128)) -> 132 (checked with Pillow 13).
        assert_eq!(composite_on_white(10, 10, 10, 128), [132, 132, 132]);
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let err = DecodedImage::from_bytes("x.png", b"definitely not an image").unwrap_err();
        assert!(err.to_string().contains("x.png"), "{err}");
        let err = DecodedImage::from_bytes("e.jpg", b"").unwrap_err();
        assert!(err.to_string().contains("e.jpg"), "{err}");
    }
}
