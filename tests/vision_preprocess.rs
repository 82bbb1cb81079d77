//! Image preprocessing against Pillow and transformers (PIL backend), bit for bit.
//!
//! References: tests/fixtures/preprocess/, made by tools/make_preprocess_refs.py (see its header).

use std::path::{Path, PathBuf};

use llava::vision::anyres::{AnyresLayout, Resolution};
use llava::vision::resize::resize_bicubic;
use llava::vision::{
    AlphaMode, DecodedImage, ImageMode, PreprocessConfig, RgbImage, VisionError, preprocess,
};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess")
}

fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(name)).expect("reference json");
    serde_json::from_str(&text).expect("valid json")
}

fn blob(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).expect("reference blob")
}

fn fnv1a64(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn xorshift_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut state = (seed.wrapping_mul(2654435761).wrapping_add(12345) & 0xffff_ffff) as u32;
    if state == 0 {
        state = 1;
    }
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

/// The generator of tools/make_preprocess_refs.py (`pattern`).
fn pattern(seed: u64, w: usize, h: usize, kind: &str) -> RgbImage {
    let data = match kind {
        "noise" => xorshift_bytes(seed, w * h * 3),
        "blocks" => {
            let (bw, bh) = (w.div_ceil(5), h.div_ceil(7));
            let cells = xorshift_bytes(seed, bw * bh * 3);
            let mut d = Vec::with_capacity(w * h * 3);
            for y in 0..h {
                for x in 0..w {
                    let at = ((y / 7) * bw + x / 5) * 3;
                    d.extend_from_slice(&cells[at..at + 3]);
                }
            }
            d
        }
        "smooth" => {
            let noise = xorshift_bytes(seed, w * h * 3);
            let mut d = Vec::with_capacity(w * h * 3);
            for y in 0..h {
                for x in 0..w {
                    for c in 0..3 {
                        let n = noise[(y * w + x) * 3 + c] as usize;
                        let v =
                            x * 255 / (w - 1).max(1) + y * 97 / (h - 1).max(1) + c * 40 + n / 16;
                        d.push((v % 256) as u8);
                    }
                }
            }
            d
        }
        other => panic!("unknown pattern {other}"),
    };
    RgbImage::from_raw(w, h, data).unwrap()
}

fn us(v: &Value) -> usize {
    v.as_u64().expect("integer") as usize
}

#[test]
fn bicubic_resize_equals_pillow() {
    let refs = json("resize.json");
    let stored = blob("resize.bin");
    let cases = refs["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let (iw, ih, ow, oh) = (
            us(&case["in_w"]),
            us(&case["in_h"]),
            us(&case["out_w"]),
            us(&case["out_h"]),
        );
        let src = pattern(
            case["seed"].as_u64().unwrap(),
            iw,
            ih,
            case["kind"].as_str().unwrap(),
        );
        let out = resize_bicubic(&src, ow, oh).unwrap();
        let what = format!("{iw}x{ih} -> {ow}x{oh} ({})", case["kind"]);
        if let Some(offset) = case["offset"].as_u64() {
            let want = &stored[offset as usize..offset as usize + ow * oh * 3];
            let diffs = out.data.iter().zip(want).filter(|(a, b)| a != b).count();
            let max = out
                .data
                .iter()
                .zip(want)
                .map(|(&a, &b)| a.abs_diff(b))
                .max()
                .unwrap();
            assert_eq!(
                diffs, 0,
                "{what}: {diffs} samples differ from Pillow, max by {max}"
            );
        }
        assert_eq!(
            fnv1a64(&out.data),
            case["fnv64"].as_str().unwrap(),
            "{what}: hash"
        );
    }
}

