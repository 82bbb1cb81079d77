//! `llava` generation on the built binary, with a converted fixture (llava15-hf, F32): the
//! prompt's tokens, every position's logits and the greedy tokens in the `--dump` files equal
//! transformers' references; streamed text equals the reference text; errors are clear.

mod compare;
use compare::rel_err;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use llava::convert::{ConvertOptions, OutType, convert};
use llava::npy;
use serde_json::Value;

fn llava(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llava"))
        .args(args)
        .output()
        .expect("running llava")
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llava")
}

fn converted(dir: &Path) -> PathBuf {
    let mut opts = ConvertOptions::new(fixture_dir().join("llava15-hf"), dir);
    opts.outtype = OutType::F32;
    convert(&opts).unwrap().llm_path
}

fn text_case() -> Value {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("llava15-hf.ref/cases.json")).unwrap(),
    )
    .unwrap();
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "text")
        .unwrap()
        .clone()
}

#[test]
fn greedy_generation_and_dump_match_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let model = converted(dir.path());
    let case = text_case();
    // The fixture's prompt is the llava-hf template without a system line.
    let message = case["prompt"]
        .as_str()
        .unwrap()
        .strip_prefix("USER: ")
        .and_then(|p| p.strip_suffix(" ASSISTANT:"))
        .unwrap()
        .to_owned();
    let dump = dir.path().join("dump");
    let out = llava(&[
        "-m",
        model.to_str().unwrap(),
        "-p",
        &message,
        "--system",
        "",
        "--temp",
        "0",
        "-n",
        "16",
        "-c",
        "64",
        "-t",
        "2",
        "--cache-type",
        "f32",
        "--dump",
        dump.to_str().unwrap(),
        "--dump-tensor",
        "result_norm",
        "--dump-tensor",
        "l_out-1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("tokens/s") && stderr.contains("load"),
        "{stderr}"
    );
    let refs = fixture_dir().join("llava15-hf.ref");
    let file = |c: &Value, k: &str| refs.join(c["files"][k].as_str().unwrap());
    let tokens = npy::read::<i32>(dump.join("tokens.npy")).unwrap();
    assert_eq!(
        tokens.data,
        npy::read::<i32>(file(&case, "input_ids")).unwrap().data
    );
    let logits = npy::read::<f32>(dump.join("logits.npy")).unwrap();
    let want = npy::read::<f32>(file(&case, "logits")).unwrap();
    assert_eq!(logits.shape, want.shape);
    let err = rel_err(&logits.data, &want.data);
    assert!(err < 1e-4, "logits rel err {err}");
    let generated = npy::read::<i32>(dump.join("generated.npy")).unwrap();
    assert_eq!(
        generated.data,
        npy::read::<i32>(file(&case, "greedy")).unwrap().data
    );
    // Traced intermediates: the final norm equals the reference hidden states.
    let hidden = npy::read::<f32>(dump.join("result_norm.npy")).unwrap();
    let want = npy::read::<f32>(file(&case, "hidden")).unwrap();
    assert_eq!(hidden.shape, want.shape);
    assert!(rel_err(&hidden.data, &want.data) < 1e-4);
    assert_eq!(
        npy::read::<f32>(dump.join("l_out-1.npy")).unwrap().shape,
        want.shape
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), case["greedy_text"].as_str().unwrap().trim());
}

