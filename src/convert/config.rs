//! The model's hyper-parameters, from `config.json` in any supported layout, with transformers'
//! defaults (transformers 5.x configuration classes) for absent keys.
//!
//! - llava-hf: `LlavaForConditionalGeneration`, `LlavaNextForConditionalGeneration`: nested
//!   `text_config` (model_type `llama` or `mistral`, default `llama`) and `vision_config`
//!   (`clip_vision_model`). A missing `vision_config` gets LlavaConfig's own default (ViT-L/14 at
//!   336 px); a present but sparse one gets CLIPVisionConfig's defaults key by key.
//! - original LLaVA: `LlavaLlamaForCausalLM` / `LlavaMistralForCausalLM`: the text model's keys at
//!   the top level plus `mm_*` keys; the CLIP config comes from the vision tower's directory.

use std::path::Path;

use super::error::ConvertError;
use super::json::JsonObject;

/// Which checkpoint layout the model directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `LlavaForConditionalGeneration`.
    LlavaHf,
    /// `LlavaNextForConditionalGeneration`.
    LlavaNextHf,
    /// `LlavaLlamaForCausalLM` / `LlavaMistralForCausalLM` (haotian-liu/LLaVA).
    Original,
}

pub const KNOWN_ARCHITECTURES: &str = "LlavaForConditionalGeneration, LlavaNextForConditionalGeneration, LlavaLlamaForCausalLM, LlavaMistralForCausalLM";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextArch {
    Llama,
    Mistral,
}

#[derive(Clone, Debug)]
pub struct TextConfig {
    pub arch: TextArch,
    pub vocab_size: u32,
    pub hidden_size: u32,
    pub intermediate_size: u32,
    pub n_layers: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub max_position_embeddings: u32,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct VisionConfig {
    pub hidden_size: u32,
    pub intermediate_size: u32,
    pub n_layers: u32,
    pub n_heads: u32,
    pub image_size: u32,
    pub patch_size: u32,
    pub num_channels: u32,
    pub projection_dim: u32,
    pub hidden_act: String,
    pub layer_norm_eps: f32,
}

impl VisionConfig {
    pub fn n_patches(&self) -> u32 {
        (self.image_size / self.patch_size).pow(2)
    }
}

/// Image preprocessing, from `preprocessor_config.json` and the LLaVA config.
#[derive(Clone, Debug)]
pub struct Preprocess {
    /// `crop` (resize shortest edge, centre crop), `pad` (pad to square with the mean colour,
    /// then resize) or `anyres` (LLaVA-NeXT tiling).
    pub aspect_mode: String,
    /// PIL resample filter name (`bicubic`, ...).
    pub resize_filter: String,
    pub shortest_edge: u32,
    pub crop_size: u32,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
}

/// Everything the converter needs to know about the model.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub layout: Layout,
    pub architecture: String,
    pub text: TextConfig,
    pub vision: VisionConfig,
    /// hidden-state indices as given (negative from the end).
    pub feature_layers: Vec<i64>,
    /// `default` (drop the class token) or `full`.
    pub feature_select: String,
    pub projector_act: String,
    pub projector_bias: bool,
    /// The `<image>` token id of the llava-hf layouts (the original layout splices at -200).
    pub image_token_index: Option<u32>,
    /// NeXT: (height, width) pairs as in the config.
    pub image_grid_pinpoints: Option<Vec<[u32; 2]>>,
    /// NeXT: `spatial_unpad` (llava-hf always unpads) or the original config's value.
    pub mm_patch_merge_type: Option<String>,
    pub preprocess: Preprocess,
    /// The original layout's CLIP checkpoint directory (--vision-tower, or found from
    /// `mm_vision_tower`).
    pub vision_tower_dir: Option<std::path::PathBuf>,
}

impl ModelConfig {
    pub fn is_next(&self) -> bool {
        self.image_grid_pinpoints.is_some()
    }

    /// Number of CLIP encoder layers the mmproj keeps: up to the deepest feature layer.
    pub fn vision_block_count(&self) -> u32 {
        let n = i64::from(self.vision.n_layers);
        self.feature_layers
            .iter()
            .map(|&l| if l < 0 { n + l + 1 } else { l })
            .max()
            .unwrap_or(n - 1) as u32
    }
}

