//! One batch of consecutive positions through the decoder, as llama.cpp's `build_llama`:
//!
//! ```text
//! x = input embeddings
//! per layer: h = rms_norm(x)·attn_norm; q,k,v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ; rope(q, k);
//!            cache k, v; a = attention(q, cache, causal)·Woᵀ; x += a;
//!            h = rms_norm(x)·ffn_norm; x += (silu(h·Wgateᵀ) ⊙ h·Wupᵀ)·Wdownᵀ
//! hidden = rms_norm(x)·output_norm; logits = hidden·Woutputᵀ (for the rows asked)
//! ```

use super::trace::{Trace, record};
use super::{KvCache, LlamaModel, LlmError};
use crate::kernels::{Kernels, QuantMatrix, kernels, matmul, matmul_vec_many};
use crate::ops::{self, AttentionParams};

/// Runs `x` ([n × n_embd], the embeddings of positions `pos .. pos + n`) through every layer,
/// storing keys and values in `cache`, and returns the final-norm hidden states of the rows
/// from `first_out` on ([(n - first_out) × n_embd]).
pub(crate) fn forward(
    model: &LlamaModel,
    cache: &mut KvCache,
    pos: usize,
    mut x: Vec<f32>,
    first_out: usize,
    mut trace: Option<&mut Trace>,
) -> Result<Vec<f32>, LlmError> {
    let c = model.config();
    let w = model.weights();
    let file = model.file();
    let k = kernels();
    let d = c.n_embd;
    let n = x.len() / d;
    let positions: Vec<usize> = (pos..pos + n).collect();
    let attn = AttentionParams::new(c.n_head, c.n_head_kv, c.head_dim).causal();
    record(&mut trace, || "inp_embd".into(), pos, d, &x);

    // One set of activation buffers for every layer: allocated (and page-faulted) once per
    // batch instead of once per layer and matrix.
    let mut b = Buffers::default();
    let mut h = vec![0f32; n * d];
    for (il, lw) in w.layers.iter().enumerate() {
        ops::rms_norm(&x, &lw.attn_norm, c.rms_eps, &mut h)?;
        record(&mut trace, || format!("attn_norm-{il}"), pos, d, &h);
        let (wq, wk, wv) = (lw.wq.view(file)?, lw.wk.view(file)?, lw.wv.view(file)?);
        let [q, kc, vc] = Buffers::take(
            [&mut b.q, &mut b.k, &mut b.v],
            [n * wq.rows(), n * wk.rows(), n * wv.rows()],
        );
        project(k, [wq, wk, wv], &h, [&mut *q, &mut *kc, &mut *vc])?;
        ops::rope(q, c.n_head, c.head_dim, &positions, &c.rope)?;
        ops::rope(kc, c.n_head_kv, c.head_dim, &positions, &c.rope)?;
        record(&mut trace, || format!("Qcur-{il}"), pos, d, q);
        record(&mut trace, || format!("Kcur-{il}"), pos, c.kv_width(), kc);
        record(&mut trace, || format!("Vcur-{il}"), pos, c.kv_width(), vc);
        cache.write(il, pos, kc, vc);

        let wo = lw.wo.view(file)?;
        let [a, o] = Buffers::take([&mut b.a, &mut b.o], [n * d, n * wo.rows()]);
        let (kr, vr) = cache.rows(il, pos + n);
        ops::attention(q, kr, vr, pos + n, &attn, a)?;
        record(&mut trace, || format!("kqv_out-{il}"), pos, d, a);
        matmul(k, &wo, a, n, o)?;
        record(&mut trace, || format!("attn_out-{il}"), pos, d, o);
        ops::add_in_place(&mut x, o)?;
        record(&mut trace, || format!("ffn_inp-{il}"), pos, d, &x);

        ops::rms_norm(&x, &lw.ffn_norm, c.rms_eps, &mut h)?;
        record(&mut trace, || format!("ffn_norm-{il}"), pos, d, &h);
        let (wg, wu, wd) = (
            lw.w_gate.view(file)?,
            lw.w_up.view(file)?,
            lw.w_down.view(file)?,
        );
        let [gate, up, down] = Buffers::take(
            [&mut b.gate, &mut b.up, &mut b.down],
            [n * wg.rows(), n * wu.rows(), n * wd.rows()],
        );
        project(k, [wg, wu], &h, [&mut *gate, &mut *up])?;
        ops::swiglu(gate, up)?;
        matmul(k, &wd, gate, n, down)?;
        record(&mut trace, || format!("ffn_out-{il}"), pos, d, down);
        ops::add_in_place(&mut x, down)?;
        record(&mut trace, || format!("l_out-{il}"), pos, d, &x);
    }

    let rows = &x[first_out * d..];
    let mut hidden = vec![0f32; rows.len()];
    ops::rms_norm(rows, &w.output_norm, c.rms_eps, &mut hidden)?;
    record(
        &mut trace,
        || "result_norm".into(),
        pos + first_out,
        d,
        &hidden,
    );
    Ok(hidden)
}

/// The per-layer activations of one batch, reused by every layer.
#[derive(Default)]
struct Buffers {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    a: Vec<f32>,
    o: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
}

impl Buffers {
    /// The first `lens[i]` values of each buffer (grown on first use; every caller overwrites
    /// them whole, so stale values from the previous layer are never read).
    fn take<const M: usize>(bufs: [&mut Vec<f32>; M], lens: [usize; M]) -> [&mut [f32]; M] {
        let mut i = 0;
        bufs.map(|buf| {
            let len = lens[i];
            i += 1;
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            &mut buf[..len]
        })
    }
}

/// `x·Wᵀ` for several matrices with the same input `x` ([n × k] → one [n × rows] each). For one
/// row (decoding) in one parallel pass over all their rows ([`matmul_vec_many`]: one fork-join
/// and one activation quantization instead of one per matrix); the same values either way.
fn project<const M: usize>(
    k: &Kernels,
    ws: [QuantMatrix<'_>; M],
    x: &[f32],
    mut out: [&mut [f32]; M],
) -> Result<(), LlmError> {
    let n = x.len() / ws.first().map_or(1, |w| w.k().max(1));
    if n == 1 {
        let mut views: Vec<&mut [f32]> = out.iter_mut().map(|v| &mut v[..]).collect();
        matmul_vec_many(k, &ws, x, &mut views)?;
    } else {
        for (w, y) in ws.iter().zip(out.iter_mut()) {
            matmul(k, w, x, n, y)?;
        }
    }
    Ok(())
}

/// Logits of hidden rows ([m × n_embd] → [m × n_vocab]).
pub(crate) fn logits(model: &LlamaModel, hidden: &[f32]) -> Result<Vec<f32>, LlmError> {
    let out = model.weights().output.view(model.file())?;
    Ok(ops::linear(kernels(), &out, None, hidden)?)
}
