//! The decoder on small random models: an f64 reference forward written from the LLaMA
//! equations (RMSNorm, rope on adjacent pairs, causal grouped-query attention, SwiGLU), KV-cache
//! consistency (one batch = token by token = uneven batches; the cache growing as positions are
//! written, rewritten after a truncation), f16 vs f32 cache, context limits,
//! the bundled Q4_K_M file (the same bits with the weights in memory or mapped), weights
//! repacked at load (the logits of ggml's layout; what is and is not repacked), and errors
//! naming bad files (truncated ones in both storages).

use std::path::Path;

use llava::GgmlType;
use llava::gguf::{GgufValue, GgufWriter};
use llava::kernels::{Tier, WeightLayout, kernels};
use llava::llm::{
    CacheType, KvCache, LlamaModel, LlmError, LoadMode, LoadOptions, Output, Repack, Trace,
    WeightStorage,
};

struct Shape {
    n_vocab: usize,
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_head_kv: usize,
    n_ff: usize,
    freq_base: f32,
    tied: bool,
}

const SMALL: Shape = Shape {
    n_vocab: 61,
    n_embd: 32,
    n_layer: 2,
    n_head: 4,
    n_head_kv: 2,
    n_ff: 48,
    freq_base: 10000.0,
    tied: false,
};

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// name, ggml dims, values
type Tensors = Vec<(String, Vec<u64>, Vec<f32>)>;

fn random_tensors(s: &Shape) -> Tensors {
    let (d, kv, f) = (s.n_embd, s.n_embd / s.n_head * s.n_head_kv, s.n_ff);
    let mut t: Tensors = Vec::new();
    let mut seed = 1;
    let mut add = |name: String, rows: usize, cols: usize, scale: f32, offset: f32| {
        seed += 1;
        let v = values(rows * cols, seed, scale)
            .into_iter()
            .map(|x| x + offset)
            .collect();
        let dims = if rows == 1 {
            vec![cols as u64]
        } else {
            vec![cols as u64, rows as u64]
        };
        t.push((name, dims, v));
    };
    add("token_embd.weight".into(), s.n_vocab, d, 1.0, 0.0);
    for i in 0..s.n_layer {
        add(format!("blk.{i}.attn_norm.weight"), 1, d, 0.2, 1.0);
        add(format!("blk.{i}.attn_q.weight"), d, d, 0.5, 0.0);
        add(format!("blk.{i}.attn_k.weight"), kv, d, 0.5, 0.0);
        add(format!("blk.{i}.attn_v.weight"), kv, d, 0.5, 0.0);
        add(format!("blk.{i}.attn_output.weight"), d, d, 0.3, 0.0);
        add(format!("blk.{i}.ffn_norm.weight"), 1, d, 0.2, 1.0);
        add(format!("blk.{i}.ffn_gate.weight"), f, d, 0.4, 0.0);
        add(format!("blk.{i}.ffn_up.weight"), f, d, 0.4, 0.0);
        add(format!("blk.{i}.ffn_down.weight"), d, f, 0.3, 0.0);
    }
    add("output_norm.weight".into(), 1, d, 0.2, 1.0);
    if !s.tied {
        add("output.weight".into(), s.n_vocab, d, 0.5, 0.0);
    }
    t
}

fn write_model(path: &Path, s: &Shape, tensors: &Tensors, ty: GgmlType, n_ctx_train: u32) {
    let mut w = GgufWriter::new(path);
    let kv: Vec<(&str, GgufValue)> = vec![
        ("general.architecture", "llama".into()),
        ("llama.block_count", GgufValue::U32(s.n_layer as u32)),
        ("llama.context_length", GgufValue::U32(n_ctx_train)),
        ("llama.embedding_length", GgufValue::U32(s.n_embd as u32)),
        ("llama.feed_forward_length", GgufValue::U32(s.n_ff as u32)),
        (
            "llama.attention.head_count",
            GgufValue::U32(s.n_head as u32),
        ),
        (
            "llama.attention.head_count_kv",
            GgufValue::U32(s.n_head_kv as u32),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon",
            GgufValue::F32(1e-5),
        ),
        ("llama.rope.freq_base", GgufValue::F32(s.freq_base)),
        ("llama.vocab_size", GgufValue::U32(s.n_vocab as u32)),
    ];
    for (k, v) in kv {
        w.add_metadata(k, v).unwrap();
    }
    let type_of = |name: &str, dims: &[u64]| {
        if dims.len() == 1 || name.contains("norm") {
            GgmlType::F32
        } else {
            ty
        }
    };
    for (name, dims, _) in tensors {
        w.add_tensor(name.clone(), dims, type_of(name, dims))
            .unwrap();
    }
    let mut data = w.write_header().unwrap();
    for (name, dims, v) in tensors {
        let t = type_of(name, dims);
        let k = dims[0] as usize;
        let row_bytes = llava::quant::row_bytes(t, k).unwrap();
        let mut bytes = vec![0u8; row_bytes * (v.len() / k)];
        for (src, dst) in v.chunks(k).zip(bytes.chunks_mut(row_bytes)) {
            llava::quant::quantize_row(t, src, dst).unwrap();
        }
        data.write_tensor(name, &bytes).unwrap();
    }
    data.finish().unwrap();
}

