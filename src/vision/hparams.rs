//! What an mmproj file says about the vision tower, the connector and the preprocessing: the
//! `clip.*` keys of llama.cpp's LLaVA mmproj (old files without `clip.projector_type` too) and
//! our converter's `llava.*` keys. docs/vision.md lists every key read and its default.

use crate::gguf::GgufFile;
use crate::model_file::{self, ModelFileError, bad_value, optional, required};

use super::anyres::{Resolution, pinpoints_from_flat};
use super::decode::AlphaMode;
use super::preprocess::{ImageMode, PreprocessConfig};

/// CLIP's normalisation constants (transformers' OPENAI_CLIP_MEAN / STD), the default when a file
/// has no `clip.vision.image_mean` / `image_std`.
#[allow(clippy::excessive_precision)]
const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_1];

/// The largest CLIP input side accepted from a file (real towers use 224..448): bounds the
/// tile buffers a hostile file could ask for.
pub const MAX_IMAGE_SIZE: usize = 4096;

/// The connector between CLIP and the language model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projector {
    /// `mlp2x_gelu`: linear, GELU (erf), linear (`mm.0`, `mm.2`).
    Mlp2xGelu,
    /// One linear layer (`mm.0`).
    Linear,
}

/// The vision tower's shape and the choices around it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipHparams {
    pub image_size: usize,
    pub patch_size: usize,
    /// CLIP's hidden size.
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_heads: usize,
    pub eps: f32,
    /// Encoder blocks to run: the deepest feature layer.
    pub n_blocks: usize,
    /// Hidden-state indices whose outputs are the features (0 = the embeddings after the
    /// pre-layernorm, i = the output of block i), concatenated in this order.
    pub feature_layers: Vec<usize>,
    /// Drop the class token (`vision_feature_select_strategy = default`).
    pub drop_class_token: bool,
    /// GELU (erf) in the encoder MLP instead of quick GELU.
    pub use_gelu: bool,
    pub projector: Projector,
}

impl ClipHparams {
    /// Patches per side of a tile.
    pub fn side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Positions per tile: the class token and the patches.
    pub fn n_positions(&self) -> usize {
        1 + self.side() * self.side()
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_heads
    }

