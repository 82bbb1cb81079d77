//! A streaming, atomic GGUF writer.
//!
//! Metadata and tensor infos are declared first; [`GgufWriter::write_header`] lays out the data
//! section (each tensor at the next multiple of the alignment, padding bytes zero, so output is
//! deterministic) and writes the header; then each tensor's bytes are supplied in declared order,
//! in as many chunks as the caller likes. Everything goes to a temporary file next to the target,
//! renamed over it only by a successful [`GgufDataWriter::finish`]; dropping the writer earlier,
//! or any error, leaves the target untouched and no temporary file behind.

use std::collections::HashSet;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::error::GgufError;
use super::header::{MAX_ARRAY_NESTING, MetadataEntry, TensorInfo, tensor_n_bytes};
use super::value::{GgufValue, GgufValueType};
use super::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
use crate::GgmlType;

/// The GGUF version written.
pub const GGUF_WRITE_VERSION: u32 = 3;

/// ggml's `GGML_MAX_NAME` is 64 bytes including the terminating NUL; llama.cpp refuses longer
/// tensor names.
pub const MAX_TENSOR_NAME_LEN: usize = 63;

/// Collects metadata and tensor declarations; writes nothing until [`GgufWriter::write_header`].
pub struct GgufWriter {
    target: PathBuf,
    metadata: Vec<MetadataEntry>,
    keys: HashSet<String>,
    tensors: Vec<TensorInfo>,
    tensor_names: HashSet<String>,
}

impl GgufWriter {
    /// A writer that will create (or replace) the file at `target`.
    pub fn new(target: impl AsRef<Path>) -> GgufWriter {
        GgufWriter {
            target: target.as_ref().to_owned(),
            metadata: Vec::new(),
            keys: HashSet::new(),
            tensors: Vec::new(),
            tensor_names: HashSet::new(),
        }
    }

    /// Appends a metadata entry; keys are written in the order added. `general.alignment`, if
    /// given, must be a u32 power of two and sets the data alignment (default 32).
    pub fn add_metadata(
        &mut self,
        key: impl Into<String>,
        value: impl Into<GgufValue>,
    ) -> Result<(), GgufError> {
        let key = key.into();
        let value = value.into();
        if self.keys.contains(&key) {
            return Err(GgufError::DuplicateKey { key, offset: 0 });
        }
        if key == ALIGNMENT_KEY {
            match value {
                GgufValue::U32(a) if a.is_power_of_two() => {}
                GgufValue::U32(a) => {
                    return Err(GgufError::BadAlignment {
                        value: a.to_string(),
                    });
                }
                _ => {
                    return Err(GgufError::WrongValueType {
                        key,
                        expected: GgufValueType::U32,
                        found: value.value_type(),
                    });
                }
            }
        }
        if nesting_depth(&value) > MAX_ARRAY_NESTING {
            return Err(GgufError::WriterNestingTooDeep {
                key,
                limit: MAX_ARRAY_NESTING,
            });
        }
        self.keys.insert(key.clone());
        self.metadata.push(MetadataEntry { key, value });
        Ok(())
    }

