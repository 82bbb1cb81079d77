//! The decoder against transformers on every converted fixture (tests/fixtures/llava, made by
//! tools/make_fixtures.py with torch, f32): each checkpoint is converted by `llava::convert`
//! to an F32 GGUF, then per case
//! - text-only cases: logits at every position within 1e-4 relative (max|diff| / max|ref|) of
//!   `logits.npy`, final-norm hidden states likewise, greedy 16 tokens identical, and our
//!   tokenizer's ids for the prompt equal to `input_ids.npy`;
//! - image cases: the fixture's `image_embeds` spliced in place of the image tokens
//!   (`eval_embeddings`): hidden at every position and the last logits within 1e-4, greedy 16
//!   tokens identical.
//!
//! With Q8_0 (converter) and Q4_K_M (llava-quantize) weights, and with the f16 KV cache, the
//! error and the top-1 agreement with the reference are printed (run with --nocapture).

mod compare;
use compare::rel_err;

use std::path::{Path, PathBuf};

use llava::convert::{ConvertOptions, OutType, convert};
use llava::llm::{CacheType, LlamaModel, Output, Session};
use llava::npy;
use llava::prompt::{self, IMAGE_MARKER, Prompt};
use llava::quantize::{LlamaFileType, QuantizeOptions, quantize_file};
use llava::tokenizer::Tokenizer;
use serde_json::Value;

const TOL: f64 = 1e-4;
const IMAGE_TOKEN: i32 = 32000;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Case {
    name: String,
    prompt: String,
    has_images: bool,
    input_ids: Vec<i32>,
    logits: (Vec<usize>, Vec<f32>),
    hidden: Vec<f32>,
    greedy: Vec<i32>,
    image_embeds: Vec<f32>,
}

fn cases(fixture: &str) -> Vec<Case> {
    let dir = fixtures().join(format!("llava/{fixture}.ref"));
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let f32s = |c: &Value, key: &str| -> (Vec<usize>, Vec<f32>) {
        match c["files"][key].as_str() {
            Some(f) => {
                let a = npy::read::<f32>(dir.join(f)).unwrap();
                (a.shape, a.data)
            }
            None => (vec![], vec![]),
        }
    };
    let i32s = |c: &Value, key: &str| {
        npy::read::<i32>(dir.join(c["files"][key].as_str().unwrap()))
            .unwrap()
            .data
    };
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_owned(),
            prompt: c["prompt"].as_str().unwrap().to_owned(),
            has_images: !c["images"].as_array().unwrap().is_empty(),
            input_ids: i32s(c, "input_ids"),
            logits: f32s(c, "logits"),
            hidden: f32s(c, "hidden").1,
            greedy: i32s(c, "greedy"),
            image_embeds: f32s(c, "image_embeds").1,
        })
        .collect()
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

fn top1_agreement(a: &[f32], b: &[f32], n_vocab: usize) -> (usize, usize) {
    let rows = a.len() / n_vocab;
    let same = (0..rows)
        .filter(|r| {
            argmax(&a[r * n_vocab..(r + 1) * n_vocab]) == argmax(&b[r * n_vocab..(r + 1) * n_vocab])
        })
        .count();
    (same, rows)
}

/// Evaluates the case's prompt (image runs replaced by the reference embeddings); returns
/// (logits of every position, hidden of every position).
fn eval_prompt(s: &mut Session<'_>, case: &Case) -> (Vec<f32>, Vec<f32>) {
    let d = s.model().config().n_embd;
    let (mut logits, mut hidden) = (Vec::new(), Vec::new());
    let ids = &case.input_ids;
    let mut i = 0;
    let mut next_embed = 0;
    while i < ids.len() {
        let image = ids[i] == IMAGE_TOKEN;
        let j = i + ids[i..]
            .iter()
            .take_while(|&&t| (t == IMAGE_TOKEN) == image)
            .count();
        let out = if image {
            let rows = &case.image_embeds[next_embed * d..(next_embed + j - i) * d];
            next_embed += j - i;
            s.eval_embeddings(rows, j - i, Output::All).unwrap()
        } else {
            let toks: Vec<u32> = ids[i..j].iter().map(|&t| t as u32).collect();
            s.eval_tokens(&toks, Output::All).unwrap()
        };
        logits.extend(out.logits);
        hidden.extend(out.hidden);
        i = j;
    }
    assert_eq!(
        next_embed * d,
        case.image_embeds.len(),
        "{}: image embeddings used",
        case.name
    );
    (logits, hidden)
}

fn greedy(s: &mut Session<'_>, last_logits: &[f32], n: usize) -> Vec<i32> {
    let mut out = Vec::new();
    let mut logits = last_logits.to_vec();
    for _ in 0..n {
        let t = argmax(&logits) as u32;
        out.push(t as i32);
        logits = s.eval_tokens(&[t], Output::Last).unwrap().logits;
    }
    out
}

