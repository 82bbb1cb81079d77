//! mmproj files as llama.cpp writes them: its legacy LLaVA converter's output for the
//! llava15-orig fixture (tests/fixtures/llama.cpp/), the same file without
//! `clip.projector_type` (older converters did not write it), and broken variants.

mod compare;
use compare::rel_err;

use std::path::{Path, PathBuf};

use llava::gguf::{GgufFile, GgufValue, GgufWriter};
use llava::npy;
use llava::vision::{AlphaMode, ClipModel, DecodedImage, ImageMode, Projector};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn legacy() -> PathBuf {
    fixtures().join("llama.cpp/mmproj-llava15-orig-legacy-f16.gguf")
}

/// Copies `src` to `dst`, leaving out metadata `drop_key` and tensor `drop_tensor`, and
/// replacing the value of `set.0` by `set.1`.
fn rewrite(
    src: &Path,
    dst: &Path,
    drop_key: &str,
    drop_tensor: &str,
    set: Option<(&str, GgufValue)>,
) {
    let file = GgufFile::open(src).unwrap();
    let mut w = GgufWriter::new(dst);
    for e in file.metadata() {
        if e.key == drop_key {
            continue;
        }
        match &set {
            Some((k, v)) if *k == e.key => w.add_metadata(e.key.clone(), v.clone()).unwrap(),
            _ => w.add_metadata(e.key.clone(), e.value.clone()).unwrap(),
        }
    }
    let tensors: Vec<_> = file
        .tensors()
        .iter()
        .filter(|t| t.name != drop_tensor)
        .cloned()
        .collect();
    for t in &tensors {
        w.add_tensor(t.name.clone(), &t.dims, t.ggml_type).unwrap();
    }
    let mut data = w.write_header().unwrap();
    for t in &tensors {
        let info = file.tensor(&t.name).unwrap();
        data.write_tensor(&t.name, file.tensor_data(info)).unwrap();
    }
    data.finish().unwrap();
}

/// Embeddings of every llava15-orig image case, in case order.
fn embed_cases(model: &ClipModel) -> Vec<(String, Vec<f32>, Vec<f32>)> {
    let refs = fixtures().join("llava/llava15-orig.ref");
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(refs.join("cases.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for case in cases["cases"].as_array().unwrap() {
        let images = case["images"].as_array().unwrap();
        if images.is_empty() {
            continue;
        }
        let mut embeds = Vec::new();
        for path in images {
            let image = DecodedImage::open(fixtures().join(path.as_str().unwrap())).unwrap();
            embeds.extend(model.encode_image(&image).unwrap().data);
        }
        let want =
            npy::read::<f32>(refs.join(case["files"]["image_embeds"].as_str().unwrap())).unwrap();
        out.push((case["name"].as_str().unwrap().to_owned(), embeds, want.data));
    }
    out
}

#[test]
fn llama_cpp_legacy_mmproj_loads_and_matches_the_reference() {
    let model = ClipModel::open(legacy()).unwrap();
    let h = model.hparams();
    assert_eq!(
        (h.image_size, h.patch_size, h.n_embd, h.n_blocks),
        (40, 8, 32, 2)
    );
    assert_eq!(h.projector, Projector::Mlp2xGelu);
    assert!(h.drop_class_token && !h.use_gelu);
    // No aspect key: llama.cpp (and the original LLaVA-1.5) pad to a square and drop alpha.
    assert_eq!(model.preprocess_config().mode, ImageMode::Pad);
    assert_eq!(model.preprocess_config().alpha, AlphaMode::Drop);
    let cases = embed_cases(&model);
    assert_eq!(cases.len(), 3);
    for (name, got, want) in &cases {
        let err = rel_err(got, want);
        eprintln!("llama.cpp legacy f16 mmproj, {name}: image_embeds relative error {err:.2e}");
        // F16 weights (the reference ran the f16-stored weights in f32; llama.cpp's converter
        // re-rounds the f32 CLIP tower and the position embeddings to f16).
        assert!(err < 2e-3, "{name}: {err}");
    }
}

#[test]
fn old_file_without_projector_type_reads_as_mlp() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.gguf");
    rewrite(&legacy(), &old, "clip.projector_type", "", None);
    let a = ClipModel::open(legacy()).unwrap();
    let b = ClipModel::open(&old).unwrap();
    assert_eq!(b.hparams().projector, Projector::Mlp2xGelu);
    let ea = embed_cases(&a);
    let eb = embed_cases(&b);
    for ((name, x, _), (_, y, _)) in ea.iter().zip(&eb) {
        assert_eq!(x, y, "{name}");
    }
}

type Breakage = (
    &'static str,
    &'static str,
    &'static str,
    Option<(&'static str, GgufValue)>,
    &'static str,
);

#[test]
fn broken_mmproj_files_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    // (file, key left out, tensor left out, key replaced, expected in the message)
    let cases: Vec<Breakage> = vec![
        ("no_q.gguf", "", "v.blk.1.attn_q.weight", None, "block 2"),
        ("no_mm0.gguf", "", "mm.0.weight", None, "mm.0.weight"),
        (
            "no_pos.gguf",
            "",
            "v.position_embd.weight",
            None,
            "v.position_embd.weight",
        ),
        (
            "no_size.gguf",
            "clip.vision.image_size",
            "",
            None,
            "clip.vision.image_size",
        ),
        (
            "proj.gguf",
            "",
            "",
            Some(("clip.projector_type", GgufValue::String("ldp".into()))),
            "ldp",
        ),
        (
            "heads.gguf",
            "",
            "",
            Some(("clip.vision.attention.head_count", GgufValue::U32(5))),
            "head_count",
        ),
        (
            "arch.gguf",
            "",
            "",
            Some(("general.architecture", GgufValue::String("llama".into()))),
            "general.architecture",
        ),
    ];
    for (name, drop_key, drop_tensor, set, expect) in cases {
        let path = dir.path().join(name);
        rewrite(&legacy(), &path, drop_key, drop_tensor, set);
        let err = match ClipModel::open(&path) {
            Ok(_) => panic!("{name} loaded"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(expect), "{name}: {err}");
        assert!(
            err.contains(name),
            "{name}: the message names the file: {err}"
        );
    }
}

#[test]
fn image_cache_encodes_a_file_once() {
    let model = ClipModel::open(legacy()).unwrap();
    let mut cache = llava::vision::ImageCache::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img.png");
    std::fs::copy(fixtures().join("images/wide-97x61.png"), &path).unwrap();
    let (a, cached_a) = cache.get_or_encode(&model, &path).unwrap();
    let (b, cached_b) = cache.get_or_encode(&model, &path).unwrap();
    assert!(!cached_a && cached_b && a == b && cache.len() == 1);
    // A different file at the same path is encoded again.
    std::fs::copy(fixtures().join("images/banner-150x40.png"), &path).unwrap();
    let (c, cached_c) = cache.get_or_encode(&model, &path).unwrap();
    assert!(!cached_c && c != a);
    assert!(
        cache
            .get_or_encode(&model, dir.path().join("missing.png"))
            .is_err()
    );
}
