//! `ConvertError`: every way a conversion can fail, each naming the file, key or tensor.

use std::path::PathBuf;

use thiserror::Error;

use crate::gguf::GgufError;
use crate::quant::QuantError;

#[derive(Debug, Error)]
pub enum ConvertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A malformed input file (safetensors header, JSON, zip, pickle, protobuf).
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    /// A configuration key that is missing, of the wrong type or out of range.
    #[error("{path}: key `{key}`: {reason}")]
    Config {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{path}: unknown architecture {arch:?}: expected one of {expected}")]
    UnknownArchitecture {
        path: PathBuf,
        arch: String,
        expected: &'static str,
    },
    #[error(
        "no weights in {dir}: expected model.safetensors, *.safetensors, a .safetensors or .bin index, or pytorch_model.bin"
    )]
    NoWeights { dir: PathBuf },
    #[error("{index}: shard {shard} (holding {tensor}) is missing")]
    MissingShard {
        index: PathBuf,
        shard: PathBuf,
        tensor: String,
    },
    #[error("tensor {tensor} is missing from the checkpoint{hint}")]
    MissingTensor { tensor: String, hint: String },
    #[error(
        "tensor {tensor}: shape {found:?} disagrees with the config, which implies {expected:?}"
    )]
    Shape {
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor {tensor}: dtype {dtype} cannot be converted (expected F32, F16, BF16 or F64)")]
    Dtype { tensor: String, dtype: String },
    #[error("tensor {tensor}: element {index} is {value} (NaN or infinite weights are refused)")]
    NonFinite {
        tensor: String,
        index: usize,
        value: f32,
    },
    #[error("tensor {tensor}: element {index} = {value} overflows {to}")]
    Overflow {
        tensor: String,
        index: usize,
        value: f32,
        to: &'static str,
    },
    #[error("checkpoint tensor {tensor}: {reason}")]
    Unexpected { tensor: String, reason: String },
    #[error("tokenizer {path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("tensor {tensor}: {source}")]
    Quant { tensor: String, source: QuantError },
    #[error(transparent)]
    Gguf(#[from] GgufError),
}

impl ConvertError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ConvertError {
        ConvertError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> ConvertError {
        ConvertError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
