//! Weights repacked at load: when the decoder's weights are read into memory, each matmul
//! weight whose CPU tier decodes faster from another layout ([`repack::preferred_layout`],
//! e.g. Q4_K×8 on AVX2) is rearranged into it in place, once, before the memory becomes
//! read-only; llama.cpp's CPU backend does the same with its "repack" buffers. A repacked
//! matrix is the same size as ggml's, so nothing is copied. Mapped weights are never repacked:
//! writing to them would turn the file's pages into anonymous ones, losing what the mapping is
//! for (memory the OS can take back).

use std::collections::HashMap;
use std::fmt;
use std::time::Instant;

use rayon::prelude::*;

use super::WeightStorage;
use crate::GgmlType;
use crate::gguf::{GgufHeader, TensorInfo};
use crate::kernels::{Kernels, RepackedKernels, Tier, WeightLayout, repack};
use crate::model_file::ModelFileError;

/// Whether to repack the weights read into memory (`--no-repack` is [`Repack::Off`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Repack {
    /// Into the layout the tier's decode dots prefer, where it has one.
    #[default]
    Auto,
    /// Keep ggml's layout (a like-for-like comparison, or to rule the layout out).
    Off,
    /// Into every repacked layout a matrix's type and shape allow, whether or not the tier has
    /// a fast dot for it (it then runs the portable group dot): for tests and comparisons.
    Force,
}

/// The matrices the decoder multiplies by, by tensor name: `blk.N.{attn_q, attn_k, attn_v,
/// attn_output, ffn_gate, ffn_up, ffn_down}.weight` and `output.weight`. Not
/// `token_embd.weight`: its rows are dequantized on lookup, in ggml's layout, and it stands
/// for `output.weight` when the file ties the two.
pub fn is_matmul_weight(name: &str) -> bool {
    const LAYER_MATRICES: [&str; 7] = [
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ];
    if name == "output.weight" {
        return true;
    }
    let Some(rest) = name.strip_prefix("blk.") else {
        return false;
    };
    let Some((layer, rest)) = rest.split_once('.') else {
        return false;
    };
    let numbered = !layer.is_empty() && layer.bytes().all(|b| b.is_ascii_digit());
    numbered
        && rest
            .strip_suffix(".weight")
            .is_some_and(|m| LAYER_MATRICES.contains(&m))
}

/// The layout of each repacked tensor, by name (ggml's for any other).
#[derive(Clone, Debug, Default)]
pub struct TensorLayouts(HashMap<String, WeightLayout>);

impl TensorLayouts {
    pub fn get(&self, name: &str) -> WeightLayout {
        self.0.get(name).copied().unwrap_or_default()
    }
}

/// What the loader repacked, or why nothing: its `Display` ends the start-up load line.
#[derive(Clone, Debug, PartialEq)]
pub struct RepackSummary {
    pub repack: Repack,
    pub storage: WeightStorage,
    /// The tier whose preference was asked.
    pub tier: Tier,
    /// Whether that tier has a fast dot on a repacked layout (so [`Repack::Auto`] repacks).
    pub tier_has_dots: bool,
    /// Tensors repacked: weight type, layout, how many; one entry per pair met.
    pub repacked: Vec<(GgmlType, WeightLayout, usize)>,
    /// Wall time of the repacking.
    pub seconds: f64,
}

impl RepackSummary {
    /// Nothing repacked: a mapped file, or [`Repack::Off`].
    pub(crate) fn none(repack: Repack, storage: WeightStorage, kernels: &Kernels) -> Self {
        RepackSummary {
            repack,
            storage,
            tier: kernels.tier,
            tier_has_dots: has_repacked_dots(kernels),
            repacked: Vec::new(),
            seconds: 0.0,
        }
    }

    /// How many tensors were repacked, all layouts together.
    pub fn tensors(&self) -> usize {
        self.repacked.iter().map(|&(_, _, n)| n).sum()
    }
}

fn has_repacked_dots(kernels: &Kernels) -> bool {
    let r = &kernels.repacked;
    r.q4_k_x8.is_some() || r.q6_k_x8.is_some() || r.q8_0_x8.is_some()
}

/// `kernels` with the portable group dot wherever the tier has none, so that
/// [`repack::preferred_layout`] picks a layout wherever the shape allows ([`Repack::Force`]).
fn forcing(kernels: &Kernels) -> Kernels {
    Kernels {
        repacked: RepackedKernels {
            q4_k_x8: Some(kernels.repacked.q4_k_x8.unwrap_or(repack::PORTABLE_Q4K_X8)),
            q6_k_x8: Some(kernels.repacked.q6_k_x8.unwrap_or(repack::PORTABLE_Q6K_X8)),
            q8_0_x8: Some(kernels.repacked.q8_0_x8.unwrap_or(repack::PORTABLE_Q8_0_X8)),
        },
        ..*kernels
    }
}

/// The matrix shape (rows, k) of a tensor: k = its first dimension, rows = the product of the
/// others (`None` for a vector or a size beyond `usize`).
fn matrix_shape(info: &TensorInfo) -> Option<(usize, usize)> {
    let (&k, outer) = info.dims.split_first()?;
    if outer.is_empty() {
        return None;
    }
    let rows = outer.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
    Some((usize::try_from(rows).ok()?, usize::try_from(k).ok()?))
}