/// The LLaMA forward pass in f64, every position, from the equations; returns logits [n × vocab].
fn reference_logits(s: &Shape, t: &Tensors, tokens: &[u32]) -> Vec<f64> {
    let get = |name: &str| -> Vec<f64> {
        t.iter()
            .find(|x| x.0 == name)
            .unwrap()
            .2
            .iter()
            .map(|&v| v as f64)
            .collect()
    };
    let (d, hd) = (s.n_embd, s.n_embd / s.n_head);
    let kvw = hd * s.n_head_kv;
    let n = tokens.len();
    let matvec = |w: &[f64], x: &[f64], rows: usize| -> Vec<f64> {
        let k = x.len();
        (0..rows)
            .map(|r| (0..k).map(|i| w[r * k + i] * x[i]).sum())
            .collect()
    };
    let rms = |x: &[f64], w: &[f64]| -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let sc = 1.0 / (ms + 1e-5).sqrt();
        x.iter().zip(w).map(|(v, w)| v * sc * w).collect()
    };
    let rope = |x: &mut [f64], pos: usize, heads: usize| {
        for h in 0..heads {
            for i in 0..hd / 2 {
                let theta = pos as f64 * (s.freq_base as f64).powf(-2.0 * i as f64 / hd as f64);
                let (a, b) = (x[h * hd + 2 * i], x[h * hd + 2 * i + 1]);
                x[h * hd + 2 * i] = a * theta.cos() - b * theta.sin();
                x[h * hd + 2 * i + 1] = a * theta.sin() + b * theta.cos();
            }
        }
    };
    let emb = get("token_embd.weight");
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&tk| emb[tk as usize * d..(tk as usize + 1) * d].to_vec())
        .collect();
    for l in 0..s.n_layer {
        let p = |n: &str| get(&format!("blk.{l}.{n}.weight"));
        let (an, wq, wk, wv, wo) = (
            p("attn_norm"),
            p("attn_q"),
            p("attn_k"),
            p("attn_v"),
            p("attn_output"),
        );
        let (fnorm, wg, wu, wd) = (p("ffn_norm"), p("ffn_gate"), p("ffn_up"), p("ffn_down"));
        let mut qs = Vec::new();
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for (pos, x) in xs.iter().enumerate() {
            let h = rms(x, &an);
            let mut q = matvec(&wq, &h, d);
            let mut k = matvec(&wk, &h, kvw);
            rope(&mut q, pos, s.n_head);
            rope(&mut k, pos, s.n_head_kv);
            qs.push(q);
            ks.push(k);
            vs.push(matvec(&wv, &h, kvw));
        }
        for i in 0..n {
            let mut a = vec![0f64; d];
            for h in 0..s.n_head {
                let kh = h / (s.n_head / s.n_head_kv);
                let sc: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..hd)
                            .map(|c| qs[i][h * hd + c] * ks[j][kh * hd + c])
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = sc.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..hd {
                    a[h * hd + c] = (0..=i).map(|j| e[j] / z * vs[j][kh * hd + c]).sum();
                }
            }
            let o = matvec(&wo, &a, d);
            for c in 0..d {
                xs[i][c] += o[c];
            }
            let h = rms(&xs[i], &fnorm);
            let g = matvec(&wg, &h, s.n_ff);
            let u = matvec(&wu, &h, s.n_ff);
            let act: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let dn = matvec(&wd, &act, d);
            for c in 0..d {
                xs[i][c] += dn[c];
            }
        }
    }
    let on = get("output_norm.weight");
    let out = if s.tied { emb } else { get("output.weight") };
    xs.iter()
        .flat_map(|x| matvec(&out, &rms(x, &on), s.n_vocab))
        .collect()
}

fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let m = b.iter().fold(0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0f64, |e, (x, y)| e.max((*x as f64 - y).abs()))
        / m
}

fn rel_err32(a: &[f32], b: &[f32]) -> f64 {
    let b: Vec<f64> = b.iter().map(|&v| v as f64).collect();
    rel_err(a, &b)
}

const PROMPT: [u32; 11] = [1, 5, 17, 42, 3, 60, 8, 8, 23, 11, 0];

