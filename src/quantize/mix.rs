//! Which type each tensor gets in a file type's mix: the rules of llama.cpp's
//! `src/llama-quant.cpp` at commit 0c1e57098 (`tensor_allows_quantization`,
//! `llama_tensor_get_type_impl`, `tensor_type_fallback`), for the file types of
//! [`LlamaFileType`], without an importance matrix, overrides or `--pure`.
//! docs/quantize.md has the rules as a table.
//!
//! Pure logic: the caller describes the model ([`ModelContext`]) and its tensors ([`TensorDesc`]),
//! and gets back one type per tensor ([`MixPlan`]).

use thiserror::Error;

use super::file_type::LlamaFileType;
use crate::dtype::GgmlType;

/// The model facts the rules depend on, as llama.cpp's `llama_hparams` holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelContext {
    /// `general.architecture` (`llama`, `clip`, ...).
    pub arch: String,
    /// `<arch>.block_count`; llama.cpp loads no hyper-parameters for `clip`, so 0 there.
    pub n_layers: u32,
    /// `<arch>.attention.head_count` (of layer 0 when it is per-layer).
    pub n_head: u32,
    /// `<arch>.attention.head_count_kv`, defaulting to `n_head`.
    pub n_head_kv: u32,
    /// `<arch>.expert_count`, 0 for dense models.
    pub n_expert: u32,
}

impl ModelContext {
    /// A mmproj (`general.architecture = clip`): llama.cpp leaves every hyper-parameter at 0.
    pub fn clip() -> ModelContext {
        ModelContext {
            arch: "clip".to_owned(),
            n_layers: 0,
            n_head: 0,
            n_head_kv: 0,
            n_expert: 0,
        }
    }

    /// Query heads per KV head (`llama_hparams::n_gqa`), 0 when there are no KV heads.
    pub fn n_gqa(&self) -> u32 {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }

    fn is_falcon(&self) -> bool {
        self.arch == "falcon"
    }

    /// Whether llama.cpp classes the model as `LLM_TYPE_70B`. Only the llama architecture's
    /// classification is modelled (80 layers with grouped KV heads, not an 8-expert model).
    fn is_70b(&self) -> bool {
        self.arch == "llama"
            && self.n_expert != 8
            && self.n_layers == 80
            && self.n_head != self.n_head_kv
    }
}

/// One tensor as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct TensorDesc<'a> {
    pub name: &'a str,
    /// Dimensions in ggml order: `dims[0]` is the row length.
    pub dims: &'a [u64],
    /// The tensor's type in the input file.
    pub ty: GgmlType,
}

impl TensorDesc<'_> {
    fn row_length(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// `ggml_n_dims`: trailing dimensions of extent 1 do not count.
    fn n_dims(&self) -> usize {
        self.dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
    }
}

/// The chosen type of every tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixPlan {
    /// Target type of tensor `i` of the input list.
    pub types: Vec<GgmlType>,
    /// Indices into the input list in llama.cpp's processing (and output) order: tensors
    /// outside `blk.N.` first, then by layer number, each group by name.
    pub order: Vec<usize>,
    /// Indices of the tensors whose mix type did not fit their row length and fell back.
    pub fallbacks: Vec<usize>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MixError {
    #[error("cannot tell the layer of expert tensor {name}: its name does not start with blk.N.")]
    NoLayerInName { name: String },
    #[error("tensor {name} names layer {layer}, but the model has {n_layers} layers")]
    LayerOutOfRange {
        name: String,
        layer: i64,
        n_layers: u32,
    },
    #[error("tensor {name}: row length {row_length} does not fit {ty}, and {ty} has no fallback")]
    NoFallback {
        name: String,
        row_length: u64,
        ty: GgmlType,
    },
}

/// Broad roles of tensors (llama.cpp's `tensor_category`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttentionQkv,
    AttentionKvB,
    AttentionV,
    AttentionK,
    AttentionQ,
    AttentionOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

impl Category {
    fn of(name: &str) -> Category {
        use Category::*;
        if name == "output.weight" {
            return Output;
        }
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            return TokenEmbd;
        }
        // First match wins, as in llama.cpp: "attn_qkv.weight" must be tested before
        // "attn_v.weight", and the FFN patterns also match their `_exps`/`_shexp` variants.
        const PATTERNS: [(&str, Category); 9] = [
            ("attn_qkv.weight", AttentionQkv),
            ("attn_kv_b.weight", AttentionKvB),
            ("attn_v.weight", AttentionV),
            ("attn_k.weight", AttentionK),
            ("attn_q.weight", AttentionQ),
            ("attn_output.weight", AttentionOutput),
            ("ffn_up", FfnUp),
            ("ffn_gate", FfnGate),
            ("ffn_down", FfnDown),
        ];
        PATTERNS
            .iter()
            .find(|(pattern, _)| name.contains(pattern))
            .map_or(Other, |&(_, category)| category)
    }

    /// The value projections, which the mixes give more bits.
    fn is_attention_v(self) -> bool {
        matches!(
            self,
            Category::AttentionV | Category::AttentionQkv | Category::AttentionKvB
        )
    }
}