/// Repacks, in place in `bytes` (the file's bytes, which `header` was parsed from), every
/// matmul weight ([`is_matmul_weight`]) that `repack` and `kernels` want in another layout,
/// in parallel. An error names the tensor; `bytes` is then half rearranged and must be
/// dropped (the loader frees it).
pub(crate) fn repack_tensors(
    header: &GgufHeader,
    bytes: &mut [u8],
    repack: Repack,
    kernels: &Kernels,
    file_label: &str,
) -> Result<(TensorLayouts, RepackSummary), ModelFileError> {
    let mut summary = RepackSummary::none(repack, WeightStorage::Memory, kernels);
    let wanted = match repack {
        Repack::Off => return Ok((TensorLayouts::default(), summary)),
        Repack::Auto => *kernels,
        Repack::Force => forcing(kernels),
    };
    let started = Instant::now();
    let layout_of = |info: &TensorInfo| match matrix_shape(info) {
        Some((rows, k)) if is_matmul_weight(&info.name) => {
            repack::preferred_layout(&wanted, info.ggml_type, rows, k)
        }
        _ => WeightLayout::Ggml,
    };
    let picked = header.tensor_data_mut(bytes, |info| layout_of(info) != WeightLayout::Ggml);
    let done: Vec<(String, GgmlType, WeightLayout)> = picked
        .into_par_iter()
        .map(|(info, data)| {
            let layout = layout_of(info);
            let (rows, k) = matrix_shape(info).unwrap_or_default();
            repack::repack_in_place(info.ggml_type, layout, rows, k, data).map_err(|e| {
                ModelFileError::Invalid {
                    file: file_label.to_owned(),
                    what: format!("tensor `{}`: cannot repack it to {layout}: {e}", info.name),
                }
            })?;
            Ok((info.name.clone(), info.ggml_type, layout))
        })
        .collect::<Result<_, ModelFileError>>()?;
    summary.seconds = started.elapsed().as_secs_f64();
    let mut layouts = HashMap::with_capacity(done.len());
    for (name, ty, layout) in done {
        match summary
            .repacked
            .iter_mut()
            .find(|(t, l, _)| (*t, *l) == (ty, layout))
        {
            Some((_, _, n)) => *n += 1,
            None => summary.repacked.push((ty, layout, 1)),
        }
        layouts.insert(name, layout);
    }
    Ok((TensorLayouts(layouts), summary))
}

impl fmt::Display for RepackSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tier = self.tier;
        if self.storage == WeightStorage::Mapped {
            return f.write_str("ggml's layout kept (mapped weights are never repacked)");
        }
        if self.repack == Repack::Off {
            return f.write_str("ggml's layout kept (--no-repack)");
        }
        if self.repacked.is_empty() {
            return if self.repack == Repack::Auto && !self.tier_has_dots {
                write!(
                    f,
                    "ggml's layout kept: the {tier} decode has no repacked dots"
                )
            } else {
                f.write_str("ggml's layout kept: no matmul weight fits a repacked layout")
            };
        }
        for (i, (ty, layout, n)) in self.repacked.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let s = if *n == 1 { "" } else { "s" };
            write!(f, "{sep}{n} {ty} tensor{s} repacked to {layout}")?;
        }
        match (self.repack, self.tier_has_dots) {
            (Repack::Force, false) => write!(
                f,
                " (forced: the {tier} decode runs the portable group dot on them)"
            )?,
            (Repack::Force, true) => write!(f, " for the {tier} decode (forced)")?,
            _ => write!(f, " for the {tier} decode")?,
        }
        write!(f, " in {:.2} s", self.seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_weights_by_name() {
        for yes in [
            "output.weight",
            "blk.0.attn_q.weight",
            "blk.31.ffn_down.weight",
            "blk.7.attn_output.weight",
        ] {
            assert!(is_matmul_weight(yes), "{yes}");
        }
        for no in [
            "token_embd.weight",
            "output_norm.weight",
            "blk.0.attn_norm.weight",
            "blk..attn_q.weight",
            "blk.x.attn_q.weight",
            "blk.0.attn_q.bias",
            "blk.0.attn_q",
            "v.blk.0.attn_q.weight",
            "blk.0.0.attn_q.weight",
        ] {
            assert!(!is_matmul_weight(no), "{no}");
        }
    }

    #[test]
    fn summary_says_what_and_why() {
        let k = &crate::kernels::scalar::KERNELS;
        let mapped = RepackSummary::none(Repack::Auto, WeightStorage::Mapped, k);
        assert!(mapped.to_string().contains("mapped weights are never"));
        let off = RepackSummary::none(Repack::Off, WeightStorage::Memory, k);
        assert_eq!(off.to_string(), "ggml's layout kept (--no-repack)");
        let auto = RepackSummary::none(Repack::Auto, WeightStorage::Memory, k);
        assert_eq!(
            auto.to_string(),
            "ggml's layout kept: the scalar decode has no repacked dots"
        );
        let done = RepackSummary {
            repacked: vec![(GgmlType::Q4_K, WeightLayout::Q4KX8, 224)],
            tier_has_dots: true,
            tier: Tier::Avx2,
            seconds: 0.5,
            ..auto
        };
        assert_eq!(done.tensors(), 224);
        assert_eq!(
            done.to_string(),
            "224 Q4_K tensors repacked to Q4_K×8 for the avx2 decode in 0.50 s"
        );
    }
}