/// CLIP's normalisation constants (transformers' OPENAI_CLIP_MEAN / STD), digits as written there.
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_1];

/// LLaVA-NeXT's default pinpoints (LlavaNextConfig).
const NEXT_PINPOINTS: [[u32; 2]; 5] =
    [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]];

/// Reads the model directory's config (and, for the original layout, the vision tower's).
pub fn load(model_dir: &Path, vision_tower: Option<&Path>) -> Result<ModelConfig, ConvertError> {
    let config = JsonObject::read(&model_dir.join("config.json"))?;
    let arch = match config.get("architectures") {
        Some(serde_json::Value::Array(a)) if !a.is_empty() => a[0]
            .as_str()
            .ok_or_else(|| config.err("architectures", "expected strings"))?
            .to_owned(),
        Some(_) => return Err(config.err("architectures", "expected a non-empty array")),
        None => String::new(),
    };
    let layout = match arch.as_str() {
        "LlavaForConditionalGeneration" => Layout::LlavaHf,
        "LlavaNextForConditionalGeneration" => Layout::LlavaNextHf,
        "LlavaLlamaForCausalLM" | "LlavaMistralForCausalLM" => Layout::Original,
        _ => {
            return Err(ConvertError::UnknownArchitecture {
                path: config.path.clone(),
                arch,
                expected: KNOWN_ARCHITECTURES,
            });
        }
    };
    match layout {
        Layout::LlavaHf | Layout::LlavaNextHf if vision_tower.is_some() => {
            Err(ConvertError::Usage(format!(
                "{}: --vision-tower applies only to the original LLaVA layout; {arch} checkpoints \
                 carry their CLIP tower",
                config.path.display()
            )))
        }
        Layout::LlavaHf | Layout::LlavaNextHf => load_hf(model_dir, layout, arch, &config),
        Layout::Original => load_original(model_dir, vision_tower, arch, &config),
    }
}

fn load_hf(
    model_dir: &Path,
    layout: Layout,
    arch: String,
    config: &JsonObject,
) -> Result<ModelConfig, ConvertError> {
    let text_json = config.object("text_config")?;
    let text = match &text_json {
        Some(t) => {
            let arch = match t.str_or("model_type", "llama")? {
                "llama" => TextArch::Llama,
                "mistral" => TextArch::Mistral,
                other => {
                    return Err(t.err(
                        "model_type",
                        format!("text model {other:?} is not supported (llama or mistral)"),
                    ));
                }
            };
            text_config(t, arch)?
        }
        None => text_config(&empty_like(config, "text_config."), TextArch::Llama)?,
    };
    let vision = match config.object("vision_config")? {
        Some(v) => {
            let model_type = v.str_or("model_type", "clip_vision_model")?;
            if model_type != "clip_vision_model" {
                return Err(v.err(
                    "model_type",
                    format!("vision model {model_type:?} is not supported (clip_vision_model)"),
                ));
            }
            vision_config(&v, &CLIP_VISION_DEFAULTS)?
        }
        None => vision_config(
            &empty_like(config, "vision_config."),
            &LLAVA_VISION_DEFAULTS,
        )?,
    };
    let mut text = text;
    // LlavaConfig forwards a tied text config to the top level.
    text.tie_word_embeddings |= config.bool_or("tie_word_embeddings", false)?;

    let feature_layers = feature_layers(config, "vision_feature_layer", -2)?;
    let feature_select = config
        .str_or("vision_feature_select_strategy", "default")?
        .to_owned();
    check_one_of(
        config,
        "vision_feature_select_strategy",
        &feature_select,
        &["default", "full"],
    )?;
    let projector_act = config.str_or("projector_hidden_act", "gelu")?.to_owned();
    let projector_bias = config.bool_or("multimodal_projector_bias", true)?;
    let image_token_index = match config.opt_u64("image_token_index")? {
        Some(v) => Some(v),
        None => config.opt_u64("image_token_id")?,
    }
    .unwrap_or(32000);
    let image_token_index = u32::try_from(image_token_index)
        .map_err(|_| config.err("image_token_index", "out of range"))?;

    let (pinpoints, merge) = if layout == Layout::LlavaNextHf {
        let p = match config.get("image_grid_pinpoints") {
            Some(_) => pinpoints(config, "image_grid_pinpoints")?,
            None => NEXT_PINPOINTS.to_vec(),
        };
        (Some(p), Some("spatial_unpad".to_owned()))
    } else {
        (None, None)
    };
    let aspect = if layout == Layout::LlavaNextHf {
        "anyres"
    } else {
        "crop"
    };
    let preprocess = preprocess(&[model_dir], &vision, aspect)?;
    let cfg = ModelConfig {
        layout,
        architecture: arch,
        text,
        vision,
        feature_layers,
        feature_select,
        projector_act,
        projector_bias,
        image_token_index: Some(image_token_index),
        image_grid_pinpoints: pinpoints,
        mm_patch_merge_type: merge,
        preprocess,
        vision_tower_dir: None,
    };
    check(config, &cfg)?;
    Ok(cfg)
}

