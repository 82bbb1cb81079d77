//! llava-convert on the committed LLaVA fixtures (tests/fixtures/llava, made by
//! tools/make_fixtures.py with transformers): every fixture converts to every output type; both
//! files carry llama.cpp's keys and exactly the tensor names llama.cpp expects
//! (../shared/docs/gguf-llava.md); gguf-py reads them, and every tensor is bit-identical to the
//! checkpoint converted to its type, with q/k permuted as llama.cpp's converter does
//! (tools/convert_crosscheck.py, an independent Python reader); the original layout (.bin +
//! separate CLIP) gives the same tensors as the llava-hf layout of the same weights.
//!
//! Needs LLAVA_PYTHON with `gguf`, `numpy` and `sentencepiece` (tools/test.sh).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{crate_root, python, temp_dir};
use llava::GgmlType;
use llava::convert::{ConvertOptions, ConvertOutput, OutType, convert};
use llava::gguf::{GgufFile, GgufValue};
use serde_json::Value;

/// (fixture, vision tower directory for the original layout)
const FIXTURES: [(&str, Option<&str>); 4] = [
    ("llava15-hf", None),
    ("next-mistral-hf", None),
    ("next-vicuna-hf", None),
    ("llava15-orig", Some("llava15-orig-clip")),
];

fn fixture(name: &str) -> PathBuf {
    crate_root().join("tests/fixtures/llava").join(name)
}

fn run(name: &str, tower: Option<&str>, outtype: OutType, outdir: &Path) -> ConvertOutput {
    let mut options = ConvertOptions::new(fixture(name), outdir);
    options.outtype = outtype;
    options.vision_tower = tower.map(fixture);
    convert(&options).unwrap_or_else(|e| panic!("{name} {outtype}: {e}"))
}

fn config(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name).join("config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn u64_at(v: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_u64()
        .unwrap_or_else(|| panic!("config key {path:?}"))
}

/// llama.cpp's LLM tensor names for `n_layers` blocks.
fn expected_llm_names(n_layers: u64) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ["token_embd.weight", "output_norm.weight", "output.weight"]
        .map(String::from)
        .into();
    for i in 0..n_layers {
        for t in [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ] {
            names.insert(format!("blk.{i}.{t}.weight"));
        }
    }
    names
}

/// llama.cpp's LLaVA mmproj tensor names: `blocks` CLIP layers (the tower cut after the
/// feature layer), no post-layernorm, the mlp connector, and the NeXT newline.
fn expected_mmproj_names(blocks: u64, next: bool) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [
        "v.class_embd",
        "v.patch_embd.weight",
        "v.position_embd.weight",
        "v.pre_ln.weight",
        "v.pre_ln.bias",
        "mm.0.weight",
        "mm.0.bias",
        "mm.2.weight",
        "mm.2.bias",
    ]
    .map(String::from)
    .into();
    for i in 0..blocks {
        for t in [
            "attn_q", "attn_k", "attn_v", "attn_out", "ln1", "ln2", "ffn_down", "ffn_up",
        ] {
            names.insert(format!("v.blk.{i}.{t}.weight"));
            names.insert(format!("v.blk.{i}.{t}.bias"));
        }
    }
    if next {
        names.insert("model.image_newline".into());
    }
    names
}

fn names(file: &GgufFile) -> BTreeSet<String> {
    file.tensors().iter().map(|t| t.name.clone()).collect()
}

fn u32_key(file: &GgufFile, key: &str) -> u32 {
    match file.get(key) {
        Some(GgufValue::U32(v)) => *v,
        other => panic!("{key}: expected a u32, got {other:?}"),
    }
}

fn f32_key(file: &GgufFile, key: &str) -> f32 {
    match file.get(key) {
        Some(GgufValue::F32(v)) => *v,
        other => panic!("{key}: expected an f32, got {other:?}"),
    }
}

fn str_key<'a>(file: &'a GgufFile, key: &str) -> &'a str {
    file.get(key)
        .and_then(GgufValue::as_str)
        .unwrap_or_else(|| panic!("{key}: expected a string"))
}