fn decode_ref(name: &str, key: &str) -> (Value, Vec<u8>) {
    let refs = json("decode.json");
    let all = blob("decode.bin");
    let r = refs["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["file"] == name)
        .unwrap()
        .clone();
    let (w, h, off) = (us(&r["width"]), us(&r["height"]), us(&r[key]["offset"]));
    let bytes = all[off..off + w * h * 3].to_vec();
    (r, bytes)
}

#[test]
fn lossless_formats_decode_to_transformers_rgb_exactly() {
    // PNG (RGB, grey, grey+alpha, RGBA, palette, palette + tRNS, 16-bit grey), GIF, BMP and
    // lossless WebP: the RGB that transformers' convert_to_rgb makes of Pillow's image.
    for name in [
        "rgb_45x30.png",
        "tall_20x50.png",
        "rgb_45x30.bmp",
        "rgb_45x30.webp",
        "rgba_33x21.png",
        "la_19x12.png",
        "grey_19x12.png",
        "palette_45x30.png",
        "palette_trns_45x30.png",
        "palette_45x30.gif",
        "grey16_11x7.png",
    ] {
        let image = DecodedImage::open(dir().join("images").join(name)).unwrap();
        for (key, mode) in [
            ("composited", AlphaMode::CompositeOnWhite),
            ("dropped", AlphaMode::Drop),
        ] {
            let (r, want) = decode_ref(name, key);
            let got = image.to_rgb(mode);
            assert_eq!(
                (got.width, got.height),
                (us(&r["width"]), us(&r["height"])),
                "{name}"
            );
            let diffs = got.data.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(
                diffs, 0,
                "{name} {key}: {diffs} samples differ from the reference RGB"
            );
        }
    }
}

/// JPEG: the `image` crate decodes with zune-jpeg, Pillow with libjpeg-turbo; their IDCT and
/// colour-conversion rounding differ by a unit or two, and zune-jpeg's chroma upsampling of the
/// last row of a 4:2:0 image (an odd number of chroma rows) reads the MCU padding where
/// libjpeg-turbo replicates the last row. The bounds are the measured differences
/// (docs/vision.md).
#[test]
fn jpeg_decodes_within_measured_bounds_of_libjpeg_turbo() {
    // (file, max |diff| above the last row, max |diff| overall, mean |diff| overall)
    for (name, interior_max, max_allowed, mean_allowed) in [
        ("rgb_45x30.jpg", 2u8, 2u8, 0.03f64),
        ("rgb_45x30_420.jpg", 3, 12, 0.36),
    ] {
        let (_, want) = decode_ref(name, "composited");
        let got = DecodedImage::open(dir().join("images").join(name))
            .unwrap()
            .to_rgb(AlphaMode::CompositeOnWhite);
        let row = got.width * 3;
        let diff =
            |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(&x, &y)| x.abs_diff(y)).max().unwrap();
        let interior = diff(&got.data[..want.len() - row], &want[..want.len() - row]);
        let max = diff(&got.data, &want);
        let mean = got
            .data
            .iter()
            .zip(&want)
            .map(|(&a, &b)| f64::from(a.abs_diff(b)))
            .sum::<f64>()
            / want.len() as f64;
        let differ = got.data.iter().zip(&want).filter(|(a, b)| a != b).count();
        eprintln!(
            "{name}: max |diff| {max} ({interior} above the last row), mean {mean:.4}, \
             {differ}/{} samples differ",
            want.len()
        );
        assert!(
            interior <= interior_max && max <= max_allowed && mean <= mean_allowed,
            "{name}: max {max}, interior {interior}, mean {mean}"
        );
    }
}

fn config(size: usize, mode: &str, pinpoints: &Value, refs: &Value) -> PreprocessConfig {
    let arr3 = |v: &Value| -> [f32; 3] {
        let a = v.as_array().unwrap();
        [0, 1, 2].map(|i| a[i].as_f64().unwrap() as f32)
    };
    let mode = match mode {
        "crop" => ImageMode::Crop,
        "pad" => ImageMode::Pad,
        "anyres" => ImageMode::Anyres {
            pinpoints: parse_pinpoints(pinpoints),
        },
        other => panic!("mode {other}"),
    };
    PreprocessConfig {
        image_size: size,
        patch_size: 14,
        mean: arr3(&refs["mean"]),
        std: arr3(&refs["std"]),
        alpha: if mode == ImageMode::Pad {
            AlphaMode::Drop
        } else {
            AlphaMode::CompositeOnWhite
        },
        mode,
    }
}

fn parse_pinpoints(v: &Value) -> Vec<Resolution> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| Resolution {
            height: us(&p[0]),
            width: us(&p[1]),
        })
        .collect()
}