#[test]
fn f32_model_matches_the_f64_reference_at_every_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let t = random_tensors(&SMALL);
    write_model(&path, &SMALL, &t, GgmlType::F32, 64);
    let model = LlamaModel::load(&path).unwrap();
    let mut s = model.session(32, CacheType::F32).unwrap();
    let out = s.eval_tokens(&PROMPT, Output::All).unwrap();
    assert_eq!(
        (out.rows, out.logits.len()),
        (PROMPT.len(), PROMPT.len() * SMALL.n_vocab)
    );
    assert_eq!(out.hidden.len(), PROMPT.len() * SMALL.n_embd);
    let want = reference_logits(&SMALL, &t, &PROMPT);
    let err = rel_err(&out.logits, &want);
    println!("f32 weights, f32 cache vs f64 reference: {err:.2e}");
    assert!(err < 1e-5, "{err}");

    // Tied output (no output.weight) and a large rope base (Mistral-like).
    let tied = Shape {
        tied: true,
        freq_base: 1e6,
        n_head_kv: 1,
        ..SMALL
    };
    let t = random_tensors(&tied);
    let path = dir.path().join("tied.gguf");
    write_model(&path, &tied, &t, GgmlType::F32, 64);
    let model = LlamaModel::load(&path).unwrap();
    let mut s = model.session(0, CacheType::F32).unwrap();
    assert_eq!(s.n_ctx(), 64); // 0 = the training context
    let out = s.eval_tokens(&PROMPT, Output::All).unwrap();
    let err = rel_err(&out.logits, &reference_logits(&tied, &t, &PROMPT));
    assert!(err < 1e-5, "tied: {err}");
}

#[test]
fn batched_prompt_equals_token_by_token_and_uneven_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let t = random_tensors(&SMALL);
    // F32 weights: with F16 weights the activations are rounded to f16 (as ggml does), so the
    // batched path's GEMM tiles, which sum in another order than the single-token dots (1 ulp
    // apart, tests/kernels_tiers.rs), can flip an f16 rounding now and then (2^-11 relative in one
    // element) and the two paths legitimately differ by ~1e-4. In f32 the paths agree to rounding.
    write_model(&path, &SMALL, &t, GgmlType::F32, 64);
    let model = LlamaModel::load(&path).unwrap();
    let mut batch = model.session(32, CacheType::F32).unwrap();
    let all = batch.eval_tokens(&PROMPT, Output::All).unwrap();
    let mut single = model.session(32, CacheType::F32).unwrap();
    let mut stepwise = Vec::new();
    for &tk in &PROMPT {
        let o = single.eval_tokens(&[tk], Output::Last).unwrap();
        assert_eq!(o.rows, 1);
        stepwise.extend_from_slice(o.last_logits().unwrap());
    }
    let err = rel_err32(&stepwise, &all.logits);
    println!("token by token vs one batch: {err:.2e}");
    assert!(err < 1e-5, "{err}");
    // Batches of 4 inside one call.
    let mut chunked = model.session(32, CacheType::F32).unwrap();
    chunked.set_batch_size(4);
    let c = chunked.eval_tokens(&PROMPT, Output::All).unwrap();
    assert!(rel_err32(&c.logits, &all.logits) < 1e-5);
    // Last only = last row of All.
    let mut last = model.session(32, CacheType::F32).unwrap();
    last.set_batch_size(4);
    let l = last.eval_tokens(&PROMPT, Output::Last).unwrap();
    assert_eq!(l.rows, 1);
    assert_eq!(l.first_pos, PROMPT.len() - 1);
    assert!(rel_err32(l.last_logits().unwrap(), all.last_logits().unwrap()) < 1e-5);
    // Embeddings in = tokens in.
    let mut e = model.session(32, CacheType::F32).unwrap();
    let mut embd = vec![0f32; PROMPT.len() * SMALL.n_embd];
    for (tk, row) in PROMPT.iter().zip(embd.chunks_mut(SMALL.n_embd)) {
        model.embed_token(*tk, row).unwrap();
    }
    e.eval_tokens(&PROMPT[..3], Output::None).unwrap();
    let o = e
        .eval_embeddings(&embd[3 * SMALL.n_embd..], PROMPT.len() - 3, Output::All)
        .unwrap();
    assert_eq!(o.first_pos, 3);
    assert!(rel_err32(&o.logits, &all.logits[3 * SMALL.n_vocab..]) < 1e-5);
    assert_eq!(e.n_past(), PROMPT.len());
}

#[test]
fn f16_cache_is_close_to_f32_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    write_model(&path, &SMALL, &random_tensors(&SMALL), GgmlType::F32, 64);
    let model = LlamaModel::load(&path).unwrap();
    let a = model
        .session(16, CacheType::F32)
        .unwrap()
        .eval_tokens(&PROMPT, Output::All)
        .unwrap();
    let b = model
        .session(16, CacheType::F16)
        .unwrap()
        .eval_tokens(&PROMPT, Output::All)
        .unwrap();
    let err = rel_err32(&b.logits, &a.logits);
    println!("f16 cache vs f32 cache: {err:.2e}");
    assert!(err > 0.0 && err < 5e-3, "{err}");
}

