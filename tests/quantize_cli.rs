//! llava-quantize end to end: small LLaMA- and CLIP-shaped GGUF files built here with our writer,
//! quantized by the binary; the types chosen are the hand-derived llama.cpp rules (see the
//! comments), the bytes those of `quant::quantize_row` on the input rows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use half::{bf16, f16};
use llava::GgmlType::{self, *};
use llava::gguf::{GgufFile, GgufValue};
use llava::quant;

mod quantize_support;
use quantize_support::{TensorSpec, spec, write_model};

const EMBD: u64 = 256;
/// ffn_down's rows are 288 long: a multiple of 32 but not of 256, so the K types fall back.
const FF: u64 = 288;
const VOCAB: u64 = 64;

fn llama_metadata() -> Vec<(&'static str, GgufValue)> {
    vec![
        ("general.architecture", "llama".into()),
        ("general.name", "tiny-llama".into()),
        ("general.file_type", 1u32.into()),
        ("llama.block_count", 2u32.into()),
        ("llama.embedding_length", (EMBD as u32).into()),
        ("llama.feed_forward_length", (FF as u32).into()),
        ("llama.attention.head_count", 4u32.into()),
        ("llama.attention.head_count_kv", 4u32.into()),
        ("llama.rope.freq_base", 10000.0f32.into()),
        ("tokenizer.ggml.tokens", vec!["<s>", "</s>", "a"].into()),
    ]
}

fn llama_tensors() -> Vec<TensorSpec> {
    let mut out = vec![spec("token_embd.weight", &[EMBD, VOCAB], F16)];
    for i in 0..2 {
        let n = |s: &str| format!("blk.{i}.{s}");
        out.push(spec(&n("attn_norm.weight"), &[EMBD], F32));
        out.push(spec(&n("attn_q.weight"), &[EMBD, EMBD], F16));
        out.push(spec(&n("attn_k.weight"), &[EMBD, EMBD], F16));
        out.push(spec(&n("attn_v.weight"), &[EMBD, EMBD], F16));
        out.push(spec(&n("attn_output.weight"), &[EMBD, EMBD], F16));
        out.push(spec(&n("ffn_norm.weight"), &[EMBD], F32));
        out.push(spec(&n("ffn_gate.weight"), &[EMBD, FF], F16));
        out.push(spec(&n("ffn_up.weight"), &[EMBD, FF], BF16));
        out.push(spec(&n("ffn_down.weight"), &[FF, EMBD], F16));
    }
    out.push(spec("output_norm.weight", &[EMBD], F32));
    out.push(spec("output.weight", &[EMBD, VOCAB], F32));
    out
}

/// Q4_K_M on the 2-layer model. use_more_bits(i, 2): 2/8 = 0, 7*2/8 = 1, so layer 1 only
/// (attn_v counts 2 tensors, ffn_down uses block_count 2). ffn_down's 288-long rows: Q4_K falls
/// back to Q5_0, Q6_K to Q8_0. output.weight: Q6_K. Norms keep F32.
fn expected_llama_q4_k_m(name: &str) -> GgmlType {
    match name {
        "token_embd.weight" => Q4_K,
        "output.weight" => Q6_K,
        "blk.0.attn_v.weight" => Q4_K,
        "blk.1.attn_v.weight" => Q6_K,
        "blk.0.ffn_down.weight" => Q5_0,
        "blk.1.ffn_down.weight" => Q8_0,
        n if n.ends_with("norm.weight") => F32,
        _ => Q4_K,
    }
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llava-quantize"))
        .args(args)
        .output()
        .unwrap()
}

