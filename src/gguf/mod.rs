//! GGUF files: reading (memory-mapped, zero-copy, validated against hostile input), writing
//! (streaming, atomic, deterministic) and inspecting. See docs/gguf.md.

mod cursor;
mod error;
mod header;
pub mod inspect;
mod reader;
mod value;
mod writer;

pub use error::GgufError;
pub use header::{GgufHeader, MAX_ARRAY_NESTING, MetadataEntry, TensorInfo};
pub use reader::GgufFile;
pub use value::{GgufArray, GgufValue, GgufValueType, MixedArrayError};
pub use writer::{
    GGUF_WRITE_VERSION, GgufDataWriter, GgufWriter, MAX_TENSOR_NAME_LEN, TensorWriter,
};

/// The first four bytes of every GGUF file.
pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Metadata key that sets the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// Alignment used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;