fn load_original(
    model_dir: &Path,
    vision_tower: Option<&Path>,
    arch: String,
    config: &JsonObject,
) -> Result<ModelConfig, ConvertError> {
    let text_arch = if arch == "LlavaMistralForCausalLM" {
        TextArch::Mistral
    } else {
        TextArch::Llama
    };
    let text = text_config(config, text_arch)?;
    let tower_dir = match vision_tower {
        Some(dir) => dir.to_owned(),
        None => {
            // A local path, next to or inside the model directory (a hub name such as
            // openai/clip-vit-large-patch14-336 is not downloaded).
            let named = config.opt_str("mm_vision_tower")?.unwrap_or("");
            let candidates = [
                model_dir.join(named),
                model_dir.parent().unwrap_or(Path::new(".")).join(named),
            ];
            let found = candidates
                .into_iter()
                .find(|c| !named.is_empty() && c.join("config.json").is_file());
            if let Some(dir) = found {
                dir
            } else {
                return Err(ConvertError::Usage(format!(
                    "{}: the original LLaVA layout keeps CLIP in a separate checkpoint \
                     (mm_vision_tower = {named:?}); give its directory with --vision-tower DIR",
                    config.path.display()
                )));
            }
        }
    };
    let clip = JsonObject::read(&tower_dir.join("config.json"))?;
    let vision = match clip.object("vision_config")? {
        Some(v) => vision_config(&v, &CLIP_VISION_DEFAULTS)?,
        None if clip.str_or("model_type", "")? == "clip" => {
            vision_config(&empty_like(&clip, "vision_config."), &CLIP_VISION_DEFAULTS)?
        }
        None => vision_config(&clip, &CLIP_VISION_DEFAULTS)?,
    };
    if let Some(mm_hidden) = config.opt_u64("mm_hidden_size")?
        && mm_hidden != u64::from(vision.hidden_size)
    {
        return Err(config.err(
            "mm_hidden_size",
            format!(
                "{mm_hidden} disagrees with the vision tower's hidden_size {} ({})",
                vision.hidden_size,
                clip.path.display()
            ),
        ));
    }
    let projector_type = config.str_or("mm_projector_type", "linear")?;
    if projector_type != "mlp2x_gelu" {
        return Err(config.err(
            "mm_projector_type",
            format!("{projector_type:?} is not supported (mlp2x_gelu, llama.cpp's `mlp`)"),
        ));
    }
    if config.bool_or("mm_use_im_start_end", false)? {
        return Err(config.err(
            "mm_use_im_start_end",
            "image start/end tokens are not supported",
        ));
    }
    let feature_layers = feature_layers(config, "mm_vision_select_layer", -2)?;
    let feature_select = match config.str_or("mm_vision_select_feature", "patch")? {
        "patch" => "default",
        "cls_patch" => "full",
        other => {
            return Err(config.err(
                "mm_vision_select_feature",
                format!("{other:?} is not one of patch, cls_patch"),
            ));
        }
    }
    .to_owned();
    let aspect = config.opt_str("image_aspect_ratio")?.unwrap_or("crop");
    let aspect = match aspect {
        "pad" => "pad",
        "anyres" => "anyres",
        "square" | "crop" => "crop",
        other => {
            return Err(config.err(
                "image_aspect_ratio",
                format!("{other:?} is not one of pad, anyres, square"),
            ));
        }
    };
    let (pinpoints, merge) = if aspect == "anyres" {
        let p = pinpoints(config, "image_grid_pinpoints")?;
        let merge = config.str_or("mm_patch_merge_type", "flat")?.to_owned();
        (Some(p), Some(merge))
    } else {
        (None, None)
    };
    let preprocess = preprocess(&[model_dir, &tower_dir], &vision, aspect)?;
    let cfg = ModelConfig {
        layout: Layout::Original,
        architecture: arch,
        text,
        vision,
        feature_layers,
        feature_select,
        projector_act: "gelu".into(),
        projector_bias: true,
        image_token_index: None,
        image_grid_pinpoints: pinpoints,
        mm_patch_merge_type: merge,
        preprocess,
        vision_tower_dir: Some(tower_dir),
    };
    check(config, &cfg)?;
    Ok(cfg)
}