fn bool_key(file: &GgufFile, key: &str) -> bool {
    match file.get(key) {
        Some(GgufValue::Bool(v)) => *v,
        other => panic!("{key}: expected a bool, got {other:?}"),
    }
}

/// The keys and types llama.cpp reads, with the values the config implies.
fn check_llm_keys(name: &str, llm: &GgufFile, outtype: OutType) {
    let cfg = config(name);
    let t = if cfg.get("text_config").is_some() {
        &cfg["text_config"]
    } else {
        &cfg
    };
    assert_eq!(str_key(llm, "general.architecture"), "llama");
    assert_eq!(str_key(llm, "general.name"), name);
    assert_eq!(u32_key(llm, "general.file_type"), outtype.file_type());
    assert_eq!(
        u64::from(u32_key(llm, "llama.block_count")),
        u64_at(t, &["num_hidden_layers"])
    );
    assert_eq!(
        u64::from(u32_key(llm, "llama.embedding_length")),
        u64_at(t, &["hidden_size"])
    );
    assert_eq!(
        u64::from(u32_key(llm, "llama.feed_forward_length")),
        u64_at(t, &["intermediate_size"])
    );
    let heads = u64_at(t, &["num_attention_heads"]);
    assert_eq!(u64::from(u32_key(llm, "llama.attention.head_count")), heads);
    assert_eq!(
        u64::from(u32_key(llm, "llama.attention.head_count_kv")),
        u64_at(t, &["num_key_value_heads"])
    );
    assert_eq!(
        u64::from(u32_key(llm, "llama.rope.dimension_count")),
        u64_at(t, &["hidden_size"]) / heads
    );
    assert_eq!(
        u64::from(u32_key(llm, "llama.context_length")),
        u64_at(t, &["max_position_embeddings"])
    );
    let theta = t["rope_theta"]
        .as_f64()
        .or(t["rope_parameters"]["rope_theta"].as_f64())
        .unwrap_or(10000.0); // transformers' default_theta
    assert_eq!(f32_key(llm, "llama.rope.freq_base"), theta as f32);
    assert_eq!(
        f32_key(llm, "llama.attention.layer_norm_rms_epsilon"),
        t["rms_norm_eps"].as_f64().unwrap() as f32
    );
    let vocab = u64_at(t, &["vocab_size"]);
    assert_eq!(u64::from(u32_key(llm, "llama.vocab_size")), vocab);
    let tokens = llm
        .get("tokenizer.ggml.tokens")
        .and_then(GgufValue::as_string_array)
        .unwrap();
    assert_eq!(tokens.len() as u64, vocab);
    assert_eq!(str_key(llm, "tokenizer.ggml.model"), "llama");
    for key in ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"] {
        assert!((u32_key(llm, key) as u64) < vocab);
    }
    assert!(bool_key(llm, "tokenizer.ggml.add_bos_token"));
    let token_embd = llm.tensor("token_embd.weight").unwrap();
    assert_eq!(token_embd.dims, vec![u64_at(t, &["hidden_size"]), vocab]);
    if outtype == OutType::Q8_0 {
        assert_eq!(u32_key(llm, "general.quantization_version"), 2);
    }
    // llava-hf: `<image>` is a control token at the configured index.
    if let Some(id) = cfg.get("image_token_index").and_then(Value::as_u64) {
        assert_eq!(tokens[id as usize], "<image>");
        assert_eq!(u32_key(llm, "llava.image_token_index") as u64, id);
        let types = llm
            .get("tokenizer.ggml.token_type")
            .and_then(GgufValue::as_i32_array)
            .unwrap();
        assert_eq!(types[id as usize], 3, "<image> is a CONTROL token");
    }
}

