//! The GGUF tokenizer against references nobody here wrote:
//! - llama.cpp's own test vectors for the LLaMA vocabulary (tests/data/vocab, copied from
//!   llama.cpp's models/ggml-vocab-llama-spm.gguf{,.inp,.out}): exact, in llama.cpp style;
//! - Hugging Face transformers 5 (`legacy = false`) over 2100 strings for the LLaMA-2 and the
//!   Mistral-7B vocabularies (tests/data/tokenizer/*.json, made by tools/make_tokenizer_refs.py):
//!   exact, in Hugging Face style; the agreement of the llama.cpp style with Hugging Face and
//!   with plain SentencePiece is measured and printed (docs/tokenizer.md explains every kind of
//!   difference).
//!
//! The Mistral vocabulary's GGUF is built from its tokenizer.model (the next-mistral-hf
//! fixture's, or `LLAVA_MISTRAL_SPM`) by tools/spm_to_gguf.py, with `LLAVA_PYTHON` (default
//! `.venv/bin/python`), which needs only the `gguf` package.

use std::path::{Path, PathBuf};
use std::process::Command;

use llava::gguf::GgufFile;
use llava::tokenizer::{SpaceStyle, StreamDecoder, Tokenizer};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn llama_vocab() -> Tokenizer {
    let path = root().join("tests/data/vocab/ggml-vocab-llama-spm.gguf");
    Tokenizer::from_gguf(&GgufFile::open(path).unwrap()).unwrap()
}

fn python() -> PathBuf {
    let python = std::env::var_os("LLAVA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} does not exist: set LLAVA_PYTHON to a Python with the `gguf` package",
        python.display()
    );
    python
}

fn mistral_vocab(dir: &Path) -> Tokenizer {
    let spm = std::env::var_os("LLAVA_MISTRAL_SPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("tests/fixtures/llava/next-mistral-hf/tokenizer.model"));
    assert!(
        spm.exists(),
        "Mistral's tokenizer.model not found at {}",
        spm.display()
    );
    let out = dir.join("mistral-tokenizer.gguf");
    let status = Command::new(python())
        .arg(root().join("tools/spm_to_gguf.py"))
        .arg(&spm)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "tools/spm_to_gguf.py failed");
    Tokenizer::from_gguf(&GgufFile::open(&out).unwrap()).unwrap()
}

