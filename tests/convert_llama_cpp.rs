//! llama.cpp runs what llava-convert writes: its `llama-completion` on our converted llava15-hf
//! LLM continues the fixture's text prompt with exactly transformers' greedy tokens, and its
//! `llama-mtmd-cli` gives the same image-prompt output with our mmproj as with the mmproj its own
//! legacy converter made (tests/fixtures/llama.cpp/).
//!
//! Ignored by default: it needs llama.cpp's binaries, built from commit 0c1e570 (the copy in the
//! llama-cpp-python 0.3.36 sdist). Run with
//! `LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin cargo test --test convert_llama_cpp -- --ignored`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{crate_root, temp_dir};
use llava::convert::{ConvertOptions, OutType, convert};
use serde_json::Value;

fn bin(name: &str) -> PathBuf {
    match std::env::var_os("LLAMA_CPP_BIN") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => panic!("set LLAMA_CPP_BIN to llama.cpp's build/bin directory"),
    }
}

fn fixture(name: &str) -> PathBuf {
    crate_root().join("tests/fixtures/llava").join(name)
}

/// The generated text: what follows `prompt` on the last line of stdout.
fn run(cmd: &mut Command, prompt_tail: &str) -> String {
    let out = cmd.output().expect("running llama.cpp");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = stdout
        .rfind(prompt_tail)
        .map_or(0, |i| i + prompt_tail.len());
    stdout[at..].trim().to_owned()
}

#[test]
#[ignore = "needs llama.cpp binaries (LLAMA_CPP_BIN)"]
fn llama_cpp_continues_the_text_prompt_as_transformers() {
    let dir = temp_dir();
    let mut options = ConvertOptions::new(fixture("llava15-hf"), dir.path());
    options.outtype = OutType::F32;
    let out = convert(&options).unwrap();
    let cases: Value =
        serde_json::from_slice(&std::fs::read(fixture("llava15-hf.ref/cases.json")).unwrap())
            .unwrap();
    let case = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["images"].as_array().unwrap().is_empty())
        .expect("a text-only case");
    let prompt = case["prompt"].as_str().unwrap();
    let greedy = case["greedy_text"].as_str().unwrap();
    let text = run(
        Command::new(bin("llama-completion"))
            .arg("-m")
            .arg(&out.llm_path)
            .args([
                "-p", prompt, "-n", "16", "--temp", "0", "-t", "2", "-no-cnv",
            ]),
        prompt,
    );
    assert_eq!(text, greedy);
}

fn mtmd(llm: &Path, mmproj: &Path, image: &Path) -> String {
    let prompt = "USER: <__media__>\nWhat is shown in this picture? ASSISTANT:";
    run(
        Command::new(bin("llama-mtmd-cli"))
            .arg("-m")
            .arg(llm)
            .arg("--mmproj")
            .arg(mmproj)
            .arg("--image")
            .arg(image)
            .args([
                "-p", prompt, "-n", "16", "--temp", "0", "-t", "2", "--jinja",
            ])
            .args([
                "--chat-template",
                "{% for m in messages %}{{ m['content'] }}{% endfor %}",
            ]),
        "Hi thereHow are you?",
    )
}

#[test]
#[ignore = "needs llama.cpp binaries (LLAMA_CPP_BIN)"]
fn llama_cpp_runs_our_mmproj_as_its_own() {
    let dir = temp_dir();
    let mut options = ConvertOptions::new(fixture("llava15-orig"), dir.path());
    options.vision_tower = Some(fixture("llava15-orig-clip"));
    let out = convert(&options).unwrap();
    let theirs = crate_root().join("tests/fixtures/llama.cpp/mmproj-llava15-orig-legacy-f16.gguf");
    for image in ["wide-97x61.png", "tall-50x80-rgba.png"] {
        let image = crate_root().join("tests/fixtures/images").join(image);
        let ours = mtmd(&out.llm_path, &out.mmproj_path, &image);
        let reference = mtmd(&out.llm_path, &theirs, &image);
        assert!(!ours.is_empty());
        assert_eq!(ours, reference, "{}", image.display());
    }
}
