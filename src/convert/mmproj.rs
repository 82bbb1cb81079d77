//! The mmproj GGUF (`general.architecture = clip`): CLIP's vision tower cut at the feature layer
//! plus the connector, in the layout of llama.cpp's legacy LLaVA converter
//! (`convert_image_encoder_to_gguf.py`), with its quirks (fc1/fc2 as ffn_down/ffn_up, no
//! post-layernorm), the NeXT keys and tensor, and our own `llava.*` keys for what llama.cpp's
//! keys cannot say. docs/convert.md lists every key.

use super::config::{Layout, ModelConfig};
use super::error::ConvertError;
use super::names::{vision_gguf_name, vision_layer};

fn vname(rel: &str) -> String {
    vision_gguf_name(rel).unwrap_or_default()
}
use super::outtype::OutType;
use super::plan::{Part, PlannedTensor, SourceIndex};
use crate::GgmlType;
use crate::gguf::{GgufError, GgufWriter};

/// As llama.cpp's legacy converter: biases, norms, the class embedding and the newline (1-D)
/// stay F32; the patch embedding (a convolution kernel) and the position embedding (added,
/// never multiplied, so never quantized) are F16 unless the output is F32; other matrices
/// take the output type.
fn tensor_type(out: OutType, name: &str, shape: &[usize]) -> GgmlType {
    if shape.len() <= 1 {
        GgmlType::F32
    } else if name == "v.patch_embd.weight" || name == "v.position_embd.weight" {
        if out == OutType::F32 {
            GgmlType::F32
        } else {
            GgmlType::F16
        }
    } else {
        out.matrix_type(shape[shape.len() - 1])
    }
}

pub fn plan(
    cfg: &ModelConfig,
    index: &mut SourceIndex,
    out: OutType,
) -> Result<Vec<PlannedTensor>, ConvertError> {
    let v = &cfg.vision;
    let (hidden, inter, patch) = (
        v.hidden_size as usize,
        v.intermediate_size as usize,
        v.patch_size as usize,
    );
    let text_hidden = cfg.text.hidden_size as usize;
    let mm_in = hidden * cfg.feature_layers.len();
    let vision_hint = if cfg.layout == Layout::Original {
        " (the original layout reads CLIP from --vision-tower DIR)"
    } else {
        ""
    };
    let mut plan = Vec::new();
    let mut add = |index: &mut SourceIndex,
                   part: Part,
                   rel: &str,
                   name: String,
                   shape: Vec<usize>|
     -> Result<(), ConvertError> {
        let hint = if matches!(part, Part::Vision) {
            vision_hint
        } else {
            ""
        };
        let source = index.take(part, rel, hint)?;
        plan.push(PlannedTensor {
            ty: tensor_type(out, &name, &shape),
            name,
            source,
            shape,
            permute_heads: None,
        });
        Ok(())
    };

    add(
        index,
        Part::Projector,
        "0.weight",
        "mm.0.weight".into(),
        vec![text_hidden, mm_in],
    )?;
    if cfg.projector_bias {
        add(
            index,
            Part::Projector,
            "0.bias",
            "mm.0.bias".into(),
            vec![text_hidden],
        )?;
    }
    add(
        index,
        Part::Projector,
        "2.weight",
        "mm.2.weight".into(),
        vec![text_hidden, text_hidden],
    )?;
    if cfg.projector_bias {
        add(
            index,
            Part::Projector,
            "2.bias",
            "mm.2.bias".into(),
            vec![text_hidden],
        )?;
    }

    add(
        index,
        Part::Vision,
        "embeddings.class_embedding",
        vname("embeddings.class_embedding"),
        vec![hidden],
    )?;
    add(
        index,
        Part::Vision,
        "embeddings.patch_embedding.weight",
        vname("embeddings.patch_embedding.weight"),
        vec![hidden, 3, patch, patch],
    )?;
    add(
        index,
        Part::Vision,
        "embeddings.position_embedding.weight",
        vname("embeddings.position_embedding.weight"),
        vec![v.n_patches() as usize + 1, hidden],
    )?;
    add(
        index,
        Part::Vision,
        "pre_layrnorm.weight",
        vname("pre_layrnorm.weight"),
        vec![hidden],
    )?;
    add(
        index,
        Part::Vision,
        "pre_layrnorm.bias",
        vname("pre_layrnorm.bias"),
        vec![hidden],
    )?;
    let blocks = cfg.vision_block_count();
    for i in 0..blocks {
        let l = format!("encoder.layers.{i}.");
        for m in [
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.out_proj",
        ] {
            let rel = format!("{l}{m}.weight");
            add(index, Part::Vision, &rel, vname(&rel), vec![hidden, hidden])?;
            let rel = format!("{l}{m}.bias");
            add(index, Part::Vision, &rel, vname(&rel), vec![hidden])?;
        }
        for m in ["layer_norm1", "layer_norm2"] {
            let rel = format!("{l}{m}.weight");
            add(index, Part::Vision, &rel, vname(&rel), vec![hidden])?;
            let rel = format!("{l}{m}.bias");
            add(index, Part::Vision, &rel, vname(&rel), vec![hidden])?;
        }
        let rel = format!("{l}mlp.fc1.weight");
        add(index, Part::Vision, &rel, vname(&rel), vec![inter, hidden])?;
        let rel = format!("{l}mlp.fc1.bias");
        add(index, Part::Vision, &rel, vname(&rel), vec![inter])?;
        let rel = format!("{l}mlp.fc2.weight");
        add(index, Part::Vision, &rel, vname(&rel), vec![hidden, inter])?;
        let rel = format!("{l}mlp.fc2.bias");
        add(index, Part::Vision, &rel, vname(&rel), vec![hidden])?;
    }
    // Layers past the feature layer are not needed; layers past the config's count are errors.
    let dropped: Vec<String> = index
        .vision
        .iter()
        .filter(|(rel, _)| vision_layer(rel).is_some_and(|n| n >= blocks && n < v.n_layers))
        .map(|(_, name)| name.clone())
        .collect();
    for name in dropped {
        index.mark_dropped(&name);
    }

    if cfg.is_next() {
        let source = index
            .newline
            .clone()
            .ok_or_else(|| ConvertError::MissingTensor {
                tensor: "image_newline".into(),
                hint: " (LLaVA-NeXT needs it)".into(),
            })?;
        index.mark_used(&source);
        plan.push(PlannedTensor {
            name: "model.image_newline".into(),
            source,
            shape: vec![text_hidden],
            ty: GgmlType::F32,
            permute_heads: None,
        });
    }
    Ok(plan)
}

