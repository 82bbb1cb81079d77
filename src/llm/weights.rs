//! The decoder's weights: matrices located in the file (zero-copy views made per use), small
//! vectors (norm weights) read into memory.

use super::LlmConfig;
use crate::gguf::GgufFile;
use crate::model_file::{self, MatrixRef, ModelFileError};

/// One transformer block.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub wq: MatrixRef,
    pub wk: MatrixRef,
    pub wv: MatrixRef,
    pub wo: MatrixRef,
    pub ffn_norm: Vec<f32>,
    pub w_gate: MatrixRef,
    pub w_up: MatrixRef,
    pub w_down: MatrixRef,
}

#[derive(Clone, Debug)]
pub struct LlmWeights {
    /// `token_embd.weight`: [n_vocab × n_embd], any block type, rows dequantized on lookup.
    pub token_embd: MatrixRef,
    pub layers: Vec<LayerWeights>,
    pub output_norm: Vec<f32>,
    /// `output.weight`, or the token embedding when the file ties them (no `output.weight`).
    pub output: MatrixRef,
}

impl LlmWeights {
    pub fn from_gguf(file: &GgufFile, c: &LlmConfig) -> Result<LlmWeights, ModelFileError> {
        let (d, kv) = (c.n_embd, c.kv_width());
        let token_embd = model_file::matrix_ref(file, "token_embd.weight", c.n_vocab, d)?;
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            layers.push(LayerWeights {
                attn_norm: model_file::vector_f32(file, &name("attn_norm"), d)?,
                wq: model_file::matrix_ref(file, &name("attn_q"), d, d)?,
                wk: model_file::matrix_ref(file, &name("attn_k"), kv, d)?,
                wv: model_file::matrix_ref(file, &name("attn_v"), kv, d)?,
                wo: model_file::matrix_ref(file, &name("attn_output"), d, d)?,
                ffn_norm: model_file::vector_f32(file, &name("ffn_norm"), d)?,
                w_gate: model_file::matrix_ref(file, &name("ffn_gate"), c.n_ff, d)?,
                w_up: model_file::matrix_ref(file, &name("ffn_up"), c.n_ff, d)?,
                w_down: model_file::matrix_ref(file, &name("ffn_down"), d, c.n_ff)?,
            });
        }
        let output_norm = model_file::vector_f32(file, "output_norm.weight", d)?;
        let output = model_file::optional_matrix_ref(file, "output.weight", c.n_vocab, d)?
            .unwrap_or(token_embd);
        Ok(LlmWeights {
            token_embd,
            layers,
            output_norm,
            output,
        })
    }
}