#[test]
fn kv_cache_grows_with_the_positions_written_and_rewrites_after_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let t = random_tensors(&SMALL);
    write_model(&path, &SMALL, &t, GgmlType::F32, 64);
    let model = LlamaModel::load(&path).unwrap();
    let kv_width = SMALL.n_head_kv * (SMALL.n_embd / SMALL.n_head);
    for (ty, elem) in [(CacheType::F16, 2), (CacheType::F32, 4)] {
        let per_pos = SMALL.n_layer * 2 * kv_width * elem;
        let mut s = model.session(16, ty).unwrap();
        s.set_batch_size(4);
        // Room for the whole context is reserved; none of it written yet.
        assert_eq!(s.cache().bytes(), 16 * per_pos);
        assert_eq!(s.cache().bytes_written(), 0);
        s.eval_tokens(&PROMPT[..6], Output::None).unwrap();
        assert_eq!(s.cache().bytes_written(), 6 * per_pos);
        for (i, &tk) in PROMPT[6..].iter().enumerate() {
            s.eval_tokens(&[tk], Output::Last).unwrap();
            assert_eq!(s.cache().positions_written(), 7 + i);
        }
        // Back to 3 positions: the next 5 rewrite written rows, the 5 after that rewrite 3 and
        // append 2 (one batch of 4 across the written end).
        let (x, y) = ([9u32, 33, 2, 47, 14], [7u32, 50, 21, 36, 4]);
        s.truncate(3);
        s.eval_tokens(&x, Output::None).unwrap();
        assert_eq!(s.cache().bytes_written(), PROMPT.len() * per_pos);
        let out = s.eval_tokens(&y, Output::All).unwrap();
        assert_eq!(s.cache().positions_written(), 13);
        let tokens: Vec<u32> = PROMPT[..3].iter().chain(&x).chain(&y).copied().collect();
        let reference = reference_logits(&SMALL, &t, &tokens);
        let err = rel_err(&out.logits, &reference[8 * SMALL.n_vocab..]);
        // A row left stale or misplaced would be off by O(1); the f16 cache rounds K and V.
        let bound = if ty == CacheType::F32 { 1e-5 } else { 5e-3 };
        assert!(err < bound, "{ty:?}: {err}");
        // Past the context: the clear error, nothing written; then exactly full.
        let e = s.eval_tokens(&PROMPT[..4], Output::Last).unwrap_err();
        assert!(
            matches!(
                e,
                LlmError::ContextFull {
                    needed: 17,
                    n_ctx: 16,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(s.cache().positions_written(), 13);
        s.eval_tokens(&PROMPT[..3], Output::Last).unwrap();
        assert_eq!(s.cache().bytes_written(), s.cache().bytes());
    }
}

#[test]
fn a_cache_beyond_the_memory_is_refused_up_front() {
    // 2 TiB in 8192 buffers of 256 MiB: each buffer alone would be granted (address space is
    // reserved lazily), the whole is more than any test machine holds, so the cache must fail
    // at creation, not when the job fills it. Linux with overcommit_memory = 1 grants anything.
    if std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|m| m.trim() == "1") {
        println!("skipped: overcommit_memory = 1 grants any reservation");
        return;
    }
    let e = KvCache::new(4096, 1 << 14, 1 << 13, CacheType::F16).unwrap_err();
    assert!(
        matches!(e, LlmError::CacheTooLarge { n_ctx: 16384, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("2048.0 GiB"), "{e}");
}

#[test]
fn context_limits_and_bad_tokens_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    write_model(&path, &SMALL, &random_tensors(&SMALL), GgmlType::F32, 64);
    let model = LlamaModel::load(&path).unwrap();
    let mut s = model.session(8, CacheType::F16).unwrap();
    let e = s.eval_tokens(&PROMPT, Output::Last).unwrap_err();
    assert!(
        matches!(
            e,
            LlmError::ContextFull {
                needed: 11,
                n_ctx: 8,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("context full"), "{e}");
    assert_eq!(s.n_past(), 0);
    s.eval_tokens(&PROMPT[..8], Output::Last).unwrap();
    assert!(s.eval_tokens(&[1], Output::Last).is_err());
    let e = model
        .session(8, CacheType::F16)
        .unwrap()
        .eval_tokens(&[61], Output::Last)
        .unwrap_err();
    assert!(e.to_string().contains("token id 61"), "{e}");
    let e = s.eval_embeddings(&[0.0; 5], 1, Output::Last).unwrap_err();
    assert!(e.to_string().contains("embeddings"), "{e}");
    // A context whose cache cannot exist is an error, not an abort.
    let e = model.session(usize::MAX / 4, CacheType::F16).err().unwrap();
    assert!(matches!(e, LlmError::CacheTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("KV cache"), "{e}");

    // A file missing a tensor, and one with a wrong shape.
    let mut t = random_tensors(&SMALL);
    t.retain(|x| x.0 != "blk.1.ffn_up.weight");
    let bad = dir.path().join("missing.gguf");
    write_model(&bad, &SMALL, &t, GgmlType::F32, 64);
    let e = LlamaModel::load(&bad).err().unwrap().to_string();
    assert!(
        e.contains("blk.1.ffn_up.weight") && e.contains("missing"),
        "{e}"
    );
    let wide = Shape { n_ff: 64, ..SMALL };
    let bad = dir.path().join("shape.gguf");
    write_model(&bad, &wide, &random_tensors(&SMALL), GgmlType::F32, 64);
    let e = LlamaModel::load(&bad).err().unwrap().to_string();
    assert!(
        e.contains("blk.0.ffn_gate.weight") && e.contains("[32, 48]"),
        "{e}"
    );
    let e = LlamaModel::load(dir.path().join("nope.gguf"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nope.gguf"), "{e}");
    let not_gguf = dir.path().join("text.gguf");
    std::fs::write(&not_gguf, b"# not a model\n").unwrap();
    let e = LlamaModel::load(&not_gguf).err().unwrap().to_string();
    assert!(
        e.contains("text.gguf") && e.contains("not a GGUF file"),
        "{e}"
    );
}

#[test]
fn traces_name_layer_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    write_model(&path, &SMALL, &random_tensors(&SMALL), GgmlType::F32, 64);
    let model = LlamaModel::load(&path).unwrap();
    let mut s = model.session(16, CacheType::F32).unwrap();
    s.set_trace(Some(Trace::new(vec![
        "l_out-1".into(),
        "result_norm".into(),
    ])));
    let out = s.eval_tokens(&PROMPT, Output::All).unwrap();
    let trace = s.take_trace().unwrap();
    let (l_out, cols) = trace.get("l_out-1").unwrap();
    assert_eq!(
        (l_out.len(), cols),
        (PROMPT.len() * SMALL.n_embd, SMALL.n_embd)
    );
    assert_eq!(trace.get("result_norm").unwrap().0, out.hidden);
    assert!(trace.get("attn_norm-0").is_none());
}

#[test]
fn bundled_q4_k_m_file_decodes_consistently() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-random-llama-q4_k_m.gguf");
    let model = LlamaModel::load(&path).unwrap();
    let c = model.config();
    assert_eq!(
        (c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.n_vocab),
        (256, 2, 4, 2, 32000)
    );
    let prompt = [1u32, 15043, 3186, 29892, 920, 526, 366];
    let all = model
        .session(64, CacheType::F16)
        .unwrap()
        .eval_tokens(&prompt, Output::All)
        .unwrap();
    let mut s = model.session(64, CacheType::F16).unwrap();
    let mut step = Vec::new();
    for &t in &prompt {
        step.extend_from_slice(
            s.eval_tokens(&[t], Output::Last)
                .unwrap()
                .last_logits()
                .unwrap(),
        );
    }
    let err = rel_err32(&step, &all.logits);
    println!("Q4_K_M: token by token vs batch: {err:.2e}");
    // Q8_K activations are quantized per row in both paths; the batch path uses the GEMM tiles.
    assert!(err < 1e-4, "{err}");
    assert!(all.logits.iter().all(|v| v.is_finite()));
}

/// Both storages of the weights (read into memory, mapped) decode the bundled file to the same
/// bits, and say where the weights went. In ggml's layout (`Repack::Off`): a tier with a
/// repacked dot decodes weights read into memory within rounding of the mapped ones, not to
/// their bits (`repacked_weights_decode_to_the_logits_of_ggml_layout`).
#[test]
fn in_memory_and_mapped_weights_give_identical_logits() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-random-llama-q4_k_m.gguf");
    let prompt = [1u32, 15043, 3186, 29892, 920, 526, 366];
    let logits = |mode: LoadMode, storage: WeightStorage| {
        let repack = Repack::Off;
        let model = LlamaModel::load_with_options(&path, LoadOptions { mode, repack }).unwrap();
        let choice = model.load_choice().copied().unwrap();
        assert_eq!((choice.mode, choice.storage), (mode, storage));
        let mut s = model.session(64, CacheType::F16).unwrap();
        let mut out = s.eval_tokens(&prompt, Output::All).unwrap().logits;
        // And one decoded token after the prompt (the single-row path).
        out.extend_from_slice(
            s.eval_tokens(&[29871], Output::Last)
                .unwrap()
                .last_logits()
                .unwrap(),
        );
        out
    };
    let in_memory = logits(LoadMode::Memory, WeightStorage::Memory);
    let mapped = logits(LoadMode::Mmap, WeightStorage::Mapped);
    assert_eq!(in_memory.len(), (prompt.len() + 1) * 32000);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert!(bits(&in_memory) == bits(&mapped), "logits differ");
    // Auto takes one of the two (by the memory free now) and still decodes the same bits.
    let auto = LlamaModel::load(&path).unwrap();
    let choice = *auto.load_choice().unwrap();
    assert_eq!(choice.mode, LoadMode::Auto);
    assert_eq!(choice.file_bytes, std::fs::metadata(&path).unwrap().len());
    assert!(bits(&logits(LoadMode::Auto, choice.storage)) == bits(&mapped));
}

/// A file cut short (in its header, in its tensor data, or empty) is an error naming the file in
/// both storages, never a panic; the intact file loads afterwards.
#[test]
fn truncated_files_are_clear_errors_in_memory_and_mapped() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-random-llama-q4_k_m.gguf");
    let bytes = std::fs::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (what, len) in [
        ("empty", 0),
        ("in the magic", 3),
        ("in the header", 1000),
        ("in the tensor data", bytes.len() / 2),
        ("one byte short", bytes.len() - 1),
    ] {
        let cut = dir.path().join(format!("cut-{len}.gguf"));
        std::fs::write(&cut, &bytes[..len]).unwrap();
        for mode in [LoadMode::Memory, LoadMode::Mmap, LoadMode::Auto] {
            let e = LlamaModel::load_with(&cut, mode).err();
            let e = e
                .unwrap_or_else(|| panic!("{what}, {mode:?}: loaded"))
                .to_string();
            assert!(
                e.contains(&format!("cut-{len}.gguf")),
                "{what}, {mode:?}: {e}"
            );
        }
    }
    // The missing file: the error names it before any storage is chosen.
    let e = LlamaModel::load_with(dir.path().join("nope.gguf"), LoadMode::Memory)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("nope.gguf"), "{e}");
    for mode in [LoadMode::Memory, LoadMode::Mmap] {
        assert!(LlamaModel::load_with(&path, mode).is_ok(), "{mode:?}");
    }
}

/// The logits of a 7-token prompt (one batch, n > 1), then of 2 tokens decoded one at a time
/// (n = 1), one run after the other (token ids wrapped into the vocabulary).
fn prompt_then_decode(model: &LlamaModel) -> (Vec<f32>, Vec<f32>) {
    let vocab = model.config().n_vocab as u32;
    let prompt = [1, 15043, 3186, 29892, 920, 526, 366].map(|t: u32| t % vocab);
    let mut s = model.session(64, CacheType::F16).unwrap();
    let prompt = s.eval_tokens(&prompt, Output::All).unwrap().logits;
    let mut decoded = Vec::new();
    for t in [29871, 4587] {
        let out = s.eval_tokens(&[t % vocab], Output::Last).unwrap();
        decoded.extend_from_slice(out.last_logits().unwrap());
    }
    (prompt, decoded)
}

fn load(path: &Path, mode: LoadMode, repack: Repack) -> LlamaModel {
    LlamaModel::load_with_options(path, LoadOptions { mode, repack }).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Q4_K and Q6_K weights repacked into Q4_K×8 and Q6_K×8 at load (forced, whatever the tier's
/// dots) decode to the logits of the same file mapped in ggml's layout. The prompt (7 tokens,
/// below the packed tiles' 8) runs on a tier with group dots for the layouts those dots token
/// by token, as decoding does; elsewhere the rows unpacked and the tiles of ggml's layout, bit
/// for bit. Decoding runs the tier's group dot against its ggml row dot: bit for bit on the
/// scalar tier, where the group dot is the scalar row dot (when the tests run on another tier,
/// this test runs itself again with `LLAVA_CPU=scalar`), within 1e-5 of the largest logit
/// elsewhere (float sums in another order, exact integer parts).
#[test]
fn repacked_weights_decode_to_the_logits_of_ggml_layout() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-random-llama-q4_k_m.gguf");
    let mapped = load(&path, LoadMode::Mmap, Repack::Force);
    let summary = mapped.repack_summary().unwrap();
    assert_eq!(summary.tensors(), 0, "mapped weights are never repacked");
    let repacked = load(&path, LoadMode::Memory, Repack::Force);
    let summary = repacked.repack_summary().unwrap();
    // Every Q4_K and Q6_K matrix of the layers is (all have rows in eights), each to its
    // layout; the tied token embedding is not.
    let matrices = |ty| {
        repacked
            .file()
            .tensors()
            .iter()
            .filter(|t| t.ggml_type == ty && t.name.starts_with("blk."))
            .count()
    };
    let (q4_k_matrices, q6_k_matrices) = (matrices(GgmlType::Q4_K), matrices(GgmlType::Q6_K));
    assert!(q4_k_matrices >= 8, "{q4_k_matrices}");
    assert!(q6_k_matrices >= 1, "{q6_k_matrices}");
    let mut got = summary.repacked.clone();
    got.sort_by_key(|&(ty, _, _)| ty as u32);
    assert_eq!(
        got,
        [
            (GgmlType::Q4_K, WeightLayout::Q4KX8, q4_k_matrices),
            (GgmlType::Q6_K, WeightLayout::Q6KX8, q6_k_matrices)
        ]
    );
    let w = repacked.weights();
    let layer = &w.layers[0];
    assert_eq!(layer.wq.layout, WeightLayout::Q4KX8);
    assert_eq!(layer.w_gate.layout, WeightLayout::Q4KX8);
    assert_eq!(w.token_embd.layout, WeightLayout::Ggml);
    assert_eq!(
        w.output, w.token_embd,
        "tied: the embedding, in ggml's layout"
    );
    let repacked_bytes = layer.wq.view(repacked.file()).unwrap().data().to_vec();
    assert_ne!(
        repacked_bytes,
        layer.wq.view(mapped.file()).unwrap().data(),
        "the bytes were rearranged"
    );

    let (prompt, decoded) = prompt_then_decode(&repacked);
    let (prompt_ggml, decoded_ggml) = prompt_then_decode(&mapped);
    let tier = kernels().tier;
    let group_dots = kernels().repacked.q4_k_x8.is_some() || kernels().repacked.q6_k_x8.is_some();
    if group_dots {
        let err = rel_err32(&prompt, &prompt_ggml);
        println!("{tier}: prompt, repacked vs ggml's layout: {err:.2e}");
        assert!(err < 1e-5, "prompt: {err}");
    } else {
        assert!(bits(&prompt) == bits(&prompt_ggml), "prompt logits differ");
    }
    if tier == Tier::Scalar {
        assert!(
            bits(&decoded) == bits(&decoded_ggml),
            "decoded logits differ"
        );
    } else {
        let err = rel_err32(&decoded, &decoded_ggml);
        println!("{tier}: decoded, repacked vs ggml's layout: {err:.2e}");
        assert!(err < 1e-5, "{err}");
        if std::env::var_os("LLAVA_CPU").is_none() {
            let me = std::env::current_exe().unwrap();
            let name = "repacked_weights_decode_to_the_logits_of_ggml_layout";
            let out = std::process::Command::new(me)
                .args(["--exact", name, "--test-threads", "1"])
                .env("LLAVA_CPU", "scalar")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "on the scalar tier: {text}");
            assert!(text.contains("1 passed"), "on the scalar tier: {text}");
        }
    }
}

/// Q8_0 weights repacked into Q8_0×8 at load (forced, whatever the tier's dots) decode to the
/// logits of the same file mapped in ggml's layout: the prompt (7 tokens, below the packed
/// tiles' 8) runs on a tier with the Q8_0×8 dot that dot token by token, as decoding does,
/// within 1e-5 of the largest logit; elsewhere the rows unpacked and ggml's tiles, bit for bit.
/// Decoding within 1e-5 (the group dots are the scalar row dot bit for bit; ggml's layout runs
/// the tier's octet dots, whose float sums go in another order). Every matrix is repacked, `output.weight` too (64 rows), at
/// k = 96 and 160: whole Q8_0 blocks, not whole 256-element super-blocks.
#[test]
fn repacked_q8_0_weights_decode_to_the_logits_of_ggml_layout() {
    let dir = tempfile::tempdir().unwrap();
    let shape = Shape {
        n_vocab: 64,
        n_embd: 96,
        n_layer: 2,
        n_head: 4,
        n_head_kv: 2,
        n_ff: 160,
        freq_base: 10000.0,
        tied: false,
    };
    let path = dir.path().join("q8_0.gguf");
    write_model(&path, &shape, &random_tensors(&shape), GgmlType::Q8_0, 64);
    let mapped = load(&path, LoadMode::Mmap, Repack::Force);
    let repacked = load(&path, LoadMode::Memory, Repack::Force);
    assert_eq!(
        repacked.repack_summary().unwrap().repacked,
        [(GgmlType::Q8_0, WeightLayout::Q8_0X8, 15)]
    );
    let w = repacked.weights();
    assert_eq!(w.output.layout, WeightLayout::Q8_0X8);
    assert_eq!(w.layers[1].w_down.layout, WeightLayout::Q8_0X8);
    assert_eq!(w.token_embd.layout, WeightLayout::Ggml);
    let (prompt, decoded) = prompt_then_decode(&repacked);
    let (prompt_ggml, decoded_ggml) = prompt_then_decode(&mapped);
    if kernels().repacked.q8_0_x8.is_some() {
        let err = rel_err32(&prompt, &prompt_ggml);
        println!(
            "{}: prompt, Q8_0×8 vs ggml's layout: {err:.2e}",
            kernels().tier
        );
        assert!(err < 1e-5, "prompt: {err}");
    } else {
        assert!(bits(&prompt) == bits(&prompt_ggml), "prompt logits differ");
    }
    let err = rel_err32(&decoded, &decoded_ggml);
    println!(
        "{}: decoded, Q8_0×8 vs ggml's layout: {err:.2e}",
        kernels().tier
    );
    assert!(err < 1e-5, "{err}");
    // Without forcing: Q8_0×8 exactly where the tier has its dot.
    let auto = load(&path, LoadMode::Memory, Repack::Auto);
    let expected = if kernels().repacked.q8_0_x8.is_some() {
        vec![(GgmlType::Q8_0, WeightLayout::Q8_0X8, 15)]
    } else {
        Vec::new()
    };
    assert_eq!(auto.repack_summary().unwrap().repacked, expected);
}

/// What is repacked: the layers' Q4_K matrices and an untied `output.weight`, when their rows
/// come in eights (61 output rows do not: ggml's layout); never with `Repack::Off` or mapped;
/// with `Repack::Auto` exactly where the tier has a Q4_K×8 dot. The prompt's logits are the
/// bits of ggml's layout, except on repacked matrices with the tier's group dots (7 tokens:
/// token by token), within rounding.
#[test]
fn repacking_takes_q4_k_matrices_with_rows_in_eights_only() {
    let dir = tempfile::tempdir().unwrap();
    let shape = Shape {
        n_vocab: 61,
        n_embd: 256,
        n_layer: 2,
        n_head: 4,
        n_head_kv: 2,
        n_ff: 512,
        freq_base: 10000.0,
        tied: false,
    };
    let t = random_tensors(&shape);
    let path = dir.path().join("q4_k.gguf");
    write_model(&path, &shape, &t, GgmlType::Q4_K, 64);
    let layouts = |m: &LlamaModel| {
        let w = m.weights();
        let mut all = vec![w.token_embd.layout, w.output.layout];
        for l in &w.layers {
            all.extend([l.wq, l.wk, l.wv, l.wo, l.w_gate, l.w_up, l.w_down].map(|m| m.layout));
        }
        all
    };
    let x8 = WeightLayout::Q4KX8;
    let ggml = WeightLayout::Ggml;

    let forced = load(&path, LoadMode::Memory, Repack::Force);
    let mut want = vec![ggml, ggml];
    want.extend([x8; 14]);
    assert_eq!(layouts(&forced), want, "output.weight has 61 rows");
    assert_eq!(forced.repack_summary().unwrap().tensors(), 14);

    let off = load(&path, LoadMode::Memory, Repack::Off);
    assert_eq!(layouts(&off), [ggml; 16]);
    let summary = off.repack_summary().unwrap();
    assert_eq!(summary.tensors(), 0);
    assert_eq!(summary.to_string(), "ggml's layout kept (--no-repack)");

    let mapped = load(&path, LoadMode::Mmap, Repack::Force);
    assert_eq!(layouts(&mapped), [ggml; 16]);
    let summary = mapped.repack_summary().unwrap();
    assert!(
        summary
            .to_string()
            .contains("mapped weights are never repacked")
    );

    let auto = load(&path, LoadMode::Memory, Repack::Auto);
    let tier_has_dot = kernels().repacked.q4_k_x8.is_some();
    assert_eq!(
        layouts(&auto),
        if tier_has_dot { want } else { vec![ggml; 16] }
    );
    assert_eq!(auto.repack_summary().unwrap().tier_has_dots, tier_has_dot);

    // The prompt (7 tokens) on a repacked matrix: the tier's group dots token by token where
    // it has them (within rounding of ggml's layout, as decoding), else ggml's bits.
    let prompt = |m: &LlamaModel| prompt_then_decode(m).0;
    let reference = prompt(&mapped);
    for (what, m) in [("forced", &forced), ("off", &off), ("auto", &auto)] {
        let got = prompt(m);
        let repacked = layouts(m).contains(&x8);
        if repacked && tier_has_dot {
            let err = rel_err32(&got, &reference);
            assert!(err < 1e-5, "{what}: prompt logits {err} from ggml's layout");
        } else {
            assert!(
                bits(&got) == bits(&reference),
                "{what}: prompt logits differ"
            );
        }
    }
}
