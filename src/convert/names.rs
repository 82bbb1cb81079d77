//! Checkpoint tensor names → llama.cpp's GGUF names.
//!
//! Checkpoints name the same weight in several ways (llava-hf as saved by transformers 4 and 5,
//! the original LLaVA, a CLIP checkpoint); [`classify`] strips the known prefixes and says which
//! part of the model a tensor belongs to, with its name relative to that part. The GGUF names
//! are those of llama.cpp's converters: `convert_hf_to_gguf.py` for the language model and the
//! legacy `convert_image_encoder_to_gguf.py` for the mmproj (see docs/convert.md).

/// Which part of the model a checkpoint tensor belongs to, and its name inside that part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The language model body, relative to the Llama `model.` (e.g. `layers.0.mlp.up_proj.weight`).
    Text(String),
    /// The LM head (`lm_head.weight`).
    LmHead,
    /// CLIP's vision model, relative to `vision_model.` (e.g. `encoder.layers.0.mlp.fc1.bias`).
    Vision(String),
    /// The connector, as `<layer index>.<weight|bias>` (linear_1 → 0, linear_2 → 2).
    Projector(String),
    /// LLaVA-NeXT's `image_newline`.
    Newline,
    /// Known tensors the GGUF files do not carry (CLIP text tower, buffers, rotary caches).
    Ignored,
    /// Anything else: refused, so that no weight is silently dropped.
    Unknown,
}

const VISION_PREFIXES: [&str; 5] = [
    "model.vision_tower.vision_tower.vision_model.",
    "model.vision_tower.vision_model.",
    "vision_tower.vision_tower.vision_model.",
    "vision_tower.vision_model.",
    "vision_model.",
];
const PROJECTOR_PREFIXES: [&str; 3] = [
    "model.multi_modal_projector.",
    "multi_modal_projector.",
    "model.mm_projector.",
];
const TEXT_PREFIXES: [&str; 3] = ["model.language_model.", "language_model.model.", "model."];

pub fn classify(name: &str) -> Role {
    if matches!(name, "image_newline" | "model.image_newline") {
        return Role::Newline;
    }
    if matches!(name, "lm_head.weight" | "language_model.lm_head.weight") {
        return Role::LmHead;
    }
    for p in VISION_PREFIXES {
        if let Some(rest) = name.strip_prefix(p) {
            return match rest {
                "embeddings.position_ids" => Role::Ignored,
                r if r.starts_with("post_layernorm.") => Role::Ignored,
                r => Role::Vision(r.to_owned()),
            };
        }
    }
    for p in PROJECTOR_PREFIXES {
        if let Some(rest) = name.strip_prefix(p) {
            let rest = rest
                .replacen("linear_1.", "0.", 1)
                .replacen("linear_2.", "2.", 1);
            return Role::Projector(rest);
        }
    }
    // CLIPModel checkpoints also hold the text tower and the projections.
    if name.starts_with("text_model.")
        || matches!(
            name,
            "logit_scale" | "visual_projection.weight" | "text_projection.weight"
        )
    {
        return Role::Ignored;
    }
    for p in TEXT_PREFIXES {
        if let Some(rest) = name.strip_prefix(p) {
            if rest.ends_with(".rotary_emb.inv_freq") {
                return Role::Ignored;
            }
            return Role::Text(rest.to_owned());
        }
    }
    Role::Unknown
}

/// The GGUF name of a language-model tensor, from its name relative to the Llama body.
pub fn text_gguf_name(rel: &str) -> Option<String> {
    Some(match rel {
        "embed_tokens.weight" => "token_embd.weight".into(),
        "norm.weight" => "output_norm.weight".into(),
        _ => {
            let rest = rel.strip_prefix("layers.")?;
            let (n, part) = rest.split_once('.')?;
            let n: u32 = n.parse().ok()?;
            let gguf = match part {
                "self_attn.q_proj.weight" => "attn_q.weight",
                "self_attn.k_proj.weight" => "attn_k.weight",
                "self_attn.v_proj.weight" => "attn_v.weight",
                "self_attn.o_proj.weight" => "attn_output.weight",
                "mlp.gate_proj.weight" => "ffn_gate.weight",
                "mlp.up_proj.weight" => "ffn_up.weight",
                "mlp.down_proj.weight" => "ffn_down.weight",
                "input_layernorm.weight" => "attn_norm.weight",
                "post_attention_layernorm.weight" => "ffn_norm.weight",
                _ => return None,
            };
            format!("blk.{n}.{gguf}")
        }
    })
}