#[test]
fn llama_cpp_test_vectors_exact() {
    let tok = llama_vocab().with_style(SpaceStyle::LlamaCpp);
    let dir = root().join("tests/data/vocab");
    let inp = std::fs::read_to_string(dir.join("ggml-vocab-llama-spm.gguf.inp")).unwrap();
    let out = std::fs::read_to_string(dir.join("ggml-vocab-llama-spm.gguf.out")).unwrap();
    // llama.cpp's test-tokenizer-0 format: inputs separated by this line, one output line each.
    let inputs: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    let outputs: Vec<&str> = out.split('\n').collect();
    let n = inputs.len() - 1; // the file ends with a separator
    assert!(n >= 26, "{n} cases");
    let mut failures = Vec::new();
    for (text, want) in inputs[..n].iter().zip(&outputs) {
        let want: Vec<u32> = want
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let got = tok.encode(text, false, false);
        if got != want {
            failures.push(format!("{text:?}: got {got:?}, llama.cpp {want:?}"));
        }
    }
    println!("llama.cpp vectors: {}/{n} exact", n - failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

struct Agreement {
    hf_style_vs_hf: usize,
    cpp_style_vs_hf: usize,
    cpp_style_vs_sp: usize,
    hf_style_vs_sp: usize,
    n: usize,
    n_no_special: usize,
}

fn compare(name: &str, tok: Tokenizer) -> Agreement {
    let path = root().join(format!("tests/data/tokenizer/{name}.json"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 2000);
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let hf_tok = tok.clone().with_style(SpaceStyle::HuggingFace);
    let cpp_tok = tok.with_style(SpaceStyle::LlamaCpp);
    let mut a = Agreement {
        hf_style_vs_hf: 0,
        cpp_style_vs_hf: 0,
        cpp_style_vs_sp: 0,
        hf_style_vs_sp: 0,
        n: cases.len(),
        n_no_special: 0,
    };
    let mut failures = Vec::new();
    // Why the llama.cpp style differs from HF, by the first feature present.
    let (mut near_special, mut leading, mut runs, mut other) = (0, 0, 0, Vec::new());
    for case in cases {
        let text = case[0].as_str().unwrap();
        let (hf, sp) = (ids(&case[1]), ids(&case[2]));
        let ours = hf_tok.encode(text, false, true);
        if ours == hf {
            a.hf_style_vs_hf += 1;
        } else if failures.len() < 10 {
            failures.push(format!("{text:?}: ours {ours:?}, HF {hf:?}"));
        }
        let cpp = cpp_tok.encode(text, false, true);
        a.cpp_style_vs_hf += usize::from(cpp == hf);
        if cpp != hf {
            if ["<s>", "</s>", "<unk>"].iter().any(|s| text.contains(s)) {
                near_special += 1;
            } else if text.starts_with(' ') {
                leading += 1;
            } else if text.contains("  ") || text.contains(" \n") || text.contains("▁") {
                runs += 1;
            } else {
                other.push(text.to_owned());
            }
        }
        // SentencePiece never parses special tokens: compare with them as plain text.
        a.cpp_style_vs_sp += usize::from(cpp_tok.encode(text, false, false) == sp);
        a.hf_style_vs_sp += usize::from(hf_tok.encode(text, false, false) == sp);
        if !["<s>", "</s>", "<unk>"].iter().any(|s| text.contains(s)) {
            a.n_no_special += 1;
        }
    }
    println!(
        "{name}: {} strings; HF style = HF {}/{n}; llama.cpp style = HF {}/{n}; \
         llama.cpp style = SentencePiece {}/{n}; HF style = SentencePiece {}/{n}",
        a.n,
        a.hf_style_vs_hf,
        a.cpp_style_vs_hf,
        a.cpp_style_vs_sp,
        a.hf_style_vs_sp,
        n = a.n
    );
    println!(
        "{name}: llama.cpp style vs HF differences: {near_special} with special tokens, \
         {leading} with leading spaces, {runs} with space runs, {} other",
        other.len()
    );
    assert!(
        failures.is_empty(),
        "{name}: differences from HF:\n{}",
        failures.join("\n")
    );
    // Every difference between the two styles has one of the documented causes.
    assert!(
        other.is_empty(),
        "{name}: unexplained differences: {other:?}"
    );
    a
}

#[test]
fn llama_vocab_matches_hugging_face_exactly() {
    let a = compare("llama", llama_vocab());
    assert_eq!(a.hf_style_vs_hf, a.n);
}

#[test]
fn mistral_vocab_matches_hugging_face_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let a = compare("mistral", mistral_vocab(dir.path()));
    assert_eq!(a.hf_style_vs_hf, a.n);
}

#[test]
fn bos_eos_flags_and_special_tokens() {
    let tok = llama_vocab();
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(tok.eos(), Some(2));
    assert!(tok.add_bos());
    assert_eq!(tok.encode("", true, true), [1]);
    assert_eq!(tok.encode("Hello world", true, true), [1, 15043, 3186]);
    // Special tokens mid-text are whole tokens only when parsing is on.
    assert_eq!(tok.encode("a</s>", false, true).last(), Some(&2));
    assert!(!tok.encode("a</s>", false, false).contains(&2));
    assert!(tok.is_end_of_generation(2));
}

#[test]
fn decode_round_trips_and_streams_utf8_safely() {
    let tok = llama_vocab().with_style(SpaceStyle::LlamaCpp);
    for text in [
        "Hello world",
        "  two  spaces ",
        "this is 🦙.cpp",
        "нещо на Български",
        "a\n\tb",
    ] {
        let ids = tok.encode(text, false, false);
        assert_eq!(tok.decode(&ids, true), text);
        let mut stream = StreamDecoder::new(&tok);
        let mut streamed = String::new();
        for &id in &ids {
            streamed.push_str(&stream.push(id));
        }
        streamed.push_str(&stream.finish());
        assert_eq!(streamed, tok.decode(&ids, false));
        // A reply on its own: the dummy prefix's space goes, as in `decode(ids, true)`.
        let mut stream = StreamDecoder::new(&tok).strip_leading_space(true);
        let reply: String = ids.iter().map(|&id| stream.push(id)).collect();
        assert_eq!(reply + &stream.finish(), tok.decode(&ids, true));
    }
    // 🦙 is four byte tokens: nothing comes out until the fourth.
    let ids = tok.encode("🦙", false, false);
    let bytes: Vec<u32> = ids
        .iter()
        .copied()
        .skip_while(|&i| tok.piece(i) == Some("▁"))
        .collect();
    assert_eq!(bytes.len(), 4, "{ids:?}");
    let mut stream = StreamDecoder::new(&tok);
    let outs: Vec<String> = bytes.iter().map(|&i| stream.push(i)).collect();
    assert_eq!(outs, ["", "", "", "🦙"]);
    // A dangling partial character at the end is flushed lossily.
    let mut stream = StreamDecoder::new(&tok);
    assert_eq!(stream.push(bytes[0]), "");
    assert_eq!(stream.finish(), "\u{FFFD}");
    // Control tokens print nothing unless asked.
    let mut stream = StreamDecoder::new(&tok);
    assert_eq!(stream.push(2), "");
    let mut stream = StreamDecoder::new(&tok).render_special(true);
    assert_eq!(stream.push(2), "</s>");
}
