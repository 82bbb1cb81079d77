//! Errors from reading and writing GGUF files. Messages name the key, tensor and byte offset
//! involved, so that a broken file can be diagnosed from the message alone.

use std::path::PathBuf;

use super::value::{GgufValueType, MixedArrayError};
use crate::GgmlType;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("not a GGUF file: magic bytes are {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: Vec<u8> },

    #[error(
        "GGUF version 1 is not supported (it predates 64-bit counts); re-convert the model with a \
         current llama.cpp"
    )]
    VersionOneUnsupported,

    #[error("unsupported GGUF version {version} (supported: 2 and 3)")]
    UnsupportedVersion { version: u32 },

    #[error(
        "big-endian GGUF file (version {version} stored byte-swapped); only little-endian files \
         are supported, convert it with gguf-py's gguf-convert-endian"
    )]
    BigEndian { version: u32 },

    #[error(
        "file truncated: {what} needs {needed} byte(s) at offset {offset}, but the file is \
         {file_size} bytes"
    )]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        file_size: u64,
    },

    #[error(
        "file truncated or corrupt: {what} at offset {offset} declares {count} item(s), more than \
         the {remaining} byte(s) left in the file can hold"
    )]
    CountTooLarge {
        what: String,
        offset: u64,
        count: u64,
        remaining: u64,
    },

    #[error("{what} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { what: String, offset: u64 },

    #[error("key '{key}': unknown value type id {type_id} at offset {offset}")]
    UnknownValueType {
        key: String,
        type_id: u32,
        offset: u64,
    },

    #[error("key '{key}': bool byte at offset {offset} is {byte}, expected 0 or 1")]
    InvalidBool { key: String, offset: u64, byte: u8 },

    #[error("key '{key}': arrays nested deeper than {limit} levels at offset {offset}")]
    NestingTooDeep {
        key: String,
        offset: u64,
        limit: usize,
    },

    #[error("duplicate metadata key '{key}' (second occurrence at offset {offset})")]
    DuplicateKey { key: String, offset: u64 },

    #[error("general.alignment must be a non-zero power of two that fits in u32, got {value}")]
    BadAlignment { value: String },

    #[error("tensor '{tensor}': {n_dims} dimensions, at most {max} are supported")]
    TooManyDims {
        tensor: String,
        n_dims: u64,
        max: usize,
    },

    #[error("tensor '{tensor}': shape {dims:?} has too many elements or bytes (overflows)")]
    ShapeOverflow { tensor: String, dims: Vec<u64> },

    #[error("tensor '{tensor}': unknown ggml type id {type_id} at offset {offset}")]
    UnknownTensorType {
        tensor: String,
        type_id: u32,
        offset: u64,
    },

    #[error(
        "tensor '{tensor}': type {ggml_type} stores blocks of {block_size} elements, but the \
         row length ne[0] = {ne0} is not a multiple of it"
    )]
    NotWholeBlocks {
        tensor: String,
        ggml_type: GgmlType,
        ne0: u64,
        block_size: usize,
    },

    #[error(
        "tensor '{tensor}': data at offset {offset} (+{n_bytes} bytes) lies outside the \
         {data_size}-byte data section"
    )]
    TensorOutOfBounds {
        tensor: String,
        offset: u64,
        n_bytes: u64,
        data_size: u64,
    },

    #[error(
        "tensor '{tensor}': data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    #[error(
        "the file's bytes start {misalignment} byte(s) past a multiple of its alignment \
         {alignment}, so its tensors would be misaligned in memory"
    )]
    MisalignedBytes { alignment: u64, misalignment: u64 },

    #[error("tensors '{first}' and '{second}' overlap in the data section")]
    OverlappingTensors { first: String, second: String },

    #[error("duplicate tensor name '{tensor}'")]
    DuplicateTensor { tensor: String },

    #[error("tensor '{tensor}' is not in this file")]
    NoSuchTensor { tensor: String },

    // Writer errors.
    #[error("key '{key}': {source}")]
    MixedArray {
        key: String,
        #[source]
        source: MixedArrayError,
    },

    #[error("key '{key}' must have type {expected}, got {found}")]
    WrongValueType {
        key: String,
        expected: GgufValueType,
        found: GgufValueType,
    },

    #[error("key '{key}': arrays nested deeper than {limit} levels")]
    WriterNestingTooDeep { key: String, limit: usize },

    #[error("tensor name '{tensor}' is {len} bytes long; ggml allows at most {max}")]
    TensorNameTooLong {
        tensor: String,
        len: usize,
        max: usize,
    },

    #[error("tensor '{tensor}' written out of order: expected tensor '{expected}' next")]
    TensorOutOfOrder { tensor: String, expected: String },

    #[error("tensor '{tensor}' was not declared, or every declared tensor is already written")]
    UnexpectedTensor { tensor: String },

    #[error("tensor '{tensor}': {written} byte(s) supplied, its shape and type need {expected}")]
    TensorSizeMismatch {
        tensor: String,
        expected: u64,
        written: u64,
    },

    #[error("an earlier write to this GGUF file failed; it cannot be finished")]
    WriterFailed,

    #[error("tensor '{tensor}' was never written; every declared tensor must be written")]
    TensorNotWritten { tensor: String },
}

impl GgufError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> GgufError {
        GgufError::Io {
            path: path.into(),
            source,
        }
    }
}