/// Name fragments of tensors never quantized, whatever their shape (`tensor_allows_quantization`).
const NEVER_QUANTIZED_FRAGMENTS: &[&str] = &[
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
];

/// Whether the mix may change the tensor's type at all: only weights of two or more dimensions,
/// and not norms, positional embeddings, expert routers and the other small tables llama.cpp
/// lists. Every other tensor keeps its input type.
pub fn allows_quantization(tensor: &TensorDesc) -> bool {
    let name = tensor.name;
    tensor.n_dims() >= 2
        && name.ends_with("weight")
        && name != "position_embd.weight"
        && name != "token_types.weight"
        && !NEVER_QUANTIZED_FRAGMENTS.iter().any(|f| name.contains(f))
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third layer
/// between them, get more bits in the `_M` mixes.
pub fn use_more_bits(i_layer: i64, n_layers: i64) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

/// The layer number `blk.N.` names (`sscanf(name, "blk.%d.")`), if any.
fn layer_in_name(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let (sign, digits) = match rest.as_bytes().first() {
        Some(b'-') => (-1, &rest[1..]),
        Some(b'+') => (1, &rest[1..]),
        _ => (1, rest),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse::<i64>().ok().map(|n| sign * n)
}

/// llama.cpp's tensor order (`weight_name_comparer`): layer number (-1 outside `blk.N.`), then
/// name. The `i_*` counters advance in this order, so it decides which layers get more bits.
fn processing_order(tensors: &[TensorDesc]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| {
        (
            layer_in_name(tensors[i].name).unwrap_or(-1),
            tensors[i].name,
        )
    });
    order
}

/// The running state of one pass over the tensors (`quantize_state_impl`).
struct MixState<'a> {
    file_type: LlamaFileType,
    model: &'a ModelContext,
    has_tied_embeddings: bool,
    n_attention_wv: i64,
    n_ffn_layers: i64,
    i_attention_wv: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
}

impl MixState<'_> {
    /// The layer an FFN tensor belongs to: the running counter for dense models; the name for
    /// expert models, whose tensors need not come in layer order.
    fn layer_info(&self, counter: i64, name: &str) -> Result<(i64, i64), MixError> {
        let n_layers = self.n_ffn_layers;
        if self.model.n_expert > 1 {
            let layer = layer_in_name(name).ok_or_else(|| MixError::NoLayerInName {
                name: name.to_owned(),
            })?;
            if layer < 0 || layer >= n_layers {
                return Err(MixError::LayerOutOfRange {
                    name: name.to_owned(),
                    layer,
                    n_layers: self.model.n_layers,
                });
            }
            return Ok((layer, n_layers));
        }
        Ok((counter, n_layers))
    }

    /// `llama_tensor_get_type_impl`, reduced to the branches the supported file types reach.
    fn mix_type(&mut self, tensor: &TensorDesc, default: GgmlType) -> Result<GgmlType, MixError> {
        use GgmlType::*;
        use LlamaFileType::*;
        let ft = self.file_type;
        let model = self.model;
        let falcon = model.is_falcon();
        let category = Category::of(tensor.name);
        let mut new_type = default;

        if category == Category::Output
            || (self.has_tied_embeddings && category == Category::TokenEmbd)
        {
            if falcon
                || !tensor
                    .row_length()
                    .is_multiple_of(new_type.block_size() as u64)
            {
                new_type = Q8_0;
            } else if new_type != Q8_0 {
                new_type = Q6_K;
            }
        } else if category == Category::TokenEmbd {
            // Only the IQ and ternary file types change the token embeddings.
        } else if category.is_attention_v() {
            // attn_qkv falls in here too, so llama.cpp's separate attn_qkv branch never runs.
            let (i, n) = (self.i_attention_wv, self.n_attention_wv);
            match ft {
                MostlyQ2_K => new_type = if model.n_gqa() >= 4 { Q4_K } else { Q3_K },
                MostlyQ3_K_M => new_type = if i < 2 { Q5_K } else { Q4_K },
                MostlyQ3_K_L => new_type = Q5_K,
                MostlyQ4_K_M | MostlyQ5_K_M if use_more_bits(i, n) => new_type = Q6_K,
                MostlyQ4_K_S if i < 4 => new_type = Q5_K,
                _ => {}
            }
            // 70B models share attn_v between 8 heads, so it is 8x smaller than attn_q:
            // more bits there cost little.
            if model.is_70b() && matches!(new_type, Q3_K | Q4_K) {
                new_type = Q5_K;
            }
            if model.n_expert == 8 {
                new_type = Q8_0;
            }
            self.i_attention_wv += 1;
        } else if category == Category::AttentionK {
            if model.n_expert == 8 {
                new_type = Q8_0;
            }
        } else if category == Category::FfnDown {
            let (i, n) = self.layer_info(self.i_ffn_down, tensor.name)?;
            match ft {
                MostlyQ2_K => new_type = Q3_K,
                MostlyQ3_K_M => {
                    new_type = if i < n / 16 {
                        Q5_K
                    } else if !falcon || use_more_bits(i, n) {
                        Q4_K
                    } else {
                        Q3_K
                    }
                }
                MostlyQ3_K_L => new_type = if falcon { Q4_K } else { Q5_K },
                MostlyQ4_K_M if falcon => {
                    new_type = if i < n / 16 {
                        Q6_K
                    } else if use_more_bits(i, n) {
                        Q5_K
                    } else {
                        Q4_K
                    }
                }
                MostlyQ4_K_M | MostlyQ5_K_M if use_more_bits(i, n) => new_type = Q6_K,
                MostlyQ4_K_S if !falcon && i < n / 8 => new_type = Q5_K,
                _ => {}
            }
            self.i_ffn_down += 1;
        } else if category == Category::AttentionOutput {
            if falcon {
                if ft == MostlyQ3_K_L {
                    new_type = Q4_K;
                }
            } else if model.n_expert == 8 {
                if matches!(
                    ft,
                    MostlyQ2_K | MostlyQ3_K_S | MostlyQ3_K_M | MostlyQ4_K_S | MostlyQ4_K_M
                ) {
                    new_type = Q5_K;
                }
            } else {
                match ft {
                    MostlyQ2_K => new_type = Q3_K,
                    MostlyQ3_K_M => new_type = Q4_K,
                    MostlyQ3_K_L => new_type = Q5_K,
                    _ => {}
                }
            }
        } else if category == Category::FfnGate {
            // Only IQ3_XS changes ffn_gate; the layer lookup can still fail for expert models.
            self.layer_info(self.i_ffn_gate, tensor.name)?;
            self.i_ffn_gate += 1;
        } else if category == Category::FfnUp {
            self.layer_info(self.i_ffn_up, tensor.name)?;
            self.i_ffn_up += 1;
        }
        Ok(new_type)
    }
}