fn check_mmproj_keys(name: &str, mm: &GgufFile, outtype: OutType, tower: Option<&str>) {
    let cfg = config(name);
    let vision_cfg = match tower {
        Some(t) => config(t)["vision_config"].clone(),
        None => cfg["vision_config"].clone(),
    };
    let v = &vision_cfg;
    assert_eq!(str_key(mm, "general.architecture"), "clip");
    assert!(!bool_key(mm, "clip.has_text_encoder"));
    assert!(bool_key(mm, "clip.has_vision_encoder"));
    assert!(bool_key(mm, "clip.has_llava_projector"));
    assert_eq!(str_key(mm, "clip.projector_type"), "mlp");
    assert_eq!(u32_key(mm, "general.file_type"), outtype.file_type());
    for (key, cfg_key) in [
        ("clip.vision.image_size", "image_size"),
        ("clip.vision.patch_size", "patch_size"),
        ("clip.vision.embedding_length", "hidden_size"),
        ("clip.vision.feed_forward_length", "intermediate_size"),
        ("clip.vision.attention.head_count", "num_attention_heads"),
        ("clip.vision.projection_dim", "projection_dim"),
    ] {
        assert_eq!(u64::from(u32_key(mm, key)), u64_at(v, &[cfg_key]), "{key}");
    }
    assert_eq!(
        u64::from(u32_key(mm, "clip.vision.block_count")),
        u64_at(v, &["num_hidden_layers"]) - 1,
        "feature layer -2: the last layer is dropped"
    );
    assert_eq!(
        f32_key(mm, "clip.vision.attention.layer_norm_epsilon"),
        1e-5
    );
    assert_eq!(
        mm.get("clip.vision.image_mean")
            .and_then(GgufValue::as_f32_array)
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        mm.get("clip.vision.image_std")
            .and_then(GgufValue::as_f32_array)
            .unwrap()
            .len(),
        3
    );
    assert_eq!(bool_key(mm, "clip.use_gelu"), v["hidden_act"] == "gelu");
    for t in mm.tensors() {
        if t.dims.len() == 1 {
            assert_eq!(t.ggml_type, GgmlType::F32, "{} stays F32", t.name);
        }
        if t.name == "v.patch_embd.weight" || t.name == "v.position_embd.weight" {
            let want = if outtype == OutType::F32 {
                GgmlType::F32
            } else {
                GgmlType::F16
            };
            assert_eq!(t.ggml_type, want, "{}", t.name);
        }
    }
    let next = cfg["architectures"][0] == "LlavaNextForConditionalGeneration";
    if next {
        let flat = mm
            .get("clip.vision.image_grid_pinpoints")
            .and_then(GgufValue::as_i32_array)
            .unwrap();
        let want: Vec<i32> = cfg["image_grid_pinpoints"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| {
                p.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_i64().unwrap() as i32)
            })
            .collect();
        assert_eq!(flat, want);
        assert_eq!(
            str_key(mm, "clip.vision.mm_patch_merge_type"),
            "spatial_unpad"
        );
        assert_eq!(str_key(mm, "llava.preprocess.aspect_mode"), "anyres");
        let newline = mm.tensor("model.image_newline").unwrap();
        assert_eq!(newline.ggml_type, GgmlType::F32);
    }
    let aspect = str_key(mm, "llava.preprocess.aspect_mode");
    match name {
        "llava15-hf" => assert_eq!(aspect, "crop"),
        "llava15-orig" => {
            assert_eq!(aspect, "pad");
            assert_eq!(str_key(mm, "clip.vision.image_aspect_ratio"), "pad");
        }
        _ => {}
    }
    assert_eq!(str_key(mm, "llava.preprocess.resize_filter"), "bicubic");
    assert_eq!(
        str_key(mm, "llava.vision.feature_select_strategy"),
        "default"
    );
}

fn crosscheck(name: &str, tower: Option<&str>, out: &ConvertOutput) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(crate_root().join("tools/convert_crosscheck.py"))
        .arg(fixture(name))
        .arg(&out.llm_path)
        .arg(&out.mmproj_path);
    if let Some(t) = tower {
        cmd.arg("--vision-tower").arg(fixture(t));
    }
    let result = cmd.output().expect("running tools/convert_crosscheck.py");
    assert!(
        result.status.success(),
        "{name}: convert_crosscheck.py failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    serde_json::from_slice(&result.stdout).expect("crosscheck JSON")
}

