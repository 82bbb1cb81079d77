//! The decoder's weights: matrices located in the file (zero-copy views made per use), small
//! vectors (norm weights) read into memory.

use super::LlmConfig;
use super::repack::TensorLayouts;
use crate::gguf::GgufFile;
use crate::model_file::{self, KernelOrQuant, MatrixRef, ModelFileError};

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
    /// The weights of `file`, in ggml's layout.
    pub fn from_gguf(file: &GgufFile, c: &LlmConfig) -> Result<LlmWeights, ModelFileError> {
        LlmWeights::from_gguf_in_layouts(file, c, &TensorLayouts::default())
    }

    /// The weights of `file`, each matrix in the layout `layouts` gives its tensor (the
    /// loader repacked the bytes so).
    pub fn from_gguf_in_layouts(
        file: &GgufFile,
        c: &LlmConfig,
        layouts: &TensorLayouts,
    ) -> Result<LlmWeights, ModelFileError> {
        let (d, kv) = (c.n_embd, c.kv_width());
        let in_layout = |m: MatrixRef, name: &str| {
            m.in_layout(layouts.get(name))
                .map_err(|e| ModelFileError::TensorData {
                    file: model_file::file_label(file),
                    name: name.to_owned(),
                    source: KernelOrQuant::Kernel(e),
                })
        };
        let matrix =
            |name: &str, rows, k| in_layout(model_file::matrix_ref(file, name, rows, k)?, name);
        let token_embd = model_file::matrix_ref(file, "token_embd.weight", c.n_vocab, d)?;
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            layers.push(LayerWeights {
                attn_norm: model_file::vector_f32(file, &name("attn_norm"), d)?,
                wq: matrix(&name("attn_q"), d, d)?,
                wk: matrix(&name("attn_k"), kv, d)?,
                wv: matrix(&name("attn_v"), kv, d)?,
                wo: matrix(&name("attn_output"), d, d)?,
                ffn_norm: model_file::vector_f32(file, &name("ffn_norm"), d)?,
                w_gate: matrix(&name("ffn_gate"), c.n_ff, d)?,
                w_up: matrix(&name("ffn_up"), c.n_ff, d)?,
                w_down: matrix(&name("ffn_down"), d, c.n_ff)?,
            });
        }
        let output_norm = model_file::vector_f32(file, "output_norm.weight", d)?;
        let output = match model_file::optional_matrix_ref(file, "output.weight", c.n_vocab, d)? {
            Some(m) => in_layout(m, "output.weight")?,
            None => token_embd,
        };
        Ok(LlmWeights {
            token_embd,
            layers,
            output_norm,
            output,
        })
    }
}