fn run_paths(input: &Path, output: &Path, ty: &str, extra: &[&str]) -> Output {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend([input.to_str().unwrap(), output.to_str().unwrap(), ty]);
    run(&args)
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "llava-quantize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file left in `dir`, to check that failures leave nothing behind.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The f32 rows of an input tensor, decoded independently of llava.
fn decode_floats(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    match ty {
        F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        other => {
            // Quantized input (the requantize test): dequantize with the block code.
            let n = bytes.len() / other.type_size() * other.block_size();
            let mut out = vec![0.0; n];
            quant::dequantize_row(other, bytes, &mut out).unwrap();
            out
        }
    }
}

/// Checks that every output tensor has `expected(name)` as type and holds exactly the rows of
/// the input tensor quantized by `quant::quantize_row` (or the input bytes, when unchanged).
fn check_output(input: &Path, output: &Path, expected: impl Fn(&str) -> GgmlType) {
    let input = GgufFile::open(input).unwrap();
    let output = GgufFile::open(output).unwrap();
    assert_eq!(input.tensors().len(), output.tensors().len());
    for out_info in output.tensors() {
        let in_info = input.tensor(&out_info.name).unwrap();
        assert_eq!(out_info.dims, in_info.dims, "{}", out_info.name);
        let ty = expected(&out_info.name);
        assert_eq!(out_info.ggml_type, ty, "type of {}", out_info.name);
        let in_bytes = input.tensor_data(in_info);
        let out_bytes = output.tensor_data(out_info);
        if ty == in_info.ggml_type {
            assert!(
                in_bytes == out_bytes,
                "{} not copied unchanged",
                out_info.name
            );
            continue;
        }
        let row_length = in_info.dims[0] as usize;
        let xs = decode_floats(in_info.ggml_type, in_bytes);
        let row_bytes = quant::row_bytes(ty, row_length).unwrap();
        assert_eq!(out_bytes.len(), xs.len() / row_length * row_bytes);
        let mut want = vec![0u8; row_bytes];
        for (r, (row, got)) in xs
            .chunks(row_length)
            .zip(out_bytes.chunks(row_bytes))
            .enumerate()
        {
            quant::quantize_row(ty, row, &mut want).unwrap();
            assert!(want == got, "{} row {r} differs", out_info.name);
        }
    }
}

fn metadata_map(file: &GgufFile) -> HashMap<String, GgufValue> {
    file.metadata()
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect()
}

/// Everything copied; general.file_type and general.quantization_version set as u32.
fn check_metadata(input: &Path, output: &Path, file_type: u32) {
    let input = metadata_map(&GgufFile::open(input).unwrap());
    let output_file = GgufFile::open(output).unwrap();
    let output = metadata_map(&output_file);
    for (key, value) in &input {
        if key != "general.file_type" {
            assert_eq!(output.get(key), Some(value), "{key}");
        }
    }
    assert_eq!(
        output.get("general.file_type"),
        Some(&GgufValue::U32(file_type))
    );
    assert_eq!(
        output.get("general.quantization_version"),
        Some(&GgufValue::U32(2))
    );
    let n_extra = usize::from(!input.contains_key("general.file_type")) + 1;
    assert_eq!(output.len(), input.len() + n_extra);
    // As llama.cpp: the two keys are removed and appended, quantization_version first.
    let keys: Vec<&str> = output_file
        .metadata()
        .iter()
        .map(|e| e.key.as_str())
        .collect();
    assert_eq!(
        keys[keys.len() - 2..],
        ["general.quantization_version", "general.file_type"]
    );
}

#[test]
fn llama_q4_k_m_types_bytes_metadata_and_order() {
    let dir = temp_dir();
    let (input, output) = (dir.path().join("in.gguf"), dir.path().join("out.gguf"));
    write_model(&input, &llama_metadata(), &llama_tensors());
    let out = run_paths(&input, &output, "q4_k_m", &["--threads", "2"]);
    assert_success(&out);
    check_output(&input, &output, expected_llama_q4_k_m);
    check_metadata(&input, &output, 15);

    // llama.cpp's order: names outside blk.N. first, then by layer, each group by name.
    let file = GgufFile::open(&output).unwrap();
    let names: Vec<String> = file.tensors().iter().map(|t| t.name.clone()).collect();
    let mut want: Vec<String> = ["output.weight", "output_norm.weight", "token_embd.weight"]
        .map(String::from)
        .to_vec();
    for layer in ["blk.0.", "blk.1."] {
        for s in [
            "attn_k.weight",
            "attn_norm.weight",
            "attn_output.weight",
            "attn_q.weight",
            "attn_v.weight",
            "ffn_down.weight",
            "ffn_gate.weight",
            "ffn_norm.weight",
            "ffn_up.weight",
        ] {
            want.push(format!("{layer}{s}"));
        }
    }
    assert_eq!(names, want);

    // Closing summary: 21 tensors, fallbacks reported.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tensors:    21"), "{stdout}");
    assert!(
        stdout.contains("Q5_0: 1") && stdout.contains("Q8_0: 1"),
        "{stdout}"
    );
    assert!(stdout.contains("2 tensor(s) needed a fallback"), "{stdout}");
}

#[test]
fn llama_plain_and_float_file_types() {
    let dir = temp_dir();
    let input = dir.path().join("in.gguf");
    write_model(&input, &llama_metadata(), &llama_tensors());
    let is_norm = |n: &str| n.ends_with("norm.weight");
    type Expected = Box<dyn Fn(&str) -> GgmlType>;
    let cases: [(&str, u32, Expected); 4] = [
        // Q8_0 fits 288 (9 blocks); output.weight stays Q8_0.
        (
            "Q8_0",
            7,
            Box::new(move |n| if is_norm(n) { F32 } else { Q8_0 }),
        ),
        // Q4_0: output.weight -> Q6_K; everything else Q4_0 (288 = 9 * 32).
        (
            "q4_0",
            2,
            Box::new(move |n| match n {
                "output.weight" => Q6_K,
                n if is_norm(n) => F32,
                _ => Q4_0,
            }),
        ),
        // F16: every 2-D weight becomes F16 (BF16 and F32 ones converted), norms stay F32.
        (
            "f16",
            1,
            Box::new(move |n| if is_norm(n) { F32 } else { F16 }),
        ),
        // Q2_K: attn_v (n_gqa 1) and ffn_down -> Q3_K, attn_output -> Q3_K, output Q6_K;
        // ffn_down's Q3_K falls back to Q4_0.
        (
            "Q2_K",
            10,
            Box::new(move |n| match n {
                "output.weight" => Q6_K,
                n if is_norm(n) => F32,
                n if n.ends_with("ffn_down.weight") => Q4_0,
                n if n.ends_with("attn_v.weight") || n.ends_with("attn_output.weight") => Q3_K,
                _ => Q2_K,
            }),
        ),
    ];
    for (ty, id, expected) in cases {
        let output = dir.path().join(format!("out-{ty}.gguf"));
        assert_success(&run_paths(&input, &output, ty, &["--quiet"]));
        check_output(&input, &output, expected);
        check_metadata(&input, &output, id);
    }
}

fn clip_metadata() -> Vec<(&'static str, GgufValue)> {
    vec![
        ("general.architecture", "clip".into()),
        ("clip.has_vision_encoder", true.into()),
        ("clip.has_llava_projector", true.into()),
        ("clip.projector_type", "mlp".into()),
        ("clip.vision.embedding_length", (EMBD as u32).into()),
        ("clip.vision.block_count", 2u32.into()),
        ("clip.vision.image_mean", vec![0.48f32, 0.45, 0.40].into()),
    ]
}

fn clip_tensors() -> Vec<TensorSpec> {
    let mut out = vec![
        spec("v.patch_embd.weight", &[14, 14, 3, EMBD], F16),
        spec("v.class_embd", &[EMBD], F32),
        spec("v.position_embd.weight", &[EMBD, 5], F16),
        spec("v.pre_ln.weight", &[EMBD], F32),
        spec("v.pre_ln.bias", &[EMBD], F32),
    ];
    for i in 0..2 {
        let n = |s: &str| format!("v.blk.{i}.{s}");
        for p in ["attn_q", "attn_k", "attn_v", "attn_out"] {
            out.push(spec(&n(&format!("{p}.weight")), &[EMBD, EMBD], F16));
            out.push(spec(&n(&format!("{p}.bias")), &[EMBD], F32));
        }
        for ln in ["ln1", "ln2"] {
            out.push(spec(&n(&format!("{ln}.weight")), &[EMBD], F32));
            out.push(spec(&n(&format!("{ln}.bias")), &[EMBD], F32));
        }
        out.push(spec(&n("ffn_down.weight"), &[EMBD, 512], F16));
        out.push(spec(&n("ffn_down.bias"), &[512], F32));
        out.push(spec(&n("ffn_up.weight"), &[512, EMBD], F16));
        out.push(spec(&n("ffn_up.bias"), &[EMBD], F32));
    }
    out.push(spec("mm.0.weight", &[EMBD, 512], F16));
    out.push(spec("mm.0.bias", &[512], F32));
    out.push(spec("mm.2.weight", &[512, 512], F16));
    out.push(spec("mm.2.bias", &[512], F32));
    out.push(spec("model.image_newline", &[512], F32));
    out
}

#[test]
fn mmproj_q4_k_m_follows_llama_cpp_clip_rules() {
    let dir = temp_dir();
    let (input, output) = (dir.path().join("mmproj.gguf"), dir.path().join("q.gguf"));
    write_model(&input, &clip_metadata(), &clip_tensors());
    assert_success(&run_paths(&input, &output, "Q4_K_M", &[]));
    // clip: llama.cpp loads no hparams (n_layer 0), so ffn_down: use_more_bits(i, 0) -> Q6_K;
    // attn_v: 2 of them, use_more_bits(i, 2) true for the second visited (v.blk.1).
    // Patch/position embeddings are excluded by name; 1-D tensors and biases stay.
    check_output(&input, &output, |name| match name {
        "v.patch_embd.weight" | "v.position_embd.weight" => F16,
        "v.blk.1.attn_v.weight" => Q6_K,
        n if n.ends_with("ffn_down.weight") => Q6_K,
        n if n.ends_with(".weight") && !n.contains("_ln") && !n.contains(".ln") => Q4_K,
        _ => F32,
    });
    check_metadata(&input, &output, 15);
}

#[test]
fn requantizing_needs_the_flag() {
    let dir = temp_dir();
    let (input, q8, q4) = (
        dir.path().join("in.gguf"),
        dir.path().join("q8.gguf"),
        dir.path().join("q4.gguf"),
    );
    write_model(&input, &llama_metadata(), &llama_tensors());
    assert_success(&run_paths(&input, &q8, "Q8_0", &["-q"]));
    let before = files_in(dir.path());

    let refused = run_paths(&q8, &q4, "Q4_K_M", &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("--allow-requantize"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        files_in(dir.path()),
        before,
        "a refused run must write nothing"
    );

    assert_success(&run_paths(
        &q8,
        &q4,
        "Q4_K_M",
        &["--allow-requantize", "-q"],
    ));
    // Same types as from the F16 file; bytes are quantize_row of the dequantized Q8_0 rows.
    check_output(&q8, &q4, expected_llama_q4_k_m);
}

#[test]
fn bad_arguments_print_usage_and_fail() {
    let dir = temp_dir();
    let input = dir.path().join("in.gguf");
    write_model(&input, &llama_metadata(), &llama_tensors());
    let output = dir.path().join("out.gguf");

    let bad_type = run_paths(&input, &output, "Q4_K_X", &[]);
    assert!(!bad_type.status.success());
    let stderr = String::from_utf8_lossy(&bad_type.stderr);
    assert!(stderr.contains("unknown type 'Q4_K_X'"), "{stderr}");
    assert!(stderr.contains("Usage"), "{stderr}");
    assert!(
        stderr.contains("Q4_K_M"),
        "the accepted types are listed: {stderr}"
    );

    let missing_arg = run(&[input.to_str().unwrap(), output.to_str().unwrap()]);
    assert!(!missing_arg.status.success());
    assert!(String::from_utf8_lossy(&missing_arg.stderr).contains("Usage"));

    let bad_threads = run_paths(&input, &output, "Q4_0", &["--threads", "many"]);
    assert!(!bad_threads.status.success());
    assert!(!output.exists());
}

#[test]
fn missing_and_truncated_inputs_are_errors_without_output() {
    let dir = temp_dir();
    let output = dir.path().join("out.gguf");

    let missing = run_paths(&dir.path().join("nope.gguf"), &output, "Q4_K_M", &[]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("nope.gguf"),
        "{stderr}"
    );

    let input = dir.path().join("in.gguf");
    write_model(&input, &llama_metadata(), &llama_tensors());
    let bytes = std::fs::read(&input).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).unwrap();
    let before = files_in(dir.path());
    let out = run_paths(&truncated, &output, "Q4_K_M", &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("truncated.gguf"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        files_in(dir.path()),
        before,
        "no output and no temp file left"
    );

    // A model without the keys the rules need.
    let no_arch = dir.path().join("no-arch.gguf");
    write_model(&no_arch, &[("general.name", "x".into())], &llama_tensors());
    let out = run_paths(&no_arch, &output, "Q4_K_M", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("general.architecture"));
    assert!(!output.exists());
}

#[test]
fn an_existing_output_is_replaced_only_on_success() {
    let dir = temp_dir();
    let (input, output) = (dir.path().join("in.gguf"), dir.path().join("out.gguf"));
    write_model(&input, &llama_metadata(), &llama_tensors());
    std::fs::write(&output, b"previous contents").unwrap();
    let q8 = dir.path().join("q8.gguf");
    assert_success(&run_paths(&input, &q8, "Q8_0", &["-q"]));
    // Refused (requantize): the old output is untouched.
    assert!(!run_paths(&q8, &output, "Q4_0", &[]).status.success());
    assert_eq!(std::fs::read(&output).unwrap(), b"previous contents");
    assert_success(&run_paths(&input, &output, "Q4_0", &["-q"]));
    assert!(GgufFile::open(&output).is_ok());
}
