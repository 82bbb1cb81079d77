//! Why a quantization failed.

use thiserror::Error;

use super::mix::MixError;
use crate::dtype::GgmlType;
use crate::gguf::GgufError;
use crate::quant::QuantError;

#[derive(Debug, Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The input is not a valid GGUF file.
    #[error("{path}: {source}")]
    Input {
        path: std::path::PathBuf,
        #[source]
        source: GgufError,
    },
    #[error(transparent)]
    Mix(#[from] MixError),
    #[error("metadata key {key} is missing")]
    MissingKey { key: String },
    #[error("metadata key {key} is not {expected}")]
    BadKey { key: String, expected: &'static str },
    #[error(
        "split GGUF files are not supported ({count} parts); merge them first with \
         llama-gguf-split --merge"
    )]
    SplitFile { count: u64 },
    #[error(
        "tensor {tensor} is already quantized ({ty}); requantizing loses quality, pass \
         --allow-requantize to do it anyway"
    )]
    RequantizeRefused { tensor: String, ty: GgmlType },
    #[error("tensor {tensor}: type {ty} cannot be converted (llava-rs has no block format for it)")]
    UnsupportedType { tensor: String, ty: GgmlType },
    #[error("tensor {tensor}: {source}")]
    Quant {
        tensor: String,
        #[source]
        source: QuantError,
    },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start {threads} worker threads: {reason}")]
    ThreadPool { threads: usize, reason: String },
}