pub fn metadata(
    w: &mut GgufWriter,
    cfg: &ModelConfig,
    name: &str,
    out: OutType,
) -> Result<(), GgufError> {
    let v = &cfg.vision;
    let p = &cfg.preprocess;
    w.add_metadata("general.architecture", "clip")?;
    w.add_metadata("clip.has_text_encoder", false)?;
    w.add_metadata("clip.has_vision_encoder", true)?;
    w.add_metadata("clip.has_llava_projector", true)?;
    w.add_metadata("general.file_type", out.file_type())?;
    w.add_metadata("general.name", name)?;
    w.add_metadata("general.description", "image encoder for LLaVA")?;
    w.add_metadata("clip.projector_type", "mlp")?;
    w.add_metadata("clip.vision.image_size", v.image_size)?;
    w.add_metadata("clip.vision.patch_size", v.patch_size)?;
    w.add_metadata("clip.vision.embedding_length", v.hidden_size)?;
    w.add_metadata("clip.vision.feed_forward_length", v.intermediate_size)?;
    w.add_metadata("clip.vision.projection_dim", v.projection_dim)?;
    w.add_metadata("clip.vision.attention.head_count", v.n_heads)?;
    w.add_metadata("clip.vision.attention.layer_norm_epsilon", v.layer_norm_eps)?;
    w.add_metadata("clip.vision.block_count", cfg.vision_block_count())?;
    // The default (hidden state -2) is what block_count = layers - 1 already says; llama.cpp's
    // legacy converter writes the explicit list only for other choices.
    let default_layer = cfg.feature_layers == [-2] || cfg.feature_layers == [v.n_layers as i64 - 1];
    if !default_layer {
        let n = v.n_layers as i64;
        let layers: Vec<i32> = cfg
            .feature_layers
            .iter()
            .map(|&l| (if l < 0 { n + l + 1 } else { l }) as i32)
            .collect();
        w.add_metadata("clip.vision.feature_layer", layers)?;
    }
    if let Some(pinpoints) = &cfg.image_grid_pinpoints {
        let flat: Vec<i32> = pinpoints
            .iter()
            .flat_map(|&[h, w]| [h as i32, w as i32])
            .collect();
        w.add_metadata("clip.vision.image_grid_pinpoints", flat)?;
    }
    if p.aspect_mode != "crop" {
        w.add_metadata("clip.vision.image_aspect_ratio", p.aspect_mode.as_str())?;
    }
    if let Some(merge) = &cfg.mm_patch_merge_type {
        w.add_metadata("clip.vision.mm_patch_merge_type", merge.as_str())?;
    }
    w.add_metadata("clip.vision.image_mean", p.image_mean.to_vec())?;
    w.add_metadata("clip.vision.image_std", p.image_std.to_vec())?;
    w.add_metadata("clip.use_gelu", v.hidden_act == "gelu")?;

    // Our own namespace: what llama.cpp's keys cannot express.
    w.add_metadata("llava.source_architecture", cfg.architecture.as_str())?;
    w.add_metadata("llava.preprocess.aspect_mode", p.aspect_mode.as_str())?;
    w.add_metadata("llava.preprocess.resize_filter", p.resize_filter.as_str())?;
    w.add_metadata("llava.preprocess.shortest_edge", p.shortest_edge)?;
    w.add_metadata("llava.preprocess.crop_size", p.crop_size)?;
    w.add_metadata(
        "llava.vision.feature_select_strategy",
        cfg.feature_select.as_str(),
    )?;
    let layers: Vec<i32> = cfg.feature_layers.iter().map(|&l| l as i32).collect();
    w.add_metadata("llava.vision.feature_layers", layers)?;
    w.add_metadata("llava.vision.layer_count", v.n_layers)?;
    if let Some(id) = cfg.image_token_index {
        w.add_metadata("llava.image_token_index", id)?;
    }
    Ok(())
}
