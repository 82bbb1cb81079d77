//! The connector from CLIP features to the language model's embedding space: LLaVA's
//! `mlp2x_gelu` (`mm.0`, GELU with erf, `mm.2`; transformers' `LlavaMultiModalProjector` with
//! `projector_hidden_act = gelu`) or a single linear layer (`mm.0`).

use crate::gguf::GgufFile;
use crate::kernels::Kernels;
use crate::model_file::{self, ModelFileError, optional_vector_f32};
use crate::ops::{gelu_in_place, linear};

use super::error::VisionError;
use super::hparams::Projector;
use super::weights::WeightRef;

pub struct Connector {
    first: (WeightRef, Option<Vec<f32>>),
    second: Option<(WeightRef, Option<Vec<f32>>)>,
    /// The language model's embedding size.
    pub n_embd: usize,
    /// The input size (CLIP's hidden size times the feature layers).
    pub n_in: usize,
}

fn layer(
    file: &GgufFile,
    name: &str,
    rows: usize,
    k: usize,
) -> Result<(WeightRef, Option<Vec<f32>>), ModelFileError> {
    let w = WeightRef::matrix(file, &format!("{name}.weight"), rows, k)?;
    let b = optional_vector_f32(file, &format!("{name}.bias"), rows)?;
    Ok((w, b))
}

impl Connector {
    /// Reads the connector; its output size comes from `mm.0.weight`'s shape.
    pub fn load(
        file: &GgufFile,
        projector: Projector,
        n_in: usize,
    ) -> Result<Self, ModelFileError> {
        let info = file
            .tensor("mm.0.weight")
            .ok_or_else(|| ModelFileError::MissingTensor {
                file: model_file::file_label(file),
                name: "mm.0.weight".into(),
            })?;
        let n_embd = info.dims.get(1).copied().unwrap_or(0) as usize;
        if n_embd == 0 {
            return Err(model_file::invalid(
                file,
                format!("tensor `mm.0.weight` has shape {:?}", info.dims),
            ));
        }
        let first = layer(file, "mm.0", n_embd, n_in)?;
        let second = match projector {
            Projector::Mlp2xGelu => Some(layer(file, "mm.2", n_embd, n_embd)?),
            Projector::Linear => None,
        };
        Ok(Self {
            first,
            second,
            n_embd,
            n_in,
        })
    }

    /// Projects feature rows [n × n_in] to embeddings [n × n_embd].
    pub fn forward(
        &self,
        file: &GgufFile,
        kernels: &Kernels,
        x: &[f32],
    ) -> Result<Vec<f32>, VisionError> {
        let view = |m: &WeightRef| m.view(file).map_err(|e| VisionError::model(file, e));
        let mut h = linear(kernels, &view(&self.first.0)?, self.first.1.as_deref(), x)?;
        if let Some((w, b)) = &self.second {
            gelu_in_place(&mut h);
            h = linear(kernels, &view(w)?, b.as_deref(), &h)?;
        }
        Ok(h)
    }
}
