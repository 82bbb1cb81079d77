//! Pillow's `Image.resize(size, Image.BICUBIC)` on 8-bit RGB, bit for bit.
//!
//! A transcription of Pillow's `libImaging/Resample.c` (`ImagingResample` with the bicubic
//! filter, a = -0.5) as of Pillow 13: separable, one pass into an 8-bit intermediate image (only
//! the rows or columns the second pass reads), then the other; the vertical pass goes first when
//! the height shrinks by more than twice as much as the width. Each output sample has its
//! own window of input samples; on downscaling the filter support is widened by the scale factor
//! (antialiasing). Coefficients are computed in f64, normalised to sum 1, then turned into
//! fixed point with 22 fractional bits (`PRECISION_BITS = 32 - 8 - 2`), rounded away from zero;
//! sums start at one half and are clipped to 0..=255 after the shift.
//!
//! The order of f64 operations follows the C exactly (Rust never contracts to FMA, and Pillow's
//! x86-64 wheels are built without FMA), so the coefficients are the same doubles.

use super::decode::RgbImage;
use super::error::VisionError;

const PRECISION_BITS: u32 = 32 - 8 - 2;
const BICUBIC_SUPPORT: f64 = 2.0;

fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = if x < 0.0 { -x } else { x };
    if x < 1.0 {
        return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    }
    if x < 2.0 {
        return (((x - 5.0) * x + 8.0) * x - 4.0) * A;
    }
    0.0
}

/// The fixed-point filter taps of one axis: for each output index, the first input index and the
/// coefficients of the input samples from there.
struct AxisCoeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    taps: Vec<i32>,
}

impl AxisCoeffs {
    /// `precompute_coeffs` + `normalize_coeffs_8bpc` for the whole input range (box 0..in_size),
    /// for the output indices `out_range` of an axis of `out_size` samples.
    fn new(in_size: usize, out_size: usize, out_range: std::ops::Range<usize>) -> Self {
        // The box is (0, in_size) as floats; in1 - in0 is exact for any real image size.
        let scale = in_size as f64 / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = BICUBIC_SUPPORT * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv_filterscale = 1.0 / filterscale;
        let mut bounds = Vec::with_capacity(out_range.len());
        let mut taps = vec![0i32; out_range.len() * ksize];
        let mut k = vec![0f64; ksize];
        for (row, xx) in out_range.enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) truncates toward zero; negative values are clamped to 0 anyway.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let count = xmax.saturating_sub(xmin);
            let mut ww = 0.0f64;
            for (x, kx) in k.iter_mut().enumerate().take(count) {
                let w = bicubic_filter(((x + xmin) as f64 - center + 0.5) * inv_filterscale);
                *kx = w;
                ww += w;
            }
            let out = &mut taps[row * ksize..(row + 1) * ksize];
            for (x, kx) in k.iter().enumerate().take(count) {
                let v = if ww != 0.0 { kx / ww } else { *kx };
                let fixed = v * f64::from(1u32 << PRECISION_BITS);
                out[x] = if v < 0.0 {
                    (-0.5 + fixed) as i32
                } else {
                    (0.5 + fixed) as i32
                };
            }
            bounds.push((xmin, count));
        }
        Self {
            ksize,
            bounds,
            taps,
        }
    }

    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let (start, count) = self.bounds[i];
        (start, &self.taps[i * self.ksize..i * self.ksize + count])
    }
}

#[inline]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes to `out_width` x `out_height` exactly as Pillow's bicubic `Image.resize` does.
pub fn resize_bicubic(
    image: &RgbImage,
    out_width: usize,
    out_height: usize,
) -> Result<RgbImage, VisionError> {
    resize_bicubic_window(image, out_width, out_height, 0..out_width, 0..out_height)
}

/// The part `xs` x `ys` of Pillow's bicubic resize to `out_width` x `out_height`, without
/// computing the rest: every output sample depends only on its own input window, so a crop of
/// the full resize equals this. Used where transformers resizes then centre-crops.
pub fn resize_bicubic_window(
    image: &RgbImage,
    out_width: usize,
    out_height: usize,
    xs: std::ops::Range<usize>,
    ys: std::ops::Range<usize>,
) -> Result<RgbImage, VisionError> {
    if image.width == 0 || image.height == 0 || out_width == 0 || out_height == 0 {
        return Err(VisionError::Config(format!(
            "cannot resize a {} x {} image to {out_width} x {out_height}",
            image.width, image.height
        )));
    }
    if xs.end > out_width || ys.end > out_height || xs.is_empty() || ys.is_empty() {
        return Err(VisionError::Config(format!(
            "resize window {xs:?} x {ys:?} outside {out_width} x {out_height}"
        )));
    }
    let (win_w, win_h) = (xs.len(), ys.len());
    // Pillow returns a copy when the size does not change (and the filter is the identity there).
    if out_width == image.width && out_height == image.height {
        let mut data = Vec::with_capacity(win_w * win_h * 3);
        for y in ys {
            let row = &image.data[(y * image.width + xs.start) * 3..(y * image.width + xs.end) * 3];
            data.extend_from_slice(row);
        }
        return Ok(RgbImage {
            width: win_w,
            height: win_h,
            data,
        });
    }

    let vert = AxisCoeffs::new(image.height, out_height, ys);
    let horiz = AxisCoeffs::new(image.width, out_width, xs);
    // Pillow 13 (`ImagingResampleInner`): "if height is being scaled down more than twice the
    // amount the width is, run the vertical pass first". The order changes the rounding of the
    // 8-bit intermediate; Pillow 12 and older always ran the horizontal pass first.
    let (dh, dw) = (
        image.height as i64 - out_height as i64,
        image.width as i64 - out_width as i64,
    );
    let vertical_first = dh > 0 && dh > dw * 2;
    let plane = Plane {
        data: &image.data,
        width: image.width,
        x0: 0,
        y0: 0,
    };
    let data = if vertical_first {
        let (c0, c1) = horiz.input_span();
        let temp = vertical_pass(&plane, &vert, c0..c1);
        let temp = Plane {
            data: &temp,
            width: c1 - c0,
            x0: c0,
            y0: 0,
        };
        horizontal_pass(&temp, &horiz, 0..win_h)
    } else {
        let (r0, r1) = vert.input_span();
        let temp = horizontal_pass(&plane, &horiz, r0..r1);
        let temp = Plane {
            data: &temp,
            width: win_w,
            x0: 0,
            y0: r0,
        };
        vertical_pass(&temp, &vert, 0..win_w)
    };
    Ok(RgbImage {
        width: win_w,
        height: win_h,
        data,
    })
}