    /// Declares a tensor of shape `dims` (ggml order, `dims[0]` innermost) and type `ggml_type`.
    /// Tensors are written to the data section in the order declared.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ggml_type: GgmlType,
    ) -> Result<(), GgufError> {
        let name = name.into();
        if name.len() > MAX_TENSOR_NAME_LEN {
            return Err(GgufError::TensorNameTooLong {
                len: name.len(),
                tensor: name,
                max: MAX_TENSOR_NAME_LEN,
            });
        }
        if self.tensor_names.contains(&name) {
            return Err(GgufError::DuplicateTensor { tensor: name });
        }
        if dims.len() > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                tensor: name,
                n_dims: dims.len() as u64,
                max: MAX_DIMS,
            });
        }
        let n_bytes = tensor_n_bytes(&name, dims, ggml_type)?;
        self.tensor_names.insert(name.clone());
        self.tensors.push(TensorInfo {
            name,
            dims: dims.to_vec(),
            ggml_type,
            offset: 0, // laid out by `write_header`, once the alignment is final
            n_bytes,
        });
        Ok(())
    }

    fn alignment(&self) -> u64 {
        self.metadata
            .iter()
            .find(|e| e.key == ALIGNMENT_KEY)
            .and_then(|e| e.value.as_u64())
            .unwrap_or(DEFAULT_ALIGNMENT)
    }

    /// Lays out the data section, creates the temporary file and writes the header.
    pub fn write_header(mut self) -> Result<GgufDataWriter, GgufError> {
        let alignment = self.alignment();
        let mut offset = 0u64;
        for t in &mut self.tensors {
            t.offset = offset;
            offset = t
                .n_bytes
                .checked_next_multiple_of(alignment)
                .and_then(|padded| offset.checked_add(padded))
                .ok_or_else(|| GgufError::ShapeOverflow {
                    tensor: t.name.clone(),
                    dims: t.dims.clone(),
                })?;
        }

        let mut header = Vec::new();
        header.extend_from_slice(GGUF_MAGIC);
        header.extend_from_slice(&GGUF_WRITE_VERSION.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for entry in &self.metadata {
            encode_string(&mut header, &entry.key);
            header.extend_from_slice(&entry.value.value_type().id().to_le_bytes());
            encode_value(&mut header, &entry.value);
        }
        for t in &self.tensors {
            encode_string(&mut header, &t.name);
            header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            header.extend_from_slice(&t.offset.to_le_bytes());
        }
        let padded_len = (header.len() as u64).next_multiple_of(alignment);
        header.resize(padded_len as usize, 0);

        let dir = match self.target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".llava-gguf-").suffix(".tmp");
        #[cfg(unix)]
        {
            // Tempfiles are private (0600) by default; a model file is ordinary data.
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let temp = builder
            .tempfile_in(&dir)
            .map_err(|e| GgufError::io(&dir, e))?;
        let temp_path = temp.path().to_owned();
        let mut out = BufWriter::with_capacity(1 << 20, temp);
        out.write_all(&header)
            .map_err(|e| GgufError::io(&temp_path, e))?;

        Ok(GgufDataWriter {
            target: self.target,
            temp_path,
            out,
            tensors: self.tensors,
            alignment,
            next: 0,
            current: None,
            failed: false,
        })
    }
}