/// An empty object standing for an absent nested config (so defaults apply, errors name it).
fn empty_like(parent: &JsonObject, prefix: &str) -> JsonObject {
    JsonObject {
        path: parent.path.clone(),
        prefix: format!("{}{prefix}", parent.prefix),
        map: Default::default(),
    }
}

fn text_config(t: &JsonObject, arch: TextArch) -> Result<TextConfig, ConvertError> {
    // LlamaConfig / MistralConfig defaults (transformers 5).
    let (inter, kv_default, max_pos) = match arch {
        TextArch::Llama => (11008, None, 2048),
        TextArch::Mistral => (14336, Some(8), 4096 * 32),
    };
    let hidden_size = t.count("hidden_size", 4096)?;
    let n_heads = t.count("num_attention_heads", 32)?;
    let n_kv_heads = match t.opt_count("num_key_value_heads")? {
        Some(v) => v,
        None => kv_default.unwrap_or(n_heads),
    };
    let head_dim = match t.opt_count("head_dim")? {
        Some(v) => v,
        None => hidden_size / n_heads,
    };
    let act = t.str_or("hidden_act", "silu")?;
    if act != "silu" {
        return Err(t.err("hidden_act", format!("{act:?}: only silu is supported")));
    }
    for key in ["attention_bias", "mlp_bias"] {
        if t.bool_or(key, false)? {
            return Err(t.err(key, "biases in the text model are not supported"));
        }
    }
    // rope: `rope_theta` (transformers 4) or `rope_parameters.rope_theta` (5); only plain rope.
    let mut rope_theta = t.opt_f64("rope_theta")?;
    for key in ["rope_parameters", "rope_scaling"] {
        if let Some(rope) = t.object(key)? {
            let kind = match rope.opt_str("rope_type")? {
                Some(k) => k.to_owned(),
                None => rope.str_or("type", "default")?.to_owned(),
            };
            if kind != "default" {
                return Err(rope.err(
                    "rope_type",
                    format!("rope scaling {kind:?} is not supported"),
                ));
            }
            if let Some(theta) = rope.opt_f64("rope_theta")? {
                rope_theta = Some(theta);
            }
        }
    }
    let id = |key: &str| -> Result<Option<u32>, ConvertError> {
        match t.get(key) {
            // eos may be a list: the first is the one llama.cpp records.
            Some(serde_json::Value::Array(a)) => {
                Ok(a.first().and_then(|v| v.as_u64()).map(|v| v as u32))
            }
            _ => Ok(t.opt_u64(key)?.and_then(|v| u32::try_from(v).ok())),
        }
    };
    Ok(TextConfig {
        arch,
        vocab_size: t.count("vocab_size", 32000)?,
        hidden_size,
        intermediate_size: t.count("intermediate_size", inter)?,
        n_layers: t.count("num_hidden_layers", 32)?,
        n_heads,
        n_kv_heads,
        head_dim,
        max_position_embeddings: t.count("max_position_embeddings", max_pos)?,
        rms_norm_eps: t.f64_or("rms_norm_eps", 1e-6)? as f32,
        rope_theta: rope_theta.unwrap_or(10000.0) as f32,
        tie_word_embeddings: t.bool_or("tie_word_embeddings", false)?,
        bos_token_id: if t.has("bos_token_id") {
            id("bos_token_id")?
        } else {
            Some(1)
        },
        eos_token_id: if t.has("eos_token_id") {
            id("eos_token_id")?
        } else {
            Some(2)
        },
        pad_token_id: id("pad_token_id")?,
    })
}

