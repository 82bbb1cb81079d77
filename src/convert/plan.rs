//! The output plan: every tensor of both files (GGUF name, source tensor, shape, type) decided
//! and checked against the checkpoint before anything is written.

use std::collections::{BTreeMap, BTreeSet};

use super::error::ConvertError;
use super::names::{Role, classify};
use super::store::TensorStore;
use crate::GgmlType;

/// One output tensor.
#[derive(Clone, Debug)]
pub struct PlannedTensor {
    /// The GGUF name.
    pub name: String,
    /// The checkpoint tensor it comes from.
    pub source: String,
    /// The shape the config implies, PyTorch order (outermost first).
    pub shape: Vec<usize>,
    pub ty: GgmlType,
    /// Rows permuted for llama.cpp's rope with this many heads (q: heads, k: kv heads).
    pub permute_heads: Option<usize>,
}

impl PlannedTensor {
    /// ggml's order: innermost first.
    pub fn ggml_dims(&self) -> Vec<u64> {
        self.shape.iter().rev().map(|&d| d as u64).collect()
    }
}

/// The checkpoint's tensors sorted by role, and which have been claimed by the plan.
pub struct SourceIndex {
    pub text: BTreeMap<String, String>,
    pub vision: BTreeMap<String, String>,
    pub projector: BTreeMap<String, String>,
    pub lm_head: Option<String>,
    pub newline: Option<String>,
    used: BTreeSet<String>,
    /// Sources dropped on purpose (CLIP layers past the feature layer).
    dropped: BTreeSet<String>,
}

impl SourceIndex {
    pub fn new(store: &TensorStore) -> Result<SourceIndex, ConvertError> {
        let mut index = SourceIndex {
            text: BTreeMap::new(),
            vision: BTreeMap::new(),
            projector: BTreeMap::new(),
            lm_head: None,
            newline: None,
            used: BTreeSet::new(),
            dropped: BTreeSet::new(),
        };
        for name in store.names() {
            let duplicate = match classify(name) {
                Role::Text(rel) => index.text.insert(rel, name.to_owned()),
                Role::Vision(rel) => index.vision.insert(rel, name.to_owned()),
                Role::Projector(rel) => index.projector.insert(rel, name.to_owned()),
                Role::LmHead => index.lm_head.replace(name.to_owned()),
                Role::Newline => index.newline.replace(name.to_owned()),
                Role::Ignored => None,
                Role::Unknown => {
                    return Err(ConvertError::Unexpected {
                        tensor: name.to_owned(),
                        reason: "not a tensor of any LLaVA layout this converter knows".into(),
                    });
                }
            };
            if let Some(other) = duplicate {
                return Err(ConvertError::Unexpected {
                    tensor: name.to_owned(),
                    reason: format!("holds the same weight as {other}"),
                });
            }
        }
        Ok(index)
    }

    /// Claims a source tensor for the plan.
    pub fn take(&mut self, part: Part, rel: &str, hint: &str) -> Result<String, ConvertError> {
        let found = match part {
            Part::Text => self.text.get(rel),
            Part::Vision => self.vision.get(rel),
            Part::Projector => self.projector.get(rel),
        };
        match found {
            Some(name) => {
                let name = name.clone();
                self.used.insert(name.clone());
                Ok(name)
            }
            None => Err(ConvertError::MissingTensor {
                tensor: format!("{}{rel}", part.prefix()),
                hint: hint.to_owned(),
            }),
        }
    }

    pub fn mark_used(&mut self, name: &str) {
        self.used.insert(name.to_owned());
    }

    pub fn mark_dropped(&mut self, name: &str) {
        self.dropped.insert(name.to_owned());
    }

    /// Every classified tensor must be used or dropped on purpose.
    pub fn check_all_used(&self) -> Result<(), ConvertError> {
        let all = self
            .text
            .values()
            .chain(self.vision.values())
            .chain(self.projector.values())
            .chain(self.lm_head.iter())
            .chain(self.newline.iter());
        for name in all {
            if !self.used.contains(name) && !self.dropped.contains(name) {
                return Err(ConvertError::Unexpected {
                    tensor: name.clone(),
                    reason: "not used by the model the config describes (more layers than \
                             num_hidden_layers, or a module LLaVA does not have)"
                        .into(),
                });
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Part {
    Text,
    Vision,
    Projector,
}

impl Part {
    /// How missing tensors are named in errors (the llava-hf form).
    fn prefix(self) -> &'static str {
        match self {
            Part::Text => "model.language_model.",
            Part::Vision => "vision_tower.vision_model.",
            Part::Projector => "multi_modal_projector.",
        }
    }
}

/// Checks every planned tensor's source: present, a float dtype, the shape the config implies.
pub fn check_sources(store: &TensorStore, plan: &[PlannedTensor]) -> Result<(), ConvertError> {
    for p in plan {
        let src = store
            .get(&p.source)
            .ok_or_else(|| ConvertError::MissingTensor {
                tensor: p.source.clone(),
                hint: String::new(),
            })?;
        if src.dtype.decode(&[], &mut []).is_none() {
            return Err(ConvertError::Dtype {
                tensor: p.source.clone(),
                dtype: src.dtype.name().to_owned(),
            });
        }
        if src.shape != p.shape {
            return Err(ConvertError::Shape {
                tensor: p.source.clone(),
                expected: p.shape.clone(),
                found: src.shape.clone(),
            });
        }
    }
    Ok(())
}
