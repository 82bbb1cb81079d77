//! The demo model answers questions about pictures it has never seen.
//!
//! `models/demo/*.gguf` is the model trained by `tools/train_demo.py`, converted by our
//! `llava-convert --outtype f16` and quantized by our `llava-quantize ... Q4_K_M`. The held-out
//! scenes are generated here by `tools/demo/scenes.py` (Pillow only) with the seed
//! `tools/eval_demo.py` uses, one canonical question of every kind per scene. The F16 answers
//! must be transformers' answers on the same checkpoint (`models/demo/transformers-answers.json`,
//! written by `tools/eval_demo.py --json`), token for token, and the accuracy (exact text) must
//! reach the floors below, F16 and Q4_K_M.
//!
//! The floors are the targets of the demo model's issue: 95% at F16, 90% at Q4_K_M. The
//! Q4_K_M answers are also compared with transformers' (printed, and in BENCHMARKS.md).
//! `llava` with no `-m` (the embedded Q4_K_M model, feature `demo-model`) must answer the
//! sample pictures' questions.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use llava::llm::{CacheType, LlamaModel, Output};
use llava::prompt::eval_prompt;
use llava::tokenizer::Tokenizer;
use llava::vision::{ClipModel, DecodedImage, ImageEmbeddings, prompt_with_images};
use serde_json::Value;

/// The held-out set: tools/eval_demo.py's default seed and count.
const HELD_OUT_SEED: u64 = 20261206;
const HELD_OUT_SCENES: usize = 100;
const MIN_F16_ACCURACY: f64 = 0.95;
const MIN_Q4_K_M_ACCURACY: f64 = 0.90;
/// Longest answer ("A purple circle, an orange square and a yellow star on a grey
/// background.") is 24 tokens with EOS.
const MAX_ANSWER_TOKENS: usize = 40;

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/demo")
}

struct Question {
    image: String,
    kind: String,
    question: String,
    answer: String,
}

/// Writes the held-out scenes into `dir` with the Python scene generator and reads the questions.
fn held_out(dir: &Path) -> Vec<Question> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/demo/scenes.py");
    let status = Command::new(common::python())
        .arg(&script)
        .args(["--seed", &HELD_OUT_SEED.to_string()])
        .args(["--count", &HELD_OUT_SCENES.to_string()])
        .arg("--out")
        .arg(dir)
        .status()
        .expect("running tools/demo/scenes.py");
    assert!(
        status.success(),
        "tools/demo/scenes.py failed (it needs Pillow)"
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("questions.json")).unwrap())
            .unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|q| Question {
            image: q["image"].as_str().unwrap().to_owned(),
            kind: q["kind"].as_str().unwrap().to_owned(),
            question: q["question"].as_str().unwrap().to_owned(),
            answer: q["answer"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

struct Demo {
    llm: LlamaModel,
    tokenizer: Tokenizer,
    clip: ClipModel,
}

impl Demo {
    fn open(llm: &str, mmproj: &str) -> Demo {
        let (llm_path, mmproj_path) = (demo_dir().join(llm), demo_dir().join(mmproj));
        let llm =
            LlamaModel::load(&llm_path).unwrap_or_else(|e| panic!("{}: {e}", llm_path.display()));
        let tokenizer = Tokenizer::from_gguf(llm.file()).unwrap();
        let clip = ClipModel::open(&mmproj_path)
            .unwrap_or_else(|e| panic!("{}: {e}", mmproj_path.display()));
        Demo {
            llm,
            tokenizer,
            clip,
        }
    }

    /// Greedy answer ids (ending with EOS unless cut at the limit) to one question about one
    /// image, in the LLaVA-1.5 prompt format the model was trained with.
    fn answer(&self, image: &ImageEmbeddings, question: &str) -> Vec<u32> {
        let text = format!("USER: <image>\n{question} ASSISTANT:");
        let prompt = prompt_with_images(&text, &[image]).unwrap();
        let mut session = self.llm.session(256, CacheType::F32).unwrap();
        let eval = eval_prompt(&mut session, &self.tokenizer, &prompt, true, false).unwrap();
        let mut logits = eval.logits;
        let mut ids = Vec::new();
        while ids.len() < MAX_ANSWER_TOKENS {
            let t = argmax(&logits);
            ids.push(t);
            if self.tokenizer.is_end_of_generation(t) {
                break;
            }
            logits = session.eval_tokens(&[t], Output::Last).unwrap().logits;
        }
        ids
    }

    fn text(&self, ids: &[u32]) -> String {
        let body: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&t| !self.tokenizer.is_end_of_generation(t))
            .collect();
        self.tokenizer.decode(&body, true).trim().to_owned()
    }
}

/// Every held-out question answered: (question, our ids, our text).
fn run<'q>(
    demo: &Demo,
    dir: &Path,
    questions: &'q [Question],
) -> Vec<(&'q Question, Vec<u32>, String)> {
    let mut encoded: BTreeMap<&str, ImageEmbeddings> = BTreeMap::new();
    let mut out = Vec::new();
    for q in questions {
        if !encoded.contains_key(q.image.as_str()) {
            let image = DecodedImage::open(dir.join(&q.image)).unwrap();
            encoded.insert(&q.image, demo.clip.encode_image(&image).unwrap());
        }
        let ids = demo.answer(&encoded[q.image.as_str()], &q.question);
        let text = demo.text(&ids);
        out.push((q, ids, text));
    }
    out
}