/// Part of an image: `data` holds rows of `width` pixels whose first pixel is input column `x0`
/// and whose first row is input row `y0`.
struct Plane<'a> {
    data: &'a [u8],
    width: usize,
    x0: usize,
    y0: usize,
}

impl AxisCoeffs {
    /// The input indices any output of this axis reads.
    fn input_span(&self) -> (usize, usize) {
        let first = self.bounds.iter().map(|b| b.0).min().unwrap_or(0);
        let last = self.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(0);
        (first, last)
    }
}

/// `_ImagingResampleHorizontal_8bpc` over the plane's rows `rows` (indices into the plane).
fn horizontal_pass(src: &Plane, horiz: &AxisCoeffs, rows: std::ops::Range<usize>) -> Vec<u8> {
    let out_w = horiz.bounds.len();
    let mut out = vec![0u8; rows.len() * out_w * 3];
    for (oy, y) in rows.enumerate() {
        let line = &src.data[(y - src.y0) * src.width * 3..(y - src.y0 + 1) * src.width * 3];
        let dst = &mut out[oy * out_w * 3..(oy + 1) * out_w * 3];
        for (xx, px) in dst.chunks_exact_mut(3).enumerate() {
            let (start, k) = horiz.taps(xx);
            let mut ss = [1i32 << (PRECISION_BITS - 1); 3];
            for (x, &kx) in k.iter().enumerate() {
                let at = (start + x - src.x0) * 3;
                ss[0] += i32::from(line[at]) * kx;
                ss[1] += i32::from(line[at + 1]) * kx;
                ss[2] += i32::from(line[at + 2]) * kx;
            }
            px.copy_from_slice(&ss.map(clip8));
        }
    }
    out
}

/// `_ImagingResampleVertical_8bpc` for the plane's columns `cols` (indices into the plane).
fn vertical_pass(src: &Plane, vert: &AxisCoeffs, cols: std::ops::Range<usize>) -> Vec<u8> {
    let out_h = vert.bounds.len();
    let out_w = cols.len();
    let mut out = vec![0u8; out_h * out_w * 3];
    for yy in 0..out_h {
        let (start, k) = vert.taps(yy);
        let dst = &mut out[yy * out_w * 3..(yy + 1) * out_w * 3];
        for (px, x) in dst.chunks_exact_mut(3).zip(cols.clone()) {
            let mut ss = [1i32 << (PRECISION_BITS - 1); 3];
            for (y, &ky) in k.iter().enumerate() {
                let at = ((start + y - src.y0) * src.width + x) * 3;
                ss[0] += i32::from(src.data[at]) * ky;
                ss[1] += i32::from(src.data[at + 1]) * ky;
                ss[2] += i32::from(src.data[at + 2]) * ky;
            }
            px.copy_from_slice(&ss.map(clip8));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_is_keys_cubic_with_a_minus_half() {
        assert_eq!(bicubic_filter(0.0), 1.0);
        assert_eq!(bicubic_filter(1.0), 0.0);
        assert_eq!(bicubic_filter(2.0), 0.0);
        assert_eq!(bicubic_filter(0.5), 0.5625);
        assert_eq!(bicubic_filter(-1.5), -0.0625);
    }

    #[test]
    fn window_equals_crop_of_full_resize() {
        let (w, h) = (37, 23);
        let data = (0..w * h * 3).map(|i| ((i * 7919) % 256) as u8).collect();
        let image = RgbImage {
            width: w,
            height: h,
            data,
        };
        let full = resize_bicubic(&image, 50, 11).unwrap();
        let win = resize_bicubic_window(&image, 50, 11, 7..40, 2..9).unwrap();
        for y in 0..7 {
            let a = &full.data[((y + 2) * 50 + 7) * 3..((y + 2) * 50 + 40) * 3];
            assert_eq!(a, &win.data[y * 33 * 3..(y + 1) * 33 * 3]);
        }
    }

    #[test]
    fn same_size_is_a_copy_and_zero_size_an_error() {
        let image = RgbImage::filled(3, 2, [1, 2, 3]);
        assert_eq!(resize_bicubic(&image, 3, 2).unwrap(), image);
        assert!(resize_bicubic(&image, 0, 2).is_err());
    }
}
