//! The language-model GGUF (`general.architecture = llama`), as llama.cpp's
//! `convert_hf_to_gguf.py` (`LlamaModel`) writes it.

use super::config::ModelConfig;
use super::error::ConvertError;
use super::outtype::OutType;
use super::plan::{Part, PlannedTensor, SourceIndex};
use super::tokenizer::Vocab;
use crate::GgmlType;
use crate::gguf::{GgufError, GgufWriter};

/// ggml's `GGML_QNT_VERSION`.
const QUANTIZATION_VERSION: u32 = 2;

/// llama.cpp's rule: 1-D tensors and norms stay F32; matrices take the output type.
fn tensor_type(out: OutType, name: &str, shape: &[usize]) -> GgmlType {
    if shape.len() <= 1 || name.ends_with("_norm.weight") {
        GgmlType::F32
    } else {
        out.matrix_type(shape[shape.len() - 1])
    }
}

pub fn plan(
    cfg: &ModelConfig,
    index: &mut SourceIndex,
    out: OutType,
) -> Result<Vec<PlannedTensor>, ConvertError> {
    let t = &cfg.text;
    let (vocab, hidden, inter) = (
        t.vocab_size as usize,
        t.hidden_size as usize,
        t.intermediate_size as usize,
    );
    let (q_rows, kv_rows) = (
        (t.n_heads * t.head_dim) as usize,
        (t.n_kv_heads * t.head_dim) as usize,
    );
    let hint = "";
    let mut plan = Vec::new();
    let mut add = |index: &mut SourceIndex,
                   rel: &str,
                   name: String,
                   shape: Vec<usize>,
                   permute_heads: Option<u32>|
     -> Result<(), ConvertError> {
        let source = index.take(Part::Text, rel, hint)?;
        plan.push(PlannedTensor {
            ty: tensor_type(out, &name, &shape),
            name,
            source,
            shape,
            permute_heads: permute_heads.map(|h| h as usize),
        });
        Ok(())
    };
    add(
        index,
        "embed_tokens.weight",
        "token_embd.weight".into(),
        vec![vocab, hidden],
        None,
    )?;
    for i in 0..t.n_layers {
        let l = format!("layers.{i}.");
        let b = format!("blk.{i}.");
        add(
            index,
            &format!("{l}input_layernorm.weight"),
            format!("{b}attn_norm.weight"),
            vec![hidden],
            None,
        )?;
        add(
            index,
            &format!("{l}self_attn.q_proj.weight"),
            format!("{b}attn_q.weight"),
            vec![q_rows, hidden],
            Some(t.n_heads),
        )?;
        add(
            index,
            &format!("{l}self_attn.k_proj.weight"),
            format!("{b}attn_k.weight"),
            vec![kv_rows, hidden],
            Some(t.n_kv_heads),
        )?;
        add(
            index,
            &format!("{l}self_attn.v_proj.weight"),
            format!("{b}attn_v.weight"),
            vec![kv_rows, hidden],
            None,
        )?;
        add(
            index,
            &format!("{l}self_attn.o_proj.weight"),
            format!("{b}attn_output.weight"),
            vec![hidden, q_rows],
            None,
        )?;
        add(
            index,
            &format!("{l}post_attention_layernorm.weight"),
            format!("{b}ffn_norm.weight"),
            vec![hidden],
            None,
        )?;
        add(
            index,
            &format!("{l}mlp.gate_proj.weight"),
            format!("{b}ffn_gate.weight"),
            vec![inter, hidden],
            None,
        )?;
        add(
            index,
            &format!("{l}mlp.up_proj.weight"),
            format!("{b}ffn_up.weight"),
            vec![inter, hidden],
            None,
        )?;
        add(
            index,
            &format!("{l}mlp.down_proj.weight"),
            format!("{b}ffn_down.weight"),
            vec![hidden, inter],
            None,
        )?;
    }
    add(
        index,
        "norm.weight",
        "output_norm.weight".into(),
        vec![hidden],
        None,
    )?;
    match index.lm_head.clone() {
        Some(source) => {
            index.mark_used(&source);
            let shape = vec![vocab, hidden];
            plan.push(PlannedTensor {
                ty: tensor_type(out, "output.weight", &shape),
                name: "output.weight".into(),
                source,
                shape,
                permute_heads: None,
            });
        }
        // Tied embeddings: llama.cpp uses token_embd when output.weight is absent.
        None if t.tie_word_embeddings => {}
        None => {
            return Err(ConvertError::MissingTensor {
                tensor: "lm_head.weight".into(),
                hint: " (and tie_word_embeddings is false)".into(),
            });
        }
    }
    // llama.cpp's converter writes tensors in the checkpoint's order (sorted names in a
    // safetensors file); so do we, so that files can be compared byte for byte.
    plan.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(plan)
}

pub fn metadata(
    w: &mut GgufWriter,
    cfg: &ModelConfig,
    vocab: &Vocab,
    name: &str,
    out: OutType,
) -> Result<(), GgufError> {
    // Keys in the order llama.cpp's convert_hf_to_gguf.py writes them.
    let t = &cfg.text;
    w.add_metadata("general.architecture", "llama")?;
    w.add_metadata("general.type", "model")?;
    w.add_metadata("general.name", name)?;
    w.add_metadata("llama.block_count", t.n_layers)?;
    w.add_metadata("llama.context_length", t.max_position_embeddings)?;
    w.add_metadata("llama.embedding_length", t.hidden_size)?;
    w.add_metadata("llama.feed_forward_length", t.intermediate_size)?;
    w.add_metadata("llama.attention.head_count", t.n_heads)?;
    w.add_metadata("llama.attention.head_count_kv", t.n_kv_heads)?;
    w.add_metadata("llama.rope.freq_base", t.rope_theta)?;
    w.add_metadata("llama.attention.layer_norm_rms_epsilon", t.rms_norm_eps)?;
    // llama.cpp writes these whenever transformers' config has `head_dim`, which its Llama and
    // Mistral configs always fill in (hidden / heads by default).
    w.add_metadata("llama.attention.key_length", t.head_dim)?;
    w.add_metadata("llama.attention.value_length", t.head_dim)?;
    w.add_metadata("general.file_type", out.file_type())?;
    w.add_metadata("llama.vocab_size", t.vocab_size)?;
    w.add_metadata("llama.rope.dimension_count", t.head_dim)?;
    w.add_metadata("general.quantization_version", QUANTIZATION_VERSION)?;
    vocab.add_to(w)?;
    if let Some(id) = cfg.image_token_index {
        w.add_metadata("llava.image_token_index", id)?;
    }
    Ok(())
}