/// Prints the accuracy per kind and overall; returns the overall fraction right.
fn accuracy(label: &str, answers: &[(&Question, Vec<u32>, String)]) -> f64 {
    let mut per_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (q, _, text) in answers {
        let e = per_kind.entry(q.kind.as_str()).or_default();
        e.0 += usize::from(*text == q.answer);
        e.1 += 1;
    }
    let right: usize = per_kind.values().map(|v| v.0).sum();
    let total: usize = per_kind.values().map(|v| v.1).sum();
    for (kind, (r, t)) in &per_kind {
        eprintln!(
            "{label}: {kind:<11} {r:4}/{t:<4} {:6.1}%",
            100.0 * *r as f64 / *t as f64
        );
    }
    eprintln!(
        "{label}: overall     {right:4}/{total:<4} {:6.1}%",
        100.0 * right as f64 / total as f64
    );
    for (q, _, text) in answers.iter().filter(|(q, _, t)| *t != q.answer).take(10) {
        eprintln!(
            "{label}: {} {:?}: expected {:?}, got {:?}",
            q.image, q.question, q.answer, text
        );
    }
    right as f64 / total as f64
}

/// transformers-answers.json: the expected and transformers' answers to the held-out questions.
fn transformers_answers() -> Value {
    let refs: Value = serde_json::from_str(
        &std::fs::read_to_string(demo_dir().join("transformers-answers.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(refs["seed"].as_u64(), Some(HELD_OUT_SEED), "reference seed");
    refs
}

/// How many of our answers differ from transformers' (token ids), printing each; also checks
/// that the references are for the same questions.
fn count_disagreements(
    label: &str,
    answers: &[(&Question, Vec<u32>, String)],
    refs: &Value,
) -> usize {
    let refs = refs["questions"].as_array().unwrap();
    assert_eq!(refs.len(), answers.len(), "reference question count");
    let mut disagree = 0;
    for ((q, ids, text), r) in answers.iter().zip(refs) {
        assert_eq!(
            q.question,
            r["question"].as_str().unwrap(),
            "{}: question order",
            q.image
        );
        assert_eq!(
            q.answer,
            r["answer"].as_str().unwrap(),
            "{}: expected answer",
            q.image
        );
        let want: Vec<u32> = r["transformers_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        if *ids != want {
            disagree += 1;
            eprintln!(
                "{label} vs transformers: {} {:?}: ours {text:?}, transformers {:?}",
                q.image,
                q.question,
                r["transformers"].as_str().unwrap_or("?")
            );
        }
    }
    eprintln!(
        "{label} vs transformers: {} of {} answers identical",
        answers.len() - disagree,
        answers.len()
    );
    disagree
}

#[test]
fn f16_answers_held_out_questions_like_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let questions = held_out(dir.path());
    assert_eq!(questions.len(), HELD_OUT_SCENES * 6);
    let demo = Demo::open("demo-f16.gguf", "mmproj-demo-f16.gguf");
    let answers = run(&demo, dir.path(), &questions);
    let acc = accuracy("F16", &answers);
    let refs = transformers_answers();
    let disagree = count_disagreements("F16", &answers, &refs);
    assert_eq!(disagree, 0, "answers that differ from transformers'");
    let theirs = refs["accuracy"]["overall"].as_f64().unwrap();
    assert!(
        (acc - theirs).abs() < 1e-9,
        "F16 accuracy {acc:.4} != transformers' {theirs:.4}"
    );
    assert!(
        acc >= MIN_F16_ACCURACY,
        "F16 accuracy {acc:.4} < {MIN_F16_ACCURACY:.4}"
    );
}

#[test]
fn q4_k_m_answers_held_out_questions() {
    let dir = tempfile::tempdir().unwrap();
    let questions = held_out(dir.path());
    let demo = Demo::open("demo-q4_k_m.gguf", "mmproj-demo-q4_k_m.gguf");
    let answers = run(&demo, dir.path(), &questions);
    let acc = accuracy("Q4_K_M", &answers);
    count_disagreements("Q4_K_M", &answers, &transformers_answers());
    assert!(
        acc >= MIN_Q4_K_M_ACCURACY,
        "Q4_K_M accuracy {acc:.4} < {MIN_Q4_K_M_ACCURACY:.4}"
    );
}

/// Accuracy and agreement with transformers of another pair of files, for BENCHMARKS.md (e.g.
/// a Q8_0 made by llava-quantize, not committed): `DEMO_LLM=... DEMO_MMPROJ=... cargo test
/// --release --test demo_model -- --ignored --nocapture` (paths relative to models/demo/ or
/// absolute). Asserts only that the files load and answer every question.
#[test]
#[ignore = "needs DEMO_LLM and DEMO_MMPROJ"]
fn other_files_accuracy() {
    let (llm, mmproj) = (
        std::env::var("DEMO_LLM").expect("DEMO_LLM"),
        std::env::var("DEMO_MMPROJ").expect("DEMO_MMPROJ"),
    );
    let dir = tempfile::tempdir().unwrap();
    let questions = held_out(dir.path());
    let demo = Demo::open(&llm, &mmproj);
    let answers = run(&demo, dir.path(), &questions);
    accuracy(&llm, &answers);
    count_disagreements(&llm, &answers, &transformers_answers());
    assert_eq!(answers.len(), questions.len());
}

/// samples.json: per sample picture, every canonical question with its answer.
fn samples() -> Vec<Value> {
    let samples: Value =
        serde_json::from_str(&std::fs::read_to_string(demo_dir().join("samples.json")).unwrap())
            .unwrap();
    samples.as_array().unwrap().clone()
}

#[test]
fn sample_images_are_described() {
    let demo = Demo::open("demo-q4_k_m.gguf", "mmproj-demo-q4_k_m.gguf");
    for s in samples() {
        let name = s["image"].as_str().unwrap();
        let image = demo
            .clip
            .encode_image(&DecodedImage::open(demo_dir().join(name)).unwrap())
            .unwrap();
        for q in s["questions"].as_array().unwrap() {
            let question = q["question"].as_str().unwrap();
            let got = demo.text(&demo.answer(&image, question));
            assert_eq!(got, q["answer"].as_str().unwrap(), "{name}: {question}");
        }
    }
}

/// `llava` with no -m uses the embedded Q4_K_M model and its mmproj; with the CLI's default
/// sampling (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05: the README's first command,
/// here with fixed seeds) and greedy, it answers the sample pictures' questions.
#[cfg(feature = "demo-model")]
#[test]
fn llava_without_a_model_answers_with_the_embedded_demo_model() {
    for s in samples() {
        let image = demo_dir().join(s["image"].as_str().unwrap());
        for q in s["questions"].as_array().unwrap() {
            let question = q["question"].as_str().unwrap();
            for sampling in [&["-s", "1"][..], &["-s", "2"], &["--temp", "0"]] {
                let out = Command::new(env!("CARGO_BIN_EXE_llava"))
                    .arg("--image")
                    .arg(&image)
                    .args(["-p", question])
                    .args(sampling)
                    .output()
                    .expect("running llava");
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "{err}");
                assert!(err.contains("embedded demo model"), "{err}");
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout).trim(),
                    q["answer"].as_str().unwrap(),
                    "{}: {question} ({sampling:?})",
                    image.display()
                );
            }
        }
    }
}