#[test]
fn context_limits_and_bad_input_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = converted(dir.path());
    let m = model.to_str().unwrap();
    // The prompt (17 tokens with the template) does not fit 8 positions.
    let out = llava(&[
        "-m",
        m,
        "-p",
        "Name three colours of the rainbow.",
        "--system",
        "",
        "-c",
        "8",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("prompt is 17 positions") && err.contains("-c"),
        "{err}"
    );
    // Generation reaching the end of the context stops with a message.
    let dump = dir.path().join("d");
    let out = llava(&[
        "-m",
        m,
        "-p",
        "Name three colours of the rainbow.",
        "--system",
        "",
        "-c",
        "20",
        "-n",
        "16",
        "--temp",
        "0",
        "--dump",
        dump.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("context of 20 positions is full"), "{err}");
    assert_eq!(
        npy::read::<i32>(dump.join("generated.npy"))
            .unwrap()
            .data
            .len(),
        4
    );
    // Missing file, bad flags.
    let out = llava(&["-m", "/nonexistent/model.gguf", "-p", "hi"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");
    let out = llava(&["-m", m, "-p", "hi", "--chat-template", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("vicuna, mistral, chatml, raw"));
    let out = llava(&["-m", m]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("-p"));
}

/// Built without the embedded demo model (`--no-default-features`), `llava` needs -m.
#[cfg(not(feature = "demo-model"))]
#[test]
fn without_the_demo_model_a_missing_model_is_a_clear_error() {
    let out = llava(&["-p", "hi"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("give -m") && err.contains("demo-model"),
        "{err}"
    );
}

#[test]
fn interactive_chat_keeps_the_cache_between_turns() {
    let dir = tempfile::tempdir().unwrap();
    let model = converted(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_llava"))
        .args([
            "-m",
            model.to_str().unwrap(),
            "-i",
            "--temp",
            "0",
            "-n",
            "4",
            "-c",
            "256",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(b"Hello there.\nAnd again?\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let prompts: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("llava: prompt "))
        .collect();
    assert_eq!(prompts.len(), 2, "{err}");
    // The second turn evaluates only its own text (the first turn stays in the cache): it
    // starts with `</s>` and has no system line.
    let n = |l: &str| -> usize {
        l.split("prompt ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(n(prompts[1]) < n(prompts[0]), "{err}");
}

/// `--load` (and `--no-mmap`) and `--no-repack` in generation and bench: the start-up line
/// says where the weights went and whether they were repacked; a bad value or contradicting
/// flags are usage errors.
#[test]
fn load_flag_picks_where_the_weights_go() {
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-random-llama-q4_k_m.gguf");
    let m = tiny.to_str().unwrap();
    let gen_args = ["-p", "hi", "-n", "2", "--temp", "0", "-c", "64", "-t", "1"];
    for (flags, want) in [
        (
            &["--load", "mmap"][..],
            "llava: weights mapped from the file (0.01 GB; --load mmap); ggml's layout kept \
             (mapped weights are never repacked)",
        ),
        (
            &["--load", "mmap", "--force-repack"],
            "(0.01 GB; --load mmap); ggml's layout kept (mapped weights are never repacked)",
        ),
        (
            &["--load", "memory", "--no-repack"],
            "llava: weights read into memory (0.01 GB; --load memory); ggml's layout kept \
             (--no-repack)",
        ),
        // The bundled file's 12 Q4_K matrices (its other ones are Q6_K); the forcing flag is
        // hidden, for tests and measurements.
        (
            &["--load", "memory", "--force-repack"],
            "(0.01 GB; --load memory); 12 Q4_K tensors repacked to Q4_K×8",
        ),
        (
            &["--load", "memory"],
            "llava: weights read into memory (0.01 GB; --load memory)",
        ),
        (
            &["--no-mmap"],
            "llava: weights read into memory (0.01 GB; --load memory)",
        ),
        (&[], "(--load auto: 0.01 GB + margin = 1.08 GB "),
    ] {
        let mut args = vec!["-m", m];
        args.extend_from_slice(flags);
        args.extend_from_slice(&gen_args);
        let out = llava(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{flags:?}: {err}");
        assert!(err.contains(want), "{flags:?}: {err}");
        let bench = ["bench", "-m", m, "-p", "0", "-n", "1", "-r", "1", "-t", "1"];
        let mut args = bench.to_vec();
        args.extend_from_slice(flags);
        let out = llava(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "bench {flags:?}: {err}");
        assert!(err.contains(want), "bench {flags:?}: {err}");
    }
    let out = llava(&["-m", m, "--load", "disk", "-p", "hi"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auto, memory, mmap"), "{err}");
    for both in [
        &["--load", "mmap", "--no-mmap"][..],
        &["--no-repack", "--force-repack"],
    ] {
        let mut args = vec!["-m", m, "-p", "hi"];
        args.extend_from_slice(both);
        let out = llava(&args);
        assert!(!out.status.success(), "{both:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot be used with"), "{both:?}: {err}");
    }
}
