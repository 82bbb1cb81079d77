//! The vision half against transformers' references (tests/fixtures/llava/*.ref): every fixture
//! with images is converted to an f32 mmproj with the converter's library entry point, then
//! for every image case: pixel values, CLIP features at the feature layer, the embeddings
//! spliced into the language model, and the image-token counts.

mod compare;
use compare::rel_err;

use std::path::{Path, PathBuf};

use llava::convert::{ConvertOptions, OutType, convert};
use llava::npy;
use llava::vision::{ClipModel, DecodedImage, PixelValues, preprocess_image};
use serde_json::Value;

const IMAGE_TOKEN: i32 = 32000;
const TOLERANCE: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Fixture {
    model: ClipModel,
    refs: PathBuf,
    cases: Vec<Value>,
    _dir: tempfile::TempDir,
}

fn load(name: &str, tower: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ConvertOptions::new(fixtures().join("llava").join(name), dir.path());
    options.outtype = OutType::F32;
    options.vision_tower = tower.map(|t| fixtures().join("llava").join(t));
    let out = convert(&options).unwrap_or_else(|e| panic!("converting {name}: {e}"));
    let model = ClipModel::open(&out.mmproj_path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let refs = fixtures().join("llava").join(format!("{name}.ref"));
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(refs.join("cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap().clone();
    Fixture {
        model,
        refs,
        cases,
        _dir: dir,
    }
}

fn read_f32(dir: &Path, case: &Value, key: &str) -> npy::NpyArray<f32> {
    let file = case["files"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}"));
    npy::read::<f32>(dir.join(file)).unwrap()
}

/// Per image of a case: its reference tiles (including any all-zero batching padding).
fn reference_tiles(fx: &Fixture, case: &Value, n_images: usize) -> Vec<Vec<f32>> {
    let pv = read_f32(&fx.refs, case, "pixel_values");
    let s = fx.model.hparams().image_size;
    let tile = 3 * s * s;
    let per_image = pv.data.len() / n_images;
    assert_eq!(per_image % tile, 0, "pixel_values of whole tiles");
    (0..n_images)
        .map(|i| pv.data[i * per_image..(i + 1) * per_image].to_vec())
        .collect()
}

struct Report {
    pixels_exact: bool,
    max_pixel_diff: f32,
    features: f64,
    embeds: f64,
}

fn check_case(fx: &Fixture, fixture: &str, case: &Value) -> Option<Report> {
    let images: Vec<&str> = case["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    if images.is_empty() {
        return None;
    }
    let name = case["name"].as_str().unwrap();
    let what = format!("{fixture}/{name}");
    let ref_tiles = reference_tiles(fx, case, images.len());
    let s = fx.model.hparams().image_size;
    let tile = 3 * s * s;
    let ids = npy::read::<i32>(fx.refs.join(case["files"]["input_ids"].as_str().unwrap())).unwrap();
    let n_image_ids = ids.data.iter().filter(|&&t| t == IMAGE_TOKEN).count();

    let mut report = Report {
        pixels_exact: true,
        max_pixel_diff: 0.0,
        features: 0.0,
        embeds: 0.0,
    };
    let (mut features, mut embeds) = (Vec::new(), Vec::new());
    let mut n_tokens = 0;
    for (i, path) in images.iter().enumerate() {
        let decoded = DecodedImage::open(fixtures().join(path)).unwrap();
        let ours = preprocess_image(&decoded, fx.model.preprocess_config()).unwrap();
        let want = &ref_tiles[i][..ours.n_tiles * tile];
        // Tiles past this image's own are the processor's batching padding: all zeros.
        assert!(
            ref_tiles[i][ours.n_tiles * tile..]
                .iter()
                .all(|&v| v == 0.0),
            "{what}: tile count"
        );
        let max = ours
            .data
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let exact = ours
            .data
            .iter()
            .zip(want)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        report.pixels_exact &= exact;
        report.max_pixel_diff = report.max_pixel_diff.max(max);
        if path.ends_with(".png") {
            assert!(
                exact,
                "{what}: {path}: pixel values differ from transformers' by up to {max}"
            );
        }
        assert_eq!(
            fx.model
                .n_image_tokens(decoded.height, decoded.width)
                .unwrap(),
            fx.model
                .preprocess_config()
                .n_tokens(decoded.height, decoded.width)
                .unwrap()
        );
        // The model is checked on the reference pixels (JPEG decoders differ; measured above).
        let pixels = PixelValues {
            data: want.to_vec(),
            ..ours
        };
        let encoded = fx.model.encode_pixels(pixels).unwrap();
        assert_eq!(
            encoded.embeddings.n_tokens,
            fx.model
                .n_image_tokens(decoded.height, decoded.width)
                .unwrap(),
            "{what}: token count"
        );
        n_tokens += encoded.embeddings.n_tokens;
        features.extend_from_slice(&encoded.image_features);
        embeds.extend_from_slice(&encoded.embeddings.data);
    }
    assert_eq!(
        n_tokens, n_image_ids,
        "{what}: image tokens vs the processor's placeholders"
    );
    assert_eq!(
        Some(n_tokens as u64),
        case["n_image_tokens"].as_u64(),
        "{what}: n_image_tokens"
    );
    let ref_features = read_f32(&fx.refs, case, "image_features");
    let ref_embeds = read_f32(&fx.refs, case, "image_embeds");
    report.features = rel_err(&features, &ref_features.data);
    report.embeds = rel_err(&embeds, &ref_embeds.data);
    eprintln!(
        "{what}: pixels {} (max |diff| {:.2e}), features {:.2e}, embeds {:.2e}, {n_tokens} tokens",
        if report.pixels_exact {
            "exact"
        } else {
            "differ"
        },
        report.max_pixel_diff,
        report.features,
        report.embeds
    );
    assert!(
        report.features < TOLERANCE,
        "{what}: image_features relative error {}",
        report.features
    );
    assert!(
        report.embeds < TOLERANCE,
        "{what}: image_embeds relative error {}",
        report.embeds
    );
    Some(report)
}

fn check_fixture(name: &str, tower: Option<&str>, image_cases: usize) {
    let fx = load(name, tower);
    let mut checked = 0;
    for case in &fx.cases {
        if check_case(&fx, name, case).is_some() {
            checked += 1;
        }
    }
    assert_eq!(checked, image_cases, "{name}: image cases checked");
}

#[test]
fn llava15_hf_crop() {
    check_fixture("llava15-hf", None, 3);
}

#[test]
fn llava15_original_pad() {
    check_fixture("llava15-orig", Some("llava15-orig-clip"), 3);
}

#[test]
fn next_mistral_anyres() {
    check_fixture("next-mistral-hf", None, 3);
}

#[test]
fn next_vicuna_anyres() {
    check_fixture("next-vicuna-hf", None, 2);
}

/// The full path from a JPEG file: our decoder (zune-jpeg) against Pillow's libjpeg-turbo,
/// measured through to the embeddings.
#[test]
fn jpeg_end_to_end_difference_is_small() {
    let fx = load("next-vicuna-hf", None);
    let case = fx
        .cases
        .iter()
        .find(|c| c["name"] == "square_jpeg")
        .expect("square_jpeg case");
    let path = case["images"][0].as_str().unwrap();
    let decoded = DecodedImage::open(fixtures().join(path)).unwrap();
    let encoded = fx.model.encode_image_full(&decoded).unwrap();
    let ref_tiles = reference_tiles(&fx, case, 1);
    let n = encoded.pixel_values.data.len();
    let max_px = encoded
        .pixel_values
        .data
        .iter()
        .zip(&ref_tiles[0][..n])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let embeds = rel_err(
        &encoded.embeddings.data,
        &read_f32(&fx.refs, case, "image_embeds").data,
    );
    eprintln!(
        "square_jpeg from our decoder: pixel values max |diff| {max_px:.4}, embeds rel {embeds:.2e}"
    );
    // ~2/255 of a sample, divided by std ~0.27: pixel values within 0.05; embeddings within 2%.
    assert!(
        max_px < 0.1 && embeds < 0.05,
        "pixels {max_px}, embeds {embeds}"
    );
}

/// `--image-aspect pad` on the llava-hf (crop) mmproj: the same weights as llava15-orig, so
/// its embeddings must be the original layout's references (pad, alpha dropped).
#[test]
fn image_aspect_override_pad_gives_the_original_layouts_embeddings() {
    use llava::vision::ImageMode;
    let mut fx = load("llava15-hf", None);
    let pad = fx.model.preprocess_config().with_mode(ImageMode::Pad);
    fx.model.set_preprocess_config(pad);
    let orig = fixtures().join("llava/llava15-orig.ref");
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(orig.join("cases.json")).unwrap()).unwrap();
    let mut n = 0;
    for case in cases["cases"].as_array().unwrap() {
        let Some(path) = case["images"].get(0).and_then(|p| p.as_str()) else {
            continue;
        };
        let image = DecodedImage::open(fixtures().join(path)).unwrap();
        let got = fx.model.encode_image(&image).unwrap();
        let want = read_f32(&orig, case, "image_embeds");
        let err = rel_err(&got.data, &want.data);
        assert!(err < TOLERANCE, "{}: {err}", case["name"]);
        n += 1;
    }
    assert_eq!(n, 3);
}