#[test]
fn pixel_values_equal_transformers_for_crop_pad_and_anyres() {
    let refs = json("pixels.json");
    let stored = blob("pixels.bin");
    let cases = refs["cases"].as_array().unwrap();
    for case in cases {
        let size = us(&case["size"]);
        let mode = case["mode"].as_str().unwrap();
        let pinpoints = if size == 336 {
            &refs["real_pinpoints"]
        } else {
            &refs["tiny_pinpoints"]
        };
        let cfg = config(size, mode, pinpoints, &refs);
        let src = &case["source"];
        let image = if src[0] == "gen" {
            pattern(
                src[4].as_u64().unwrap(),
                us(&src[1]),
                us(&src[2]),
                src[3].as_str().unwrap(),
            )
        } else {
            DecodedImage::open(dir().join("images").join(src[1].as_str().unwrap()))
                .unwrap()
                .to_rgb(cfg.alpha)
        };
        let pv = preprocess(&image, &cfg).unwrap();
        let shape: Vec<usize> = case["shape"].as_array().unwrap().iter().map(us).collect();
        let what = format!("{src} {mode} @{size}");
        assert_eq!(vec![pv.n_tiles, 3, size, size], shape, "{what}: shape");
        let bytes: Vec<u8> = pv.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        if let Some(off) = case["offset"].as_u64() {
            let want = &stored[off as usize..off as usize + bytes.len()];
            let want: Vec<f32> = want
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let differ = pv
                .data
                .iter()
                .zip(&want)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            let max = pv
                .data
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert_eq!(differ, 0, "{what}: {differ} values differ, max by {max}");
        }
        assert_eq!(
            fnv1a64(&bytes),
            case["fnv64"].as_str().unwrap(),
            "{what}: hash"
        );
    }
}

#[test]
fn anyres_layouts_and_token_counts_equal_transformers() {
    let refs = json("anyres.json");
    let mut max_tokens = 0;
    for label in ["real", "tiny"] {
        let set = &refs[label];
        let (size, patch) = (us(&set["image_size"]), us(&set["patch_size"]));
        let pinpoints = parse_pinpoints(&set["pinpoints"]);
        let cases = set["cases"].as_array().unwrap();
        assert!(cases.len() > 300);
        for c in cases {
            let (h, w) = (us(&c["h"]), us(&c["w"]));
            let l = AnyresLayout::new(h, w, &pinpoints, size, patch).unwrap();
            let what = format!("{label} {w}x{h}");
            assert_eq!(
                [l.grid.height, l.grid.width],
                [us(&c["grid"][0]), us(&c["grid"][1])],
                "{what}"
            );
            assert_eq!(
                [l.resized.0, l.resized.1],
                [us(&c["resized"][0]), us(&c["resized"][1])],
                "{what}"
            );
            assert_eq!(
                [l.pad_top, l.pad_left],
                [us(&c["pad"][0]), us(&c["pad"][2])],
                "{what}"
            );
            assert_eq!(l.n_tokens(), us(&c["tokens"]), "{what}: tokens");
            if label == "real" {
                max_tokens = max_tokens.max(l.n_tokens());
            }
        }
    }
    assert_eq!(max_tokens, 2928);
}

#[test]
fn bad_images_get_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let png = std::fs::read(dir().join("images/rgb_45x30.png")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.png", vec![]),
        (
            "garbage.jpg",
            b"this is not an image at all, just text".to_vec(),
        ),
        ("truncated.png", png[..png.len() / 2].to_vec()),
        ("corrupt.png", {
            let mut c = png.clone();
            for b in &mut c[60..200] {
                *b ^= 0x5a;
            }
            c
        }),
        ("header_only.jpg", vec![0xff, 0xd8, 0xff, 0xe0, 0, 16]),
        ("image.tiff", b"II*\0\x08\0\0\0".to_vec()),
        ("bomb.png", png_header(100_000, 100_000)),
        ("zero.png", png_header(0, 10)),
    ];
    for (name, bytes) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let err = DecodedImage::open(&path).expect_err(name);
        let msg = err.to_string();
        assert!(msg.contains(name), "{name}: {msg}");
        if name == "bomb.png" {
            assert!(
                matches!(
                    err,
                    VisionError::TooLarge { .. } | VisionError::Unsupported { .. }
                ),
                "{msg}"
            );
        }
    }
    let missing = tmp.path().join("missing.png");
    assert!(
        DecodedImage::open(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.png")
    );
}

/// A PNG signature and IHDR chunk claiming the given size (with a valid CRC), then nothing.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
