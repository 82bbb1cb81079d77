//! llava-rs: run LLaVA vision-language models from GGUF files.
//!
//! The layers, bottom up (see ARCHITECTURE.md):
//! - [`dtype`]: ggml's tensor types and their block geometry;
//! - [`gguf`]: reading (mmap, zero-copy, validated) and writing (streaming, atomic) GGUF files;
//! - [`quant`]: ggml's block formats, bit-exact reference quantize/dequantize;
//! - [`quantize`]: the `llava-quantize` pipeline and the per-tensor type rules of the K mixes;
//! - [`bench`]: `llava bench`, throughput in the manner of `llama-bench`;
//! - [`convert`]: the `llava-convert` pipeline (Hugging Face LLaVA checkpoints → LLM + mmproj GGUF);
//! - [`npy`]: NumPy `.npy` files (dumps and reference outputs);
//! - [`ops`]: the tensor operations models are built from (norms, rope, attention, activations);
//! - [`model_file`]: typed metadata and shape-checked tensor views of a model file;
//! - [`tokenizer`]: the SentencePiece-BPE tokenizer from GGUF metadata;
//! - [`llm`]: the LLaMA-family decoder and its sessions (KV cache, tokens or embeddings in);
//! - [`prompt`], [`sampler`], [`generate`], [`chat`]: prompts of text and image embeddings,
//!   sampling, generation with stop strings, chat templates;
//! - [`vision`]: images to embeddings (decoding, exact preprocessing, CLIP, connector);
//! - `demo` (cargo feature `demo-model`, on by default): the tiny demo model compiled in.
//!
//! Reading one row of a tensor (the example in the README):
//!
//! ```no_run
//! use llava::gguf::GgufFile;
//! use llava::quant;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let file = GgufFile::open("model.gguf")?;
//! let info = file.tensor("blk.0.attn_q.weight").ok_or("no such tensor")?;
//! let bytes = file.tensor_data(info); // a view into the mmap, nothing copied
//! let row_len = info.dims[0] as usize;
//! let mut row = vec![0f32; row_len];
//! let row_bytes = quant::row_bytes(info.ggml_type, row_len)?;
//! quant::dequantize_row(info.ggml_type, &bytes[..row_bytes], &mut row)?;
//! # Ok(())
//! # }
//! ```

pub mod bench;
pub mod chat;
pub mod chat_session;
pub mod convert;
#[cfg(feature = "demo-model")]
pub mod demo;
pub mod dtype;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod llm;
pub mod model_file;
pub mod npy;
pub mod ops;
pub mod prompt;
pub mod quant;
pub mod quantize;
pub mod sampler;
pub mod tokenizer;
pub mod vision;

pub use dtype::GgmlType;
