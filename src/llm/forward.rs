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

    // The batch's activations, reused by every layer (allocated and page-faulted once per
    // batch, not per layer and matrix), in one block: past 32 MiB glibc maps a block of its own
    // and unmaps it when freed, so a long prompt's activations (≈ 100 MiB at 512 positions, 7B)
    // go back to the system after the prompt rather than stay in a thread's heap.
    let (kv, ff) = (c.kv_width(), c.n_ff);
    let mut block = vec![0f32; n * (5 * d + 2 * kv + 2 * ff)];
    let [h, q, kc, vc, a, o, gate, up, down] = split_mut(
        &mut block,
        [
            n * d,
            n * d,
            n * kv,
            n * kv,
            n * d,
            n * d,
            n * ff,
            n * ff,
            n * d,
        ],
    );
    for (il, lw) in w.layers.iter().enumerate() {
        ops::rms_norm(&x, &lw.attn_norm, c.rms_eps, h)?;
        record(&mut trace, || format!("attn_norm-{il}"), pos, d, h);
        let (wq, wk, wv) = (lw.wq.view(file)?, lw.wk.view(file)?, lw.wv.view(file)?);
        project(k, [wq, wk, wv], h, [&mut *q, &mut *kc, &mut *vc])?;
        ops::rope(q, c.n_head, c.head_dim, &positions, &c.rope)?;
        ops::rope(kc, c.n_head_kv, c.head_dim, &positions, &c.rope)?;
        record(&mut trace, || format!("Qcur-{il}"), pos, d, q);
        record(&mut trace, || format!("Kcur-{il}"), pos, c.kv_width(), kc);
        record(&mut trace, || format!("Vcur-{il}"), pos, c.kv_width(), vc);
        cache.write(il, pos, kc, vc);

        let wo = lw.wo.view(file)?;
        let (kr, vr) = cache.rows(il, pos + n);
        ops::attention(q, kr, vr, pos + n, &attn, a)?;
        record(&mut trace, || format!("kqv_out-{il}"), pos, d, a);
        matmul(k, &wo, a, n, o)?;
        record(&mut trace, || format!("attn_out-{il}"), pos, d, o);
        ops::add_in_place(&mut x, o)?;
        record(&mut trace, || format!("ffn_inp-{il}"), pos, d, &x);

        ops::rms_norm(&x, &lw.ffn_norm, c.rms_eps, h)?;
        record(&mut trace, || format!("ffn_norm-{il}"), pos, d, h);
        let (wg, wu, wd) = (
            lw.w_gate.view(file)?,
            lw.w_up.view(file)?,
            lw.w_down.view(file)?,
        );
        project(k, [wg, wu], h, [&mut *gate, &mut *up])?;
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

/// `buf` cut into consecutive slices `lens[i]` long (their sum is at most `buf.len()`).
fn split_mut<const M: usize>(mut buf: &mut [f32], lens: [usize; M]) -> [&mut [f32]; M] {
    lens.map(|len| {
        let (head, tail) = std::mem::take(&mut buf).split_at_mut(len);
        buf = tail;
        head
    })
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