/// The GGUF name of a CLIP vision tensor, from its name relative to `vision_model.`. Note the
/// legacy converter's swap, kept for compatibility: `mlp.fc1` → `ffn_down`, `mlp.fc2` → `ffn_up`.
pub fn vision_gguf_name(rel: &str) -> Option<String> {
    Some(match rel {
        "embeddings.class_embedding" => "v.class_embd".into(),
        "embeddings.patch_embedding.weight" => "v.patch_embd.weight".into(),
        "embeddings.position_embedding.weight" => "v.position_embd.weight".into(),
        "pre_layrnorm.weight" => "v.pre_ln.weight".into(),
        "pre_layrnorm.bias" => "v.pre_ln.bias".into(),
        _ => {
            let rest = rel.strip_prefix("encoder.layers.")?;
            let (n, part) = rest.split_once('.')?;
            let n: u32 = n.parse().ok()?;
            let (module, kind) = part.rsplit_once('.')?;
            if kind != "weight" && kind != "bias" {
                return None;
            }
            let gguf = match module {
                "self_attn.q_proj" => "attn_q",
                "self_attn.k_proj" => "attn_k",
                "self_attn.v_proj" => "attn_v",
                "self_attn.out_proj" => "attn_out",
                "layer_norm1" => "ln1",
                "layer_norm2" => "ln2",
                "mlp.fc1" => "ffn_down",
                "mlp.fc2" => "ffn_up",
                _ => return None,
            };
            format!("v.blk.{n}.{gguf}.{kind}")
        }
    })
}

/// The layer index of a CLIP encoder tensor (`encoder.layers.N....`).
pub fn vision_layer(rel: &str) -> Option<u32> {
    rel.strip_prefix("encoder.layers.")?
        .split_once('.')?
        .0
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_classifies() {
        let cases = [
            (
                "model.language_model.layers.3.self_attn.q_proj.weight",
                Role::Text("layers.3.self_attn.q_proj.weight".into()),
            ),
            (
                "language_model.model.embed_tokens.weight",
                Role::Text("embed_tokens.weight".into()),
            ),
            ("model.norm.weight", Role::Text("norm.weight".into())),
            ("language_model.lm_head.weight", Role::LmHead),
            (
                "model.vision_tower.vision_model.pre_layrnorm.bias",
                Role::Vision("pre_layrnorm.bias".into()),
            ),
            (
                "vision_model.encoder.layers.0.mlp.fc1.weight",
                Role::Vision("encoder.layers.0.mlp.fc1.weight".into()),
            ),
            (
                "vision_tower.vision_model.post_layernorm.weight",
                Role::Ignored,
            ),
            (
                "model.multi_modal_projector.linear_2.bias",
                Role::Projector("2.bias".into()),
            ),
            (
                "model.mm_projector.0.weight",
                Role::Projector("0.weight".into()),
            ),
            ("model.image_newline", Role::Newline),
            ("image_newline", Role::Newline),
            ("text_model.encoder.layers.0.mlp.fc1.weight", Role::Ignored),
            (
                "model.layers.0.self_attn.rotary_emb.inv_freq",
                Role::Ignored,
            ),
            ("something.else", Role::Unknown),
        ];
        for (name, role) in cases {
            assert_eq!(classify(name), role, "{name}");
        }
    }

    #[test]
    fn gguf_names() {
        assert_eq!(
            text_gguf_name("layers.12.mlp.down_proj.weight").as_deref(),
            Some("blk.12.ffn_down.weight")
        );
        assert_eq!(
            text_gguf_name("layers.0.self_attn.o_proj.weight").as_deref(),
            Some("blk.0.attn_output.weight")
        );
        assert_eq!(text_gguf_name("layers.x.mlp.down_proj.weight"), None);
        assert_eq!(
            vision_gguf_name("encoder.layers.22.mlp.fc1.bias").as_deref(),
            Some("v.blk.22.ffn_down.bias")
        );
        assert_eq!(
            vision_gguf_name("encoder.layers.1.self_attn.out_proj.weight").as_deref(),
            Some("v.blk.1.attn_out.weight")
        );
        assert_eq!(
            vision_gguf_name("embeddings.class_embedding").as_deref(),
            Some("v.class_embd")
        );
        assert_eq!(vision_layer("encoder.layers.7.layer_norm1.weight"), Some(7));
    }
}