/// The image hook: the case's prompt text with its `<image>` markers, each replaced by that
/// image's reference embeddings through `Prompt::with_images` and `eval_prompt`, gives the
/// processor's token ids around the images and the reference last logits.
fn check_prompt_assembly(model: &LlamaModel, tokenizer: &Tokenizer, fixture: &str, case: &Case) {
    let d = model.config().n_embd;
    // One run of image tokens per image, in order.
    let mut runs = Vec::new();
    let mut i = 0;
    while i < case.input_ids.len() {
        let n = case.input_ids[i..]
            .iter()
            .take_while(|&&t| t == IMAGE_TOKEN)
            .count();
        if n > 0 {
            runs.push(n);
            i += n;
        } else {
            i += 1;
        }
    }
    let mut images = Vec::new();
    let mut row = 0;
    for n in runs {
        images.push((case.image_embeds[row * d..(row + n) * d].to_vec(), n));
        row += n;
    }
    let prompt = Prompt::with_images(&case.prompt, IMAGE_MARKER, images).unwrap();
    let mut s = model.session(512, CacheType::F32).unwrap();
    let out = prompt::eval_prompt(&mut s, tokenizer, &prompt, true, false).unwrap();
    let text_ids: Vec<i32> = case
        .input_ids
        .iter()
        .copied()
        .filter(|&t| t != IMAGE_TOKEN)
        .collect();
    let ours: Vec<i32> = out.tokens.iter().map(|&t| t as i32).collect();
    assert_eq!(
        ours, text_ids,
        "{fixture}/{}: prompt tokens around the images",
        case.name
    );
    assert_eq!(out.n_positions, case.input_ids.len());
    let err = rel_err(out.last_logits(model.config().n_vocab), &case.logits.1);
    assert!(
        err < TOL,
        "{fixture}/{}: assembled prompt logits {err}",
        case.name
    );
}

fn convert_fixture(fixture: &str, outdir: &Path, outtype: OutType) -> PathBuf {
    let mut opts = ConvertOptions::new(fixtures().join(format!("llava/{fixture}")), outdir);
    opts.outtype = outtype;
    if fixture == "llava15-orig" {
        opts.vision_tower = Some(fixtures().join("llava/llava15-orig-clip"));
    }
    convert(&opts).unwrap().llm_path
}

fn check_fixture(fixture: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f32_path = convert_fixture(fixture, &dir.path().join("f32"), OutType::F32);
    let model = LlamaModel::load(&f32_path).unwrap();
    let tokenizer = Tokenizer::from_gguf(model.file()).unwrap();
    let n_vocab = model.config().n_vocab;
    let cases = cases(fixture);
    for case in &cases {
        let mut s = model.session(512, CacheType::F32).unwrap();
        let (logits, hidden) = eval_prompt(&mut s, case);
        let n = case.input_ids.len();
        assert_eq!(hidden.len(), case.hidden.len(), "{fixture}/{}", case.name);
        let h_err = rel_err(&hidden, &case.hidden);
        // Text cases store every position's logits, image cases the last one.
        let ref_rows = case.logits.0[0];
        let ours = &logits[(n - ref_rows) * n_vocab..];
        let l_err = rel_err(ours, &case.logits.1);
        let g = greedy(&mut s, &logits[(n - 1) * n_vocab..], case.greedy.len());
        println!(
            "{fixture}/{}: {n} positions, logits ({ref_rows} rows) rel err {l_err:.2e}, hidden {h_err:.2e}, greedy {}",
            case.name,
            if g == case.greedy {
                "identical"
            } else {
                "DIFFERENT"
            }
        );
        assert!(
            l_err < TOL,
            "{fixture}/{}: logits rel err {l_err}",
            case.name
        );
        assert!(
            h_err < TOL,
            "{fixture}/{}: hidden rel err {h_err}",
            case.name
        );
        assert_eq!(g, case.greedy, "{fixture}/{}: greedy tokens", case.name);
        if case.has_images {
            check_prompt_assembly(&model, &tokenizer, fixture, case);
        } else {
            let ids: Vec<i32> = tokenizer
                .encode(&case.prompt, true, true)
                .iter()
                .map(|&t| t as i32)
                .collect();
            assert_eq!(
                ids, case.input_ids,
                "{fixture}/{}: tokenizer vs the processor",
                case.name
            );
        }
    }

    // Measured, not asserted: the f16 cache and quantized weights.
    let q8 = convert_fixture(fixture, &dir.path().join("q8"), OutType::Q8_0);
    let q4 = dir.path().join("q4_k_m.gguf");
    let opts = QuantizeOptions {
        file_type: LlamaFileType::MostlyQ4_K_M,
        threads: 0,
        allow_requantize: false,
        progress: false,
    };
    quantize_file(&f32_path, &q4, &opts).unwrap();
    for (label, path, cache) in [
        ("F32 weights, f16 cache", f32_path.clone(), CacheType::F16),
        ("Q8_0", q8, CacheType::F32),
        ("Q4_K_M", q4, CacheType::F32),
    ] {
        let m = LlamaModel::load(&path).unwrap();
        let (mut worst, mut same, mut rows) = (0f64, 0, 0);
        for case in &cases {
            let mut s = m.session(512, cache).unwrap();
            let (logits, _) = eval_prompt(&mut s, case);
            let n = case.input_ids.len();
            let q = &logits[(n - case.logits.0[0]) * n_vocab..];
            worst = worst.max(rel_err(q, &case.logits.1));
            let (a, r) = top1_agreement(q, &case.logits.1, n_vocab);
            same += a;
            rows += r;
        }
        println!(
            "{fixture} {label}: logits rel err (worst case) {worst:.2e}, top-1 agreement {same}/{rows}"
        );
    }
}

#[test]
fn llava15_hf() {
    check_fixture("llava15-hf");
}

#[test]
fn llava15_orig() {
    check_fixture("llava15-orig");
}

#[test]
fn next_vicuna_hf() {
    check_fixture("next-vicuna-hf");
}

#[test]
fn next_mistral_hf() {
    check_fixture("next-mistral-hf");
}
