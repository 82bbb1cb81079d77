//! llava-rs: run LLaVA vision-language models from GGUF files.
//!
//! The layers, bottom up (see ARCHITECTURE.md):
//! - [`dtype`]: ggml's tensor types and their block geometry;
//! - [`gguf`]: reading (mmap, zero-copy, validated) and writing (streaming, atomic) GGUF files;
//! - [`quant`]: ggml's block formats, bit-exact reference quantize/dequantize;
//! - [`quantize`]: the `llava-quantize` pipeline and the per-tensor type rules of the K mixes.

pub mod dtype;
pub mod gguf;
pub mod quant;
pub mod quantize;

pub use dtype::GgmlType;
