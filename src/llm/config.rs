//! The decoder's hyper-parameters, from `<arch>.*` metadata (llama.cpp's keys).

use crate::gguf::GgufFile;
use crate::model_file::{self, ModelFileError};
use crate::ops::RopeParams;

/// A LLaMA-family decoder's shape and constants.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmConfig {
    /// `general.architecture` (the metadata key prefix): `llama` for LLaMA, Vicuna, Mistral, Yi.
    pub arch: String,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    /// The context the model was trained for (`-c` may ask for less or more).
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope: RopeParams,
}

impl LlmConfig {
    /// Reads the configuration; `n_vocab` comes from `<arch>.vocab_size`, else from the
    /// tokenizer's token list, else from `token_embd.weight`.
    pub fn from_gguf(file: &GgufFile) -> Result<LlmConfig, ModelFileError> {
        let arch: String = model_file::required(file, "general.architecture")?;
        if !matches!(arch.as_str(), "llama" | "mistral") {
            return Err(model_file::bad_value(
                file,
                "general.architecture",
                &arch,
                "not a LLaMA-family decoder (supported: llama, mistral)",
            ));
        }
        let key = |k: &str| format!("{arch}.{k}");
        let n_embd: usize = model_file::required(file, &key("embedding_length"))?;
        let n_layer: usize = model_file::required(file, &key("block_count"))?;
        let n_head: usize = model_file::required(file, &key("attention.head_count"))?;
        let n_head_kv: usize =
            model_file::optional(file, &key("attention.head_count_kv"))?.unwrap_or(n_head);
        let n_ff: usize = model_file::required(file, &key("feed_forward_length"))?;
        let n_ctx_train: usize = model_file::required(file, &key("context_length"))?;
        let rms_eps: f32 = model_file::required(file, &key("attention.layer_norm_rms_epsilon"))?;
        for (k, v) in [
            ("embedding_length", n_embd),
            ("block_count", n_layer),
            ("attention.head_count", n_head),
            ("attention.head_count_kv", n_head_kv),
            ("feed_forward_length", n_ff),
            ("context_length", n_ctx_train),
        ] {
            if v == 0 {
                return Err(model_file::bad_value(file, &key(k), v, "must be positive"));
            }
        }
        if !n_embd.is_multiple_of(n_head) {
            return Err(model_file::bad_value(
                file,
                &key("attention.head_count"),
                n_head,
                format!("does not divide the embedding length {n_embd}"),
            ));
        }
        if !n_head.is_multiple_of(n_head_kv) {
            return Err(model_file::bad_value(
                file,
                &key("attention.head_count_kv"),
                n_head_kv,
                format!("does not divide the head count {n_head}"),
            ));
        }
        let head_dim = n_embd / n_head;
        let key_length: Option<usize> = model_file::optional(file, &key("attention.key_length"))?;
        if let Some(kl) = key_length.filter(|&kl| kl != head_dim) {
            return Err(model_file::bad_value(
                file,
                &key("attention.key_length"),
                kl,
                format!("head sizes other than embedding/heads = {head_dim} are not supported"),
            ));
        }
        let n_rot: usize =
            model_file::optional(file, &key("rope.dimension_count"))?.unwrap_or(head_dim);
        if n_rot > head_dim || !n_rot.is_multiple_of(2) {
            return Err(model_file::bad_value(
                file,
                &key("rope.dimension_count"),
                n_rot,
                format!("must be even and at most the head size {head_dim}"),
            ));
        }
        let freq_base: f32 = model_file::optional(file, &key("rope.freq_base"))?.unwrap_or(10000.0);
        let freq_scale = rope_freq_scale(file, &arch)?;
        let n_vocab = match model_file::optional::<usize>(file, &key("vocab_size"))? {
            Some(v) => v,
            None => match file.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
                Some(tokens) => tokens.len(),
                None => file
                    .tensor("token_embd.weight")
                    .and_then(|t| t.dims.get(1).copied())
                    .ok_or_else(|| model_file::invalid(file, "cannot tell the vocabulary size: no vocab_size, token list or token_embd.weight"))?
                    as usize,
            },
        };
        Ok(LlmConfig {
            arch,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_vocab,
            n_ctx_train,
            rms_eps,
            rope: RopeParams {
                n_rot,
                freq_base,
                freq_scale,
            },
        })
    }

    /// Width of the K and V rows: `n_head_kv · head_dim`.
    pub fn kv_width(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// Linear rope scaling: `rope.scaling.type = linear` with `rope.scaling.factor`, or the older
/// `rope.scale_linear`; position multiplier 1/factor. Other scaling types are refused.
fn rope_freq_scale(file: &GgufFile, arch: &str) -> Result<f32, ModelFileError> {
    let type_key = format!("{arch}.rope.scaling.type");
    let factor_key = format!("{arch}.rope.scaling.factor");
    let kind: Option<String> = model_file::optional(file, &type_key)?;
    let factor: Option<f32> = match kind.as_deref() {
        None | Some("linear") => model_file::optional(file, &factor_key)?.or(model_file::optional(
            file,
            &format!("{arch}.rope.scale_linear"),
        )?),
        Some("none") => None,
        Some(other) => {
            return Err(model_file::bad_value(
                file,
                &type_key,
                other,
                "only linear rope scaling is supported",
            ));
        }
    };
    match factor {
        None => Ok(1.0),
        Some(f) if f == 0.0 || f == 1.0 => Ok(1.0),
        Some(f) if f > 0.0 && f.is_finite() => Ok(1.0 / f),
        Some(f) => Err(model_file::bad_value(
            file,
            &factor_key,
            f,
            "must be positive",
        )),
    }
}
