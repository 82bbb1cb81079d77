//! A model and a KV cache: evaluate tokens or input embeddings at the current position, get
//! logits and final-norm hidden states back. LLaVA splices image embeddings with
//! [`Session::eval_embeddings`] between [`Session::eval_tokens`] calls.

use super::forward::{forward, logits};
use super::trace::{Trace, record};
use super::{CacheType, KvCache, LlamaModel, LlmError};

/// Positions evaluated at once: bounds the attention scores' memory
/// (n_head × batch × n_ctx floats) on long prompts.
pub const DEFAULT_BATCH: usize = 512;

/// Which positions of an evaluation to return outputs for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Nothing (e.g. an image whose next tokens follow).
    None,
    /// The last position only (generation).
    Last,
    /// Every position (the `--dump` logits, perplexity, tests).
    All,
}

/// Outputs of one evaluation: `rows` positions from `first_pos`, logits [rows × n_vocab] and
/// final-norm hidden states [rows × n_embd].
#[derive(Clone, Debug, Default)]
pub struct Evaluated {
    pub first_pos: usize,
    pub rows: usize,
    pub logits: Vec<f32>,
    pub hidden: Vec<f32>,
}

impl Evaluated {
    /// The logits of the last row, if any.
    pub fn last_logits(&self) -> Option<&[f32]> {
        let n_vocab = self.logits.len().checked_div(self.rows)?;
        self.logits.get(self.logits.len() - n_vocab..)
    }
}

pub struct Session<'m> {
    model: &'m LlamaModel,
    cache: KvCache,
    n_past: usize,
    n_batch: usize,
    trace: Option<Trace>,
}

impl<'m> Session<'m> {
    /// A session with a cache of `n_ctx` positions (0: the model's training context).
    pub fn new(
        model: &'m LlamaModel,
        n_ctx: usize,
        cache_type: CacheType,
    ) -> Result<Self, LlmError> {
        let c = model.config();
        let n_ctx = if n_ctx == 0 { c.n_ctx_train } else { n_ctx };
        Ok(Session {
            model,
            cache: KvCache::new(c.n_layer, n_ctx, c.kv_width(), cache_type)?,
            n_past: 0,
            n_batch: DEFAULT_BATCH,
            trace: None,
        })
    }

    pub fn model(&self) -> &'m LlamaModel {
        self.model
    }

    /// Positions used so far (the position of the next token).
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    pub fn n_ctx(&self) -> usize {
        self.cache.n_ctx()
    }

    pub fn cache(&self) -> &KvCache {
        &self.cache
    }

    /// Forgets positions from `n` on (the cache rows stay, to be overwritten).
    pub fn truncate(&mut self, n: usize) {
        self.n_past = self.n_past.min(n);
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.n_past = 0;
    }

    /// Positions evaluated per batch (≥ 1).
    pub fn set_batch_size(&mut self, n_batch: usize) {
        self.n_batch = n_batch.max(1);
    }

    /// Starts capturing intermediates (see [`Trace`]); `None` stops.
    pub fn set_trace(&mut self, trace: Option<Trace>) {
        self.trace = trace;
    }

    pub fn trace(&self) -> Option<&Trace> {
        self.trace.as_ref()
    }

    pub fn take_trace(&mut self) -> Option<Trace> {
        self.trace.take()
    }

    /// Error unless `n` more positions fit.
    pub fn check_room(&self, n: usize) -> Result<(), LlmError> {
        let needed = self.n_past + n;
        if needed > self.n_ctx() {
            return Err(LlmError::ContextFull {
                n_past: self.n_past,
                n_new: n,
                needed,
                n_ctx: self.n_ctx(),
            });
        }
        Ok(())
    }

    /// Evaluates `tokens` at the current position and advances it.
    pub fn eval_tokens(&mut self, tokens: &[u32], output: Output) -> Result<Evaluated, LlmError> {
        self.check_room(tokens.len())?;
        let d = self.model.config().n_embd;
        let mut x = vec![0f32; tokens.len() * d];
        for (&t, row) in tokens.iter().zip(x.chunks_exact_mut(d)) {
            self.model.embed_token(t, row)?;
        }
        self.eval_embeddings(&x, tokens.len(), output)
    }

    /// Evaluates `n` input embeddings (`embd` is [n × n_embd], e.g. projected image features)
    /// at the current position and advances it.
    pub fn eval_embeddings(
        &mut self,
        embd: &[f32],
        n: usize,
        output: Output,
    ) -> Result<Evaluated, LlmError> {
        let d = self.model.config().n_embd;
        if embd.len() != n * d {
            return Err(LlmError::Invalid(format!(
                "embeddings: {} values for {n} positions of {d}",
                embd.len()
            )));
        }
        self.check_room(n)?;
        let mut out = Evaluated {
            first_pos: self.n_past,
            ..Evaluated::default()
        };
        let mut hidden_all = Vec::new();
        for (i, chunk) in embd.chunks(self.n_batch * d).enumerate() {
            let rows = chunk.len() / d;
            let is_last = (i + 1) * self.n_batch >= n;
            let first_out = match output {
                Output::All => 0,
                Output::Last if is_last => rows - 1,
                _ => rows,
            };
            let hidden = forward(
                self.model,
                &mut self.cache,
                self.n_past,
                chunk.to_vec(),
                first_out,
                self.trace.as_mut(),
            )?;
            if output == Output::Last {
                out.first_pos = self.n_past + first_out;
            }
            self.n_past += rows;
            hidden_all.extend_from_slice(&hidden);
        }
        out.rows = hidden_all.len() / d;
        if out.rows > 0 {
            out.logits = logits(self.model, &hidden_all)?;
            let n_vocab = self.model.config().n_vocab;
            let mut trace = self.trace.as_mut();
            record(
                &mut trace,
                || "result_output".into(),
                out.first_pos,
                n_vocab,
                &out.logits,
            );
        }
        out.hidden = hidden_all;
        Ok(out)
    }
}