/// Depth of array nesting: 0 for a scalar, 1 for an array of scalars, ...
fn nesting_depth(value: &GgufValue) -> usize {
    match value {
        GgufValue::Array(a) => 1 + a.items().iter().map(nesting_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn encode_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The value's bytes without its type id (which arrays store once for all items).
fn encode_value(out: &mut Vec<u8>, value: &GgufValue) {
    match value {
        GgufValue::U8(v) => out.push(*v),
        GgufValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::Bool(v) => out.push(u8::from(*v)),
        GgufValue::String(v) => encode_string(out, v),
        GgufValue::Array(a) => {
            out.extend_from_slice(&a.elem_type().id().to_le_bytes());
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            for item in a.items() {
                encode_value(out, item);
            }
        }
        GgufValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        GgufValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
    }
}

/// Receives the tensors' data, in declared order, after the header is written.
pub struct GgufDataWriter {
    target: PathBuf,
    temp_path: PathBuf,
    out: BufWriter<NamedTempFile>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    /// Index of the next tensor to begin.
    next: usize,
    /// The tensor being written and the bytes written to it so far.
    current: Option<(usize, u64)>,
    /// Set by any I/O error: the file's contents are then unknown and it must not be finished.
    failed: bool,
}

impl GgufDataWriter {
    /// The declared tensors, with their offsets in the data section.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Starts writing tensor `name`, which must be the next one declared. The returned writer
    /// takes the data in chunks of any size; call [`TensorWriter::finish`] after the last.
    pub fn begin_tensor(&mut self, name: &str) -> Result<TensorWriter<'_>, GgufError> {
        self.check_no_tensor_open()?;
        let Some(expected) = self.tensors.get(self.next) else {
            return Err(GgufError::UnexpectedTensor {
                tensor: name.to_owned(),
            });
        };
        if expected.name != name {
            return Err(if self.tensors.iter().any(|t| t.name == name) {
                GgufError::TensorOutOfOrder {
                    tensor: name.to_owned(),
                    expected: expected.name.clone(),
                }
            } else {
                GgufError::UnexpectedTensor {
                    tensor: name.to_owned(),
                }
            });
        }
        self.current = Some((self.next, 0));
        self.next += 1;
        Ok(TensorWriter { parent: self })
    }

    /// Writes the whole data of tensor `name` at once.
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> Result<(), GgufError> {
        let mut tensor = self.begin_tensor(name)?;
        tensor.write_chunk(data)?;
        tensor.finish()
    }

    fn check_no_tensor_open(&self) -> Result<(), GgufError> {
        match self.current {
            Some((index, written)) => Err(GgufError::TensorSizeMismatch {
                tensor: self.tensors[index].name.clone(),
                expected: self.tensors[index].n_bytes,
                written,
            }),
            None => Ok(()),
        }
    }

    /// Checks that every tensor was written in full, flushes and syncs the file, and renames it
    /// over the target.
    pub fn finish(self) -> Result<(), GgufError> {
        if self.failed {
            return Err(GgufError::WriterFailed);
        }
        self.check_no_tensor_open()?;
        if let Some(missing) = self.tensors.get(self.next) {
            return Err(GgufError::TensorNotWritten {
                tensor: missing.name.clone(),
            });
        }
        let temp_path = self.temp_path;
        let temp = self
            .out
            .into_inner()
            .map_err(|e| GgufError::io(&temp_path, e.into_error()))?;
        temp.as_file()
            .sync_all()
            .map_err(|e| GgufError::io(&temp_path, e))?;
        temp.persist(&self.target)
            .map_err(|e| GgufError::io(&self.target, e.error))?;
        Ok(())
    }
}

/// Writes one tensor's data, in chunks. Also an [`io::Write`], which refuses bytes beyond the
/// tensor's size.
pub struct TensorWriter<'a> {
    parent: &'a mut GgufDataWriter,
}

impl TensorWriter<'_> {
    fn info(&self) -> &TensorInfo {
        // `current` is set for as long as this writer exists.
        let index = self.parent.current.map_or(0, |(i, _)| i);
        &self.parent.tensors[index]
    }

    fn written(&self) -> u64 {
        self.parent.current.map_or(0, |(_, w)| w)
    }

    /// Appends `chunk` to the tensor's data.
    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), GgufError> {
        let info = self.info();
        let total = self.written() + chunk.len() as u64;
        if total > info.n_bytes {
            return Err(GgufError::TensorSizeMismatch {
                tensor: info.name.clone(),
                expected: info.n_bytes,
                written: total,
            });
        }
        if let Err(e) = self.parent.out.write_all(chunk) {
            self.parent.failed = true;
            return Err(GgufError::io(&self.parent.temp_path, e));
        }
        if let Some((_, written)) = &mut self.parent.current {
            *written = total;
        }
        Ok(())
    }

    /// Checks the tensor got exactly its size and pads the data to the alignment.
    pub fn finish(self) -> Result<(), GgufError> {
        let info = self.info();
        let written = self.written();
        if written != info.n_bytes {
            return Err(GgufError::TensorSizeMismatch {
                tensor: info.name.clone(),
                expected: info.n_bytes,
                written,
            });
        }
        let padding = written.next_multiple_of(self.parent.alignment) - written;
        let zeros = vec![0u8; padding as usize];
        if let Err(e) = self.parent.out.write_all(&zeros) {
            self.parent.failed = true;
            return Err(GgufError::io(&self.parent.temp_path, e));
        }
        self.parent.current = None;
        Ok(())
    }
}

impl Write for TensorWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_chunk(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.parent.out.flush()
    }
}
