//! The llava-quantize pipeline.

pub mod file_type;
pub mod mix;

pub use file_type::LlamaFileType;
