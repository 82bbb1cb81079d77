//! `llava inspect` on the built binary.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use llava::GgmlType;
use llava::gguf::GgufWriter;

fn llava(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llava"))
        .args(args)
        .output()
        .expect("running llava")
}

/// A small model-like file: a 10-token vocabulary and two tensors.
fn write_small_model(path: &Path) {
    let tokens: Vec<String> = (0..10).map(|i| format!("tok{i}")).collect();
    let mut w = GgufWriter::new(path);
    w.add_metadata("general.architecture", "llama").unwrap();
    w.add_metadata("llama.context_length", 4096u32).unwrap();
    w.add_metadata(
        "tokenizer.ggml.tokens",
        llava::gguf::GgufArray::from_strings(tokens),
    )
    .unwrap();
    w.add_tensor("token_embd.weight", &[256, 10], GgmlType::Q4_K)
        .unwrap();
    w.add_tensor("output_norm.weight", &[256], GgmlType::F32)
        .unwrap();
    let mut data = w.write_header().unwrap();
    data.write_tensor("token_embd.weight", &vec![0; 10 * 144])
        .unwrap();
    data.write_tensor("output_norm.weight", &[0; 1024]).unwrap();
    data.finish().unwrap();
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn text_listing() {
    let dir = temp_dir();
    let path = dir.path().join("m.gguf");
    write_small_model(&path);
    let out = llava(&["inspect", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("general.architecture = \"llama\""), "{text}");
    assert!(text.contains("llama.context_length = 4096"), "{text}");
    assert!(
        text.contains("[arr of 10 str: \"tok0\", \"tok1\", \"tok2\", ... ]"),
        "{text}"
    );
    assert!(!text.contains("tok9"), "{text}");
    let embd = text
        .lines()
        .find(|l| l.contains("token_embd.weight"))
        .unwrap();
    assert!(
        embd.contains("Q4_K") && embd.contains("[256, 10]") && embd.contains("1440"),
        "{embd}"
    );
    // 256*10 + 256 parameters; 1440 + 1024 bytes.
    assert!(
        text.contains("2 tensor(s), 2816 parameter(s), 2464 byte(s)"),
        "{text}"
    );

    let full = stdout(&llava(&["inspect", "--full", path.to_str().unwrap()]));
    assert!(full.contains("\"tok9\"]"), "{full}");
}

#[test]
fn json_listing() {
    let dir = temp_dir();
    let path = dir.path().join("m.gguf");
    write_small_model(&path);
    let out = llava(&["inspect", path.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["version"], 3);
    let metadata = json["metadata"].as_array().unwrap();
    assert_eq!(metadata[0]["key"], "general.architecture");
    assert_eq!(metadata[0]["value"], "llama");
    assert_eq!(metadata[1]["type"], "u32");
    assert_eq!(metadata[1]["value"], 4096);
    assert_eq!(metadata[2]["value"].as_array().unwrap().len(), 10);
    assert_eq!(metadata[2]["value"][9], "tok9");
    let tensors = json["tensors"].as_array().unwrap();
    assert_eq!(tensors[0]["name"], "token_embd.weight");
    assert_eq!(tensors[0]["type"], "Q4_K");
    assert_eq!(tensors[0]["shape"], serde_json::json!([256, 10]));
    assert_eq!(tensors[0]["n_bytes"], 1440);
    // The second tensor starts at the first's size rounded up to the 32-byte alignment.
    assert_eq!(tensors[1]["offset"], 1440);
    assert_eq!(json["totals"]["parameters"], 2816);
    assert_eq!(json["totals"]["bytes"], 2464);
}

#[test]
fn truncated_file_is_a_clear_error() {
    let dir = temp_dir();
    let path = dir.path().join("m.gguf");
    write_small_model(&path);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let out = llava(&["inspect", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("output_norm.weight") && err.contains("outside"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty());

    std::fs::write(&path, &bytes[..40]).unwrap();
    let err = stderr(&llava(&["inspect", path.to_str().unwrap()]));
    assert!(
        err.starts_with("error: ") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = llava(&["inspect", "/nonexistent/dir/model.gguf"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with("error: /nonexistent/dir/model.gguf: "),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