#[test]
fn every_fixture_converts_to_every_type_bit_exact_with_llama_cpp_names() {
    for (name, tower) in FIXTURES {
        let cfg = config(name);
        let (n_layers, n_vision) = match tower {
            Some(t) => (
                u64_at(&cfg, &["num_hidden_layers"]),
                u64_at(&config(t), &["vision_config", "num_hidden_layers"]),
            ),
            None => (
                u64_at(&cfg, &["text_config", "num_hidden_layers"]),
                u64_at(&cfg, &["vision_config", "num_hidden_layers"]),
            ),
        };
        let next = cfg["architectures"][0] == "LlavaNextForConditionalGeneration";
        for outtype in OutType::ALL {
            let dir = temp_dir();
            let out = run(name, tower, outtype, dir.path());
            assert_eq!(
                out.llm_path,
                dir.path().join(format!("{name}-{outtype}.gguf"))
            );
            assert_eq!(
                out.mmproj_path,
                dir.path().join(format!("mmproj-{name}-{outtype}.gguf"))
            );
            let llm = GgufFile::open(&out.llm_path).unwrap();
            let mm = GgufFile::open(&out.mmproj_path).unwrap();
            assert_eq!(
                names(&llm),
                expected_llm_names(n_layers),
                "{name} {outtype}"
            );
            assert_eq!(
                names(&mm),
                expected_mmproj_names(n_vision - 1, next),
                "{name} {outtype}"
            );
            check_llm_keys(name, &llm, outtype);
            check_mmproj_keys(name, &mm, outtype, tower);

            let summary = crosscheck(name, tower, &out);
            let seen: BTreeSet<String> = summary["llm"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            assert_eq!(seen, names(&llm), "gguf-py sees the same LLM tensors");
            let seen: BTreeSet<String> = summary["mmproj"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            assert_eq!(seen, names(&mm), "gguf-py sees the same mmproj tensors");
            assert_eq!(
                summary["checked"].as_u64().unwrap() as usize,
                llm.tensors().len() + mm.tensors().len()
            );
            // Matrices take the output type where their rows allow it.
            let q = llm.tensor("blk.0.attn_q.weight").unwrap();
            let want = match outtype {
                OutType::F32 => GgmlType::F32,
                OutType::F16 => GgmlType::F16,
                OutType::BF16 => GgmlType::BF16,
                OutType::Q8_0 if q.dims[0].is_multiple_of(32) => GgmlType::Q8_0,
                OutType::Q8_0 => GgmlType::F16,
            };
            assert_eq!(q.ggml_type, want, "{name} {outtype}");
            assert_eq!(
                llm.tensor("blk.0.attn_norm.weight").unwrap().ggml_type,
                GgmlType::F32
            );
        }
    }
}

/// The original layout (PyTorch .bin, separate CLIP directory) and the llava-hf layout hold the
/// same weights: the converted tensors must be identical (the llava-hf vocabulary is padded to
/// more rows; the shared rows must agree).
#[test]
fn original_and_llava_hf_layouts_give_the_same_tensors() {
    let dir = temp_dir();
    let orig = run(
        "llava15-orig",
        Some("llava15-orig-clip"),
        OutType::F16,
        dir.path(),
    );
    let hf = run("llava15-hf", None, OutType::F16, dir.path());
    for (a, b) in [
        (&orig.llm_path, &hf.llm_path),
        (&orig.mmproj_path, &hf.mmproj_path),
    ] {
        let a = GgufFile::open(a).unwrap();
        let b = GgufFile::open(b).unwrap();
        assert_eq!(names(&a), names(&b));
        for ta in a.tensors() {
            let tb = b.tensor(&ta.name).unwrap();
            assert_eq!(ta.ggml_type, tb.ggml_type, "{}", ta.name);
            let (da, db) = (a.tensor_data(ta), b.tensor_data(tb));
            if ta.dims == tb.dims {
                assert!(da == db, "{} differs between the layouts", ta.name);
            } else {
                // token_embd / output: [n_embd, 32000] vs [n_embd, 32064].
                assert_eq!(ta.dims[0], tb.dims[0], "{}", ta.name);
                assert!(ta.dims[1] < tb.dims[1], "{}", ta.name);
                assert!(da == &db[..da.len()], "{}: shared rows differ", ta.name);
            }
        }
    }
}

/// The library entry point refuses an unknown output name before touching anything, and the
/// CLI prints both paths.
#[test]
fn cli_prints_both_paths() {
    let dir = temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_llava-convert"))
        .arg(fixture("llava15-hf"))
        .arg("--outdir")
        .arg(dir.path())
        .args(["--outtype", "q8_0", "--name", "tiny", "-q"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            dir.path().join("tiny-q8_0.gguf").to_str().unwrap(),
            dir.path().join("mmproj-tiny-q8_0.gguf").to_str().unwrap()
        ]
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_llava-convert"))
        .arg(fixture("llava15-hf"))
        .arg("--outdir")
        .arg(dir.path())
        .args(["--outtype", "q4_0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("q4_0"));
}

/// llama.cpp's own legacy LLaVA converter (llava_surgery.py + convert_image_encoder_to_gguf.py)
/// run on the same fixture (tests/fixtures/llama.cpp/README.md): our f16 mmproj must hold the
/// same tensors (names, types, shapes, bytes) and the same keys and values, plus only our own
/// `llava.*` keys, the aspect-ratio key the original config implies, and our `general.name`.
#[test]
fn mmproj_equals_llama_cpp_legacy_converter_output() {
    let dir = temp_dir();
    let out = run(
        "llava15-orig",
        Some("llava15-orig-clip"),
        OutType::F16,
        dir.path(),
    );
    let ours = GgufFile::open(&out.mmproj_path).unwrap();
    let theirs = GgufFile::open(
        crate_root().join("tests/fixtures/llama.cpp/mmproj-llava15-orig-legacy-f16.gguf"),
    )
    .unwrap();
    assert_eq!(names(&ours), names(&theirs));
    for t in theirs.tensors() {
        let o = ours.tensor(&t.name).unwrap();
        assert_eq!((o.ggml_type, &o.dims), (t.ggml_type, &t.dims), "{}", t.name);
        assert!(
            ours.tensor_data(o) == theirs.tensor_data(t),
            "{}: bytes differ",
            t.name
        );
    }
    for entry in theirs.metadata() {
        if entry.key == "general.name" {
            continue;
        }
        assert_eq!(
            ours.get(&entry.key),
            Some(&entry.value),
            "key {}",
            entry.key
        );
    }
    for entry in ours.metadata() {
        if theirs.get(&entry.key).is_none() {
            assert!(
                entry.key.starts_with("llava.") || entry.key == "clip.vision.image_aspect_ratio",
                "unexpected extra key {}",
                entry.key
            );
        }
    }
}

/// A digest of a GGUF file (tools/gguf_digest.py, read with gguf-py).
fn digest(path: &Path) -> Value {
    let out = Command::new(python())
        .arg(crate_root().join("tools/gguf_digest.py"))
        .arg(path)
        .output()
        .expect("running tools/gguf_digest.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// llama.cpp's own convert_hf_to_gguf.py on the llava-hf fixtures
/// (tests/convert_data/llama.cpp/README.md): our LLM files must have the same keys, in the same
/// order, with the same types and values (vocabulary included), and the same tensors in the
/// same order with the same types, shapes and bytes — apart from `general.name`,
/// `general.size_label` and our `llava.*` keys.
#[test]
fn llm_equals_llama_cpp_convert_hf_to_gguf_output() {
    let ignored = |key: &str| {
        key == "general.name" || key == "general.size_label" || key.starts_with("llava.")
    };
    let keep = |d: &Value| -> (Vec<Value>, Value) {
        let metadata = d["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| !ignored(m[0].as_str().unwrap()))
            .cloned()
            .collect();
        (metadata, d["tensors"].clone())
    };
    let cases = [
        ("llava15-hf", OutType::F16),
        ("next-vicuna-hf", OutType::Q8_0),
        ("next-vicuna-hf", OutType::BF16),
        ("next-vicuna-hf", OutType::F32),
    ];
    for (name, outtype) in cases {
        let dir = temp_dir();
        let out = run(name, None, outtype, dir.path());
        let reference = crate_root().join(format!(
            "tests/convert_data/llama.cpp/{name}-{outtype}.digest.json"
        ));
        let theirs: Value = serde_json::from_slice(&std::fs::read(&reference).unwrap()).unwrap();
        let ours = digest(&out.llm_path);
        let (mut our_keys, our_tensors) = keep(&ours);
        let (their_keys, their_tensors) = keep(&theirs);
        // Where llama.cpp's converter finds no special id in the configs it writes none and its
        // runtime assumes the SentencePiece defaults; we write those defaults out.
        let has = |keys: &[Value], k: &str| keys.iter().any(|m| m[0] == k);
        for (key, default) in [
            ("tokenizer.ggml.bos_token_id", 1),
            ("tokenizer.ggml.eos_token_id", 2),
            ("tokenizer.ggml.unknown_token_id", 0),
        ] {
            if !has(&their_keys, key) {
                let ours = our_keys.iter().find(|m| m[0] == key).expect(key);
                assert_eq!(ours[2], Value::from(default), "{name}: {key}");
                our_keys.retain(|m| m[0] != key);
            }
        }
        assert_eq!(our_tensors, their_tensors, "{name} {outtype}: tensors");
        assert_eq!(our_keys, their_keys, "{name} {outtype}: metadata");
    }
}

/// With a tokenizer.json, special ids follow gguf-py's SpecialVocab: the token strings of
/// tokenizer_config.json resolved among tokenizer.json's added tokens win over config.json's
/// ids (checked against gguf-py itself by the crosscheck script).
#[test]
fn special_ids_follow_gguf_py_with_a_tokenizer_json() {
    let dir = temp_dir();
    let model = dir.path().join("llava15-hf");
    std::fs::create_dir_all(&model).unwrap();
    for entry in std::fs::read_dir(fixture("llava15-hf")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    let tc_path = model.join("tokenizer_config.json");
    let mut tc: Value = serde_json::from_slice(&std::fs::read(&tc_path).unwrap()).unwrap();
    tc["pad_token"] = Value::from("<image>");
    std::fs::write(&tc_path, serde_json::to_vec(&tc).unwrap()).unwrap();
    let added: Vec<Value> = [(0, "<unk>"), (1, "<s>"), (2, "</s>"), (32000, "<image>")]
        .iter()
        .map(|(id, c)| serde_json::json!({"id": id, "content": c, "special": true}))
        .collect();
    let tokenizer_json = serde_json::json!({"added_tokens": added, "model": {"type": "BPE"}});
    std::fs::write(model.join("tokenizer.json"), tokenizer_json.to_string()).unwrap();

    let mut options = ConvertOptions::new(&model, dir.path().join("out"));
    options.outtype = OutType::F16;
    let out = convert(&options).unwrap();
    let llm = GgufFile::open(&out.llm_path).unwrap();
    assert_eq!(u32_key(&llm, "tokenizer.ggml.padding_token_id"), 32000);
    assert_eq!(u32_key(&llm, "tokenizer.ggml.unknown_token_id"), 0);
    assert_eq!(u32_key(&llm, "tokenizer.ggml.bos_token_id"), 1);

    let result = Command::new(python())
        .arg(crate_root().join("tools/convert_crosscheck.py"))
        .arg(&model)
        .arg(&out.llm_path)
        .arg(&out.mmproj_path)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
}