/// Defaults for a CLIP vision config: CLIPVisionConfig's own, or LlavaConfig's (used when the
/// whole `vision_config` is absent).
struct VisionDefaults {
    hidden_size: u32,
    intermediate_size: u32,
    n_layers: u32,
    n_heads: u32,
    image_size: u32,
    patch_size: u32,
    projection_dim: u32,
}

const CLIP_VISION_DEFAULTS: VisionDefaults = VisionDefaults {
    hidden_size: 768,
    intermediate_size: 3072,
    n_layers: 12,
    n_heads: 12,
    image_size: 224,
    patch_size: 32,
    projection_dim: 512,
};

const LLAVA_VISION_DEFAULTS: VisionDefaults = VisionDefaults {
    hidden_size: 1024,
    intermediate_size: 4096,
    n_layers: 24,
    n_heads: 16,
    image_size: 336,
    patch_size: 14,
    projection_dim: 768,
};

fn vision_config(v: &JsonObject, d: &VisionDefaults) -> Result<VisionConfig, ConvertError> {
    let cfg = VisionConfig {
        hidden_size: v.count("hidden_size", d.hidden_size)?,
        intermediate_size: v.count("intermediate_size", d.intermediate_size)?,
        n_layers: v.count("num_hidden_layers", d.n_layers)?,
        n_heads: v.count("num_attention_heads", d.n_heads)?,
        image_size: v.count("image_size", d.image_size)?,
        patch_size: v.count("patch_size", d.patch_size)?,
        num_channels: v.count("num_channels", 3)?,
        projection_dim: v.count("projection_dim", d.projection_dim)?,
        hidden_act: v.str_or("hidden_act", "quick_gelu")?.to_owned(),
        layer_norm_eps: v.f64_or("layer_norm_eps", 1e-5)? as f32,
    };
    check_one_of(v, "hidden_act", &cfg.hidden_act, &["quick_gelu", "gelu"])?;
    if !cfg.image_size.is_multiple_of(cfg.patch_size) {
        return Err(v.err(
            "image_size",
            format!(
                "{} is not a multiple of patch_size {}",
                cfg.image_size, cfg.patch_size
            ),
        ));
    }
    if !cfg.hidden_size.is_multiple_of(cfg.n_heads) {
        return Err(v.err(
            "num_attention_heads",
            format!(
                "{} does not divide hidden_size {}",
                cfg.n_heads, cfg.hidden_size
            ),
        ));
    }
    if cfg.num_channels != 3 {
        return Err(v.err("num_channels", "only RGB (3) is supported"));
    }
    Ok(cfg)
}

fn check_one_of(
    j: &JsonObject,
    key: &str,
    value: &str,
    allowed: &[&str],
) -> Result<(), ConvertError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(j.err(
            key,
            format!("{value:?} is not one of {}", allowed.join(", ")),
        ))
    }
}

fn feature_layers(c: &JsonObject, key: &str, default: i64) -> Result<Vec<i64>, ConvertError> {
    match c.get(key) {
        None => Ok(vec![default]),
        Some(serde_json::Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_i64())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| c.err(key, "expected integers")),
        Some(_) => Ok(vec![c.opt_i64(key)?.unwrap_or(default)]),
    }
}

