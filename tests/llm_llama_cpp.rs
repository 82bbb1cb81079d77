//! Interop with llama.cpp itself (ignored by default: needs a llama.cpp build). Each text case
//! of the llava-hf fixtures is converted by llava-convert to F16, then generated greedily for 16
//! tokens by llama.cpp's `llama-completion` and by `llava` (both with an f16 KV cache): the
//! texts must be identical.
//!
//! ```sh
//! LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin cargo test --test llm_llama_cpp -- --ignored --nocapture
//! ```
//!
//! `LLAVA_COMPARE_MODELS=a.gguf:b.gguf` adds other model files (e.g. the 7B-shaped ones of
//! tools/make_bench_models.sh) to a second test, same check on a fixed prompt.
//!
//! Checked with llama.cpp 0c1e570 (the copy vendored in llama-cpp-python 0.3.36).

use std::path::{Path, PathBuf};
use std::process::Command;

use llava::convert::{ConvertOptions, OutType, convert};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llava")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("running a command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// 16 greedy tokens of `prompt` (raw, BOS as the file says) from llama.cpp and from llava.
fn both_greedy(bin: &Path, model: &Path, prompt: &str) -> (String, String) {
    let m = model.to_str().unwrap();
    let theirs = run(Command::new(bin.join("llama-completion"))
        .args(["-m", m, "-p", prompt, "-n", "16", "--temp", "0"])
        .args([
            "-c",
            "256",
            "-t",
            "2",
            "--no-warmup",
            "-no-cnv",
            "--no-display-prompt",
        ])
        .stdin(std::process::Stdio::null()));
    let ours = run(Command::new(env!("CARGO_BIN_EXE_llava")).args([
        "-m",
        m,
        "-p",
        prompt,
        "--chat-template",
        "raw",
        "--tokenizer-style",
        "llama.cpp",
        "-n",
        "16",
        "--temp",
        "0",
        "-c",
        "256",
        "-t",
        "2",
    ]));
    (theirs.trim().to_owned(), ours.trim().to_owned())
}

fn llama_cpp_bin() -> PathBuf {
    PathBuf::from(
        std::env::var_os("LLAMA_CPP_BIN").expect("set LLAMA_CPP_BIN to llama.cpp's build/bin"),
    )
}

#[test]
#[ignore = "needs a llama.cpp build: set LLAMA_CPP_BIN"]
fn greedy_text_equals_llama_cpp_on_converted_fixtures() {
    let bin = llama_cpp_bin();
    let dir = tempfile::tempdir().unwrap();
    for fixture in ["llava15-hf", "next-vicuna-hf", "next-mistral-hf"] {
        let mut opts = ConvertOptions::new(fixtures().join(fixture), dir.path().join(fixture));
        opts.outtype = OutType::F16;
        let model = convert(&opts).unwrap().llm_path;
        let doc: Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("{fixture}.ref/cases.json"))).unwrap(),
        )
        .unwrap();
        for case in doc["cases"].as_array().unwrap() {
            if !case["images"].as_array().unwrap().is_empty() {
                continue;
            }
            let (theirs, ours) = both_greedy(&bin, &model, case["prompt"].as_str().unwrap());
            println!(
                "{fixture}/{}:\n  llama.cpp: {theirs:?}\n  llava-rs:  {ours:?}",
                case["name"]
            );
            assert_eq!(ours, theirs, "{fixture}/{}", case["name"]);
        }
    }
}

#[test]
#[ignore = "needs a llama.cpp build (LLAMA_CPP_BIN) and LLAVA_COMPARE_MODELS"]
fn greedy_text_equals_llama_cpp_on_given_models() {
    let bin = llama_cpp_bin();
    let models =
        std::env::var("LLAVA_COMPARE_MODELS").expect("set LLAVA_COMPARE_MODELS=a.gguf:b.gguf");
    let prompt = "USER: Name three colours of the rainbow. ASSISTANT:";
    for model in models.split(':').filter(|m| !m.is_empty()) {
        let (theirs, ours) = both_greedy(&bin, Path::new(model), prompt);
        println!("{model}:\n  llama.cpp: {theirs:?}\n  llava-rs:  {ours:?}");
        assert_eq!(ours, theirs, "{model}");
    }
}
