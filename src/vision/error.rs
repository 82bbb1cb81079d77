//! Errors of the vision half: image files, preprocessing settings, the mmproj file.

use std::path::PathBuf;

/// Everything that can go wrong between an image file and its embeddings. Messages name the
/// file, key or tensor at fault.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("cannot read image {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image {path}: unsupported or unrecognised format ({detail})")]
    Unsupported { path: PathBuf, detail: String },
    #[error("image {path} is corrupt or truncated: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("image {path} has no pixels ({width} x {height})")]
    Empty {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    #[error(
        "image {path} is too large: {width} x {height} pixels, the limit is {max_pixels} pixels \
         and {max_side} per side (a decompression bomb?)"
    )]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        max_pixels: u64,
        max_side: u32,
    },
    #[error("invalid preprocessing settings: {0}")]
    Config(String),
    #[error("mmproj {file}: {detail}")]
    Model { file: String, detail: String },
    #[error(transparent)]
    File(#[from] crate::model_file::ModelFileError),
    #[error("vision op: {0}")]
    Op(#[from] crate::ops::OpError),
}

impl VisionError {
    /// An error about the mmproj `file`.
    pub fn model(file: &crate::gguf::GgufFile, detail: impl std::fmt::Display) -> Self {
        VisionError::Model {
            file: crate::model_file::file_label(file),
            detail: detail.to_string(),
        }
    }
}