fn pinpoints(c: &JsonObject, key: &str) -> Result<Vec<[u32; 2]>, ConvertError> {
    let bad = || {
        c.err(
            key,
            "expected a non-empty list of [height, width] pairs of positive integers",
        )
    };
    let items = c.get(key).and_then(|v| v.as_array()).ok_or_else(bad)?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let pair = item.as_array().filter(|p| p.len() == 2).ok_or_else(bad)?;
        let h = pair[0]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v > 0);
        let w = pair[1]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v > 0);
        match (h, w) {
            (Some(h), Some(w)) => out.push([h, w]),
            _ => return Err(bad()),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// PIL's resample codes.
fn filter_name(code: u64) -> Option<&'static str> {
    Some(match code {
        0 => "nearest",
        1 => "lanczos",
        2 => "bilinear",
        3 => "bicubic",
        4 => "box",
        5 => "hamming",
        _ => return None,
    })
}

/// `size` / `crop_size` in any of the forms transformers writes: an int, `{shortest_edge}` or
/// `{height, width}` (square only).
fn image_side(p: &JsonObject, key: &str) -> Result<Option<u32>, ConvertError> {
    match p.get(key) {
        None => Ok(None),
        Some(serde_json::Value::Object(_)) => {
            let o = p
                .object(key)?
                .ok_or_else(|| p.err(key, "expected an object"))?;
            if let Some(s) = o.opt_count("shortest_edge")? {
                return Ok(Some(s));
            }
            let h = o.opt_count("height")?;
            let w = o.opt_count("width")?;
            match (h, w) {
                (Some(h), Some(w)) if h == w => Ok(Some(h)),
                (Some(_), Some(_)) => Err(o.err("height", "non-square sizes are not supported")),
                _ => Err(p.err(key, "expected shortest_edge or height and width")),
            }
        }
        Some(_) => p.opt_count(key),
    }
}

fn preprocess(
    dirs: &[&Path],
    vision: &VisionConfig,
    aspect: &str,
) -> Result<Preprocess, ConvertError> {
    let mut found = None;
    for dir in dirs {
        if let Some(p) = JsonObject::read_optional(&dir.join("preprocessor_config.json"))? {
            found = Some(p);
            break;
        }
    }
    let mut out = Preprocess {
        aspect_mode: aspect.to_owned(),
        resize_filter: "bicubic".into(),
        shortest_edge: vision.image_size,
        crop_size: vision.image_size,
        image_mean: CLIP_MEAN,
        image_std: CLIP_STD,
    };
    let Some(p) = found else {
        return Ok(out);
    };
    if let Some(code) = p.opt_u64("resample")? {
        out.resize_filter = filter_name(code)
            .ok_or_else(|| p.err("resample", format!("unknown PIL filter {code}")))?
            .into();
    }
    if let Some(s) = image_side(&p, "size")? {
        out.shortest_edge = s;
    }
    if let Some(s) = image_side(&p, "crop_size")? {
        out.crop_size = s;
    }
    for (key, dst) in [
        ("image_mean", &mut out.image_mean),
        ("image_std", &mut out.image_std),
    ] {
        if let Some(v) = p.opt_f64_array(key)? {
            if v.len() != 3 {
                return Err(p.err(key, "expected 3 values"));
            }
            for (d, s) in dst.iter_mut().zip(v) {
                *d = s as f32;
            }
        }
    }
    Ok(out)
}

/// Cross-checks that make later shape errors impossible to misread.
fn check(config: &JsonObject, cfg: &ModelConfig) -> Result<(), ConvertError> {
    let t = &cfg.text;
    if !t.n_heads.is_multiple_of(t.n_kv_heads) {
        return Err(config.err(
            "num_key_value_heads",
            format!(
                "{} does not divide num_attention_heads {}",
                t.n_kv_heads, t.n_heads
            ),
        ));
    }
    if !t.head_dim.is_multiple_of(2) {
        return Err(config.err("head_dim", "rope needs an even head dimension"));
    }
    let n = i64::from(cfg.vision.n_layers);
    for &l in &cfg.feature_layers {
        if l < -n - 1 || l > n {
            return Err(config.err(
                "vision_feature_layer",
                format!("{l} is outside the vision tower's {n} layers"),
            ));
        }
    }
    if cfg.projector_act != "gelu" {
        return Err(config.err(
            "projector_hidden_act",
            format!(
                "{:?}: only gelu (llama.cpp's mlp projector) is supported",
                cfg.projector_act
            ),
        ));
    }
    Ok(())
}