    /// Reads the tower's hyper-parameters. `n_stored_blocks` is the number of consecutive
    /// `v.blk.N` blocks present in the file.
    pub fn from_file(file: &GgufFile, n_stored_blocks: usize) -> Result<Self, ModelFileError> {
        let label = model_file::file_label(file);
        if let Some(arch) = optional::<String>(file, "general.architecture")?
            && arch != "clip"
        {
            return Err(bad_value(
                file,
                "general.architecture",
                arch,
                "an mmproj file is `clip`",
            ));
        }
        if optional::<bool>(file, "clip.has_vision_encoder")? == Some(false) {
            return Err(bad_value(
                file,
                "clip.has_vision_encoder",
                false,
                "no vision encoder",
            ));
        }
        let image_size: usize = required(file, "clip.vision.image_size")?;
        let patch_size: usize = required(file, "clip.vision.patch_size")?;
        let n_embd: usize = required(file, "clip.vision.embedding_length")?;
        let n_ff: usize = required(file, "clip.vision.feed_forward_length")?;
        let n_heads: usize = required(file, "clip.vision.attention.head_count")?;
        let eps: f32 = required(file, "clip.vision.attention.layer_norm_epsilon")?;
        let block_count: usize = required(file, "clip.vision.block_count")?;
        if image_size > MAX_IMAGE_SIZE {
            return Err(bad_value(
                file,
                "clip.vision.image_size",
                image_size,
                format!("more than {MAX_IMAGE_SIZE}"),
            ));
        }
        if patch_size == 0 || image_size == 0 || !image_size.is_multiple_of(patch_size) {
            return Err(bad_value(
                file,
                "clip.vision.image_size",
                image_size,
                format!("not a positive multiple of the patch size {patch_size}"),
            ));
        }
        if n_heads == 0 || !n_embd.is_multiple_of(n_heads) || n_embd == 0 {
            return Err(bad_value(
                file,
                "clip.vision.attention.head_count",
                n_heads,
                format!("does not divide the hidden size {n_embd}"),
            ));
        }
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(bad_value(
                file,
                "clip.vision.attention.layer_norm_epsilon",
                eps,
                "not > 0",
            ));
        }
        // llama.cpp's legacy converter: without `feature_layer` the tower is cut one block before
        // its end and the features are the last stored block's output (hidden state -2);
        // with it, `block_count` is its maximum. Our converter writes the same.
        let feature_layers: Vec<usize> =
            match optional::<Vec<i32>>(file, "clip.vision.feature_layer")? {
                Some(layers) if !layers.is_empty() => layers
                    .iter()
                    .map(|&l| {
                        usize::try_from(l).map_err(|_| {
                            bad_value(
                                file,
                                "clip.vision.feature_layer",
                                l,
                                "negative hidden-state index",
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                _ => vec![block_count],
            };
        let n_blocks = feature_layers.iter().copied().max().unwrap_or(block_count);
        if n_blocks > n_stored_blocks {
            return Err(model_file::invalid(
                file,
                format!(
                    "the features come from the output of block {n_blocks}, but only \
                     {n_stored_blocks} blocks (v.blk.0..) are stored"
                ),
            ));
        }
        let drop_class_token =
            match optional::<String>(file, "llava.vision.feature_select_strategy")?.as_deref() {
                None | Some("default") => true,
                Some("full") => false,
                Some(other) => {
                    return Err(bad_value(
                        file,
                        "llava.vision.feature_select_strategy",
                        other,
                        "expected default or full",
                    ));
                }
            };
        let use_gelu = optional::<bool>(file, "clip.use_gelu")?.unwrap_or(false);
        let projector = match optional::<String>(file, "clip.projector_type")?.as_deref() {
            // Old files have no projector type: LLaVA's mlp. `mm.2` decides between the
            // two-layer MLP and a single linear layer.
            None | Some("mlp") => {
                if file.tensor("mm.2.weight").is_some() {
                    Projector::Mlp2xGelu
                } else {
                    Projector::Linear
                }
            }
            Some("linear") => Projector::Linear,
            Some(other) => {
                return Err(ModelFileError::Invalid {
                    file: label,
                    what: format!(
                        "projector type `{other}` (clip.projector_type) is not a LLaVA \
                         projector; supported: mlp, linear"
                    ),
                });
            }
        };
        Ok(Self {
            image_size,
            patch_size,
            n_embd,
            n_ff,
            n_heads,
            eps,
            n_blocks,
            feature_layers,
            drop_class_token,
            use_gelu,
            projector,
        })
    }
}

/// How the file's model wants images prepared: `llava.preprocess.aspect_mode` (our converter),
/// else `clip.vision.image_aspect_ratio` (llama.cpp: `pad`, `anyres`; absent means pad, as
/// llama.cpp and the original LLaVA-1.5 do), with the grid pinpoints for anyres.
pub fn preprocess_config(
    file: &GgufFile,
    h: &ClipHparams,
) -> Result<PreprocessConfig, ModelFileError> {
    let mean = three(file, "clip.vision.image_mean", CLIP_MEAN)?;
    let std = three(file, "clip.vision.image_std", CLIP_STD)?;
    let ours = optional::<String>(file, "llava.preprocess.aspect_mode")?;
    let (key, mode) = match ours {
        Some(m) => ("llava.preprocess.aspect_mode", m),
        None => (
            "clip.vision.image_aspect_ratio",
            optional::<String>(file, "clip.vision.image_aspect_ratio")?
                .unwrap_or_else(|| "pad".into()),
        ),
    };
    let mode = match mode.as_str() {
        "crop" | "square" => ImageMode::Crop,
        "pad" => ImageMode::Pad,
        "anyres" => ImageMode::Anyres {
            pinpoints: pinpoints(file)?,
        },
        other => return Err(bad_value(file, key, other, "expected crop, pad or anyres")),
    };
    // LLaVA-NeXT's packing is `spatial_unpad` (unpadding + row newlines); the other merge types
    // of the original code (flat, spatial without unpad) are not implemented.
    let merge_key = "clip.vision.mm_patch_merge_type";
    if let ImageMode::Anyres { .. } = mode
        && let Some(merge) = optional::<String>(file, merge_key)?
        && merge != "spatial_unpad"
    {
        return Err(bad_value(
            file,
            merge_key,
            merge,
            "only spatial_unpad is supported with anyres",
        ));
    }
    if let Some(filter) = optional::<String>(file, "llava.preprocess.resize_filter")?
        && filter != "bicubic"
    {
        return Err(bad_value(
            file,
            "llava.preprocess.resize_filter",
            filter,
            "only bicubic (PIL's resample 3) is implemented",
        ));
    }
    let alpha = if mode == ImageMode::Pad {
        AlphaMode::Drop
    } else {
        AlphaMode::CompositeOnWhite
    };
    Ok(PreprocessConfig {
        image_size: h.image_size,
        patch_size: h.patch_size,
        mean,
        std,
        mode,
        alpha,
    })
}

fn pinpoints(file: &GgufFile) -> Result<Vec<Resolution>, ModelFileError> {
    let key = "clip.vision.image_grid_pinpoints";
    let flat: Vec<u32> = required(file, key)?;
    let flat: Vec<usize> = flat.iter().map(|&v| v as usize).collect();
    pinpoints_from_flat(&flat).map_err(|e| bad_value(file, key, format!("{flat:?}"), e))
}

fn three(file: &GgufFile, key: &str, default: [f32; 3]) -> Result<[f32; 3], ModelFileError> {
    match optional::<Vec<f32>>(file, key)? {
        None => Ok(default),
        Some(v) if v.len() == 3 => Ok([v[0], v[1], v[2]]),
        Some(v) => Err(bad_value(file, key, format!("{v:?}"), "expected 3 values")),
    }
}
