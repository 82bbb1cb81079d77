//! Interop with llama.cpp itself (ignored by default: needs a llama.cpp build). Each text case
//! of the llava-hf fixtures is converted by llava-convert to F16, then generated greedily for 16
//! tokens by llama.cpp's `llama-completion` and by `llava` (both with an f16 KV cache): the
//! texts must be identical.
//!
//! ```sh
//! LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin cargo test --test llm_llama_cpp -- --ignored --nocapture
//! ```
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

#[test]
#[ignore = "needs a llama.cpp build: set LLAMA_CPP_BIN"]
fn greedy_text_equals_llama_cpp_on_converted_fixtures() {
    let bin = PathBuf::from(
        std::env::var_os("LLAMA_CPP_BIN").expect("set LLAMA_CPP_BIN to llama.cpp's build/bin"),
    );
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
            let prompt = case["prompt"].as_str().unwrap();
            let theirs = run(Command::new(bin.join("llama-completion"))
                .args([
                    "-m",
                    model.to_str().unwrap(),
                    "-p",
                    prompt,
                    "-n",
                    "16",
                    "--temp",
                    "0",
                ])
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
                model.to_str().unwrap(),
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
            ]));
            println!(
                "{fixture}/{}:\n  llama.cpp: {:?}\n  llava-rs:  {:?}",
                case["name"],
                theirs.trim(),
                ours.trim()
            );
            assert_eq!(ours.trim(), theirs.trim(), "{fixture}/{}", case["name"]);
        }
    }
}