/// The type a tensor gets when `target` does not divide its row length into whole blocks
/// (`tensor_type_fallback`): a 32-element type of similar size, or F16 if even that does not fit.
/// `None` when llama.cpp defines no fallback for `target`.
pub fn fallback_type(target: GgmlType, row_length: u64) -> Option<GgmlType> {
    use GgmlType::*;
    if row_length.is_multiple_of(target.block_size() as u64) {
        return Some(target);
    }
    let fallback = match target {
        IQ1_S | IQ1_M | IQ2_XXS | IQ2_XS | IQ2_S | IQ3_XXS | IQ3_S | IQ4_XS => IQ4_NL,
        Q2_0 | Q2_K | Q3_K | TQ1_0 | TQ2_0 => Q4_0,
        Q4_K => Q5_0,
        Q5_K => Q5_1,
        Q6_K => Q8_0,
        // Already a 32-element type: nothing smaller to demote to, F16 below.
        other if other.block_size() <= 32 => other,
        _ => return None,
    };
    if !row_length.is_multiple_of(fallback.block_size() as u64) {
        return Some(F16);
    }
    Some(fallback)
}

/// Chooses the type of every tensor for `file_type` (`llama_tensor_get_type` over the model).
pub fn plan_types(
    file_type: LlamaFileType,
    model: &ModelContext,
    tensors: &[TensorDesc],
) -> Result<MixPlan, MixError> {
    let order = processing_order(tensors);
    let mut state = MixState {
        file_type,
        model,
        has_tied_embeddings: !tensors.iter().any(|t| t.name == "output.weight"),
        n_attention_wv: tensors
            .iter()
            .filter(|t| Category::of(t.name).is_attention_v())
            .count() as i64,
        n_ffn_layers: i64::from(model.n_layers),
        i_attention_wv: 0,
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
    };
    let default = file_type.default_type();
    let mut types: Vec<GgmlType> = tensors.iter().map(|t| t.ty).collect();
    let mut fallbacks = Vec::new();

    for &index in &order {
        let tensor = &tensors[index];
        if !allows_quantization(tensor) {
            continue;
        }
        if !default.is_quantized() {
            // F32, F16, BF16: every quantizable tensor is converted, no mix rules.
            types[index] = default;
            continue;
        }
        let mixed = state.mix_type(tensor, default)?;
        let fitted =
            fallback_type(mixed, tensor.row_length()).ok_or_else(|| MixError::NoFallback {
                name: tensor.name.to_owned(),
                row_length: tensor.row_length(),
                ty: mixed,
            })?;
        if fitted != mixed {
            fallbacks.push(index);
        }
        types[index] = fitted;
    }
    Ok(MixPlan {
        types,
        order,
        fallbacks,
    })
}

#[cfg(test)]
mod tests;
