//! The checkpoint as a set of named tensors, each a view into a memory-mapped file.
//!
//! Both readers (safetensors and PyTorch zip) produce [`SourceTensor`]s: a dtype, a shape in
//! PyTorch order (outermost first, row-major contiguous) and a byte range in one of the store's
//! maps. Nothing is read until the converter asks for a tensor's bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::error::ConvertError;

/// Element types of checkpoint tensors. Only the float types can be converted; the others are
/// known so that headers listing them (position ids, masks) are still valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrcDtype {
    F64,
    F32,
    F16,
    BF16,
    /// Any other type, with its size in bytes and its name.
    Other(usize, &'static str),
}

impl SrcDtype {
    pub fn size(self) -> usize {
        match self {
            SrcDtype::F64 => 8,
            SrcDtype::F32 => 4,
            SrcDtype::F16 | SrcDtype::BF16 => 2,
            SrcDtype::Other(size, _) => size,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SrcDtype::F64 => "F64",
            SrcDtype::F32 => "F32",
            SrcDtype::F16 => "F16",
            SrcDtype::BF16 => "BF16",
            SrcDtype::Other(_, name) => name,
        }
    }

    /// Decodes `bytes` (little-endian elements of this type) into `out`; None for non-float types.
    pub fn decode(self, bytes: &[u8], out: &mut [f32]) -> Option<()> {
        match self {
            SrcDtype::F32 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            SrcDtype::F16 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
                }
            }
            SrcDtype::BF16 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = crate::quant::bf16_to_f32(u16::from_le_bytes([c[0], c[1]]));
                }
            }
            SrcDtype::F64 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    *o = f64::from_le_bytes(b) as f32;
                }
            }
            SrcDtype::Other(..) => return None,
        }
        Some(())
    }
}

/// One tensor of the checkpoint.
#[derive(Clone, Debug)]
pub struct SourceTensor {
    pub dtype: SrcDtype,
    /// PyTorch order: outermost dimension first.
    pub shape: Vec<usize>,
    /// Index of the map holding the data.
    pub file: usize,
    /// Byte range in that map (already checked to lie inside it).
    pub start: usize,
    pub len: usize,
}

impl SourceTensor {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Memory-mapped checkpoint files and the tensors they hold.
#[derive(Default)]
pub struct TensorStore {
    files: Vec<(PathBuf, Mmap)>,
    tensors: BTreeMap<String, SourceTensor>,
}

impl TensorStore {
    /// Maps `path` read-only and returns its index for [`TensorStore::insert`].
    pub fn map_file(&mut self, path: &Path) -> Result<usize, ConvertError> {
        let file = File::open(path).map_err(|e| ConvertError::io(path, e))?;
        // SAFETY: the map is read-only and private to this process; checkpoint files are not
        // expected to change while converting (as with every mmap-based model loader). All
        // accesses are bounds-checked slices.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| ConvertError::io(path, e))?;
        self.files.push((path.to_owned(), map));
        Ok(self.files.len() - 1)
    }

    pub fn bytes(&self, file: usize) -> &[u8] {
        &self.files[file].1
    }

    pub fn path(&self, file: usize) -> &Path {
        &self.files[file].0
    }

    /// Adds a tensor; a name seen before is an error naming both files.
    pub fn insert(&mut self, name: String, tensor: SourceTensor) -> Result<(), ConvertError> {
        if let Some(old) = self.tensors.get(&name) {
            return Err(ConvertError::format(
                self.path(tensor.file),
                format!("tensor {name} is also in {}", self.path(old.file).display()),
            ));
        }
        self.tensors.insert(name, tensor);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&SourceTensor> {
        self.tensors.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn data(&self, tensor: &SourceTensor) -> &[u8] {
        &self.bytes(tensor.file)[tensor.start..tensor.start + tensor.len]
    }

    /// A whole tensor decoded to f32 (for tools and tests; the converter streams rows instead).
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>, ConvertError> {
        let t = self.get(name).ok_or_else(|| ConvertError::MissingTensor {
            tensor: name.to_owned(),
            hint: String::new(),
        })?;
        let mut out = vec![0f32; t.n_elements()];
        t.dtype
            .decode(self.data(t), &mut out)
            .ok_or_else(|| ConvertError::Dtype {
                tensor: name.to_owned(),
                dtype: t.dtype.name().to_owned(),
            })?;
        Ok(out)
    }

    /// Drops `tensor`'s pages from this process's resident memory once converted, so that the
    /// converter's footprint does not grow with the model. A later read still works.
    pub fn release(&self, tensor: &SourceTensor) {
        let map = &self.files[tensor.file].1;
        // SAFETY: the map is a read-only mapping of a file; MADV_DONTNEED only drops its resident
        // pages, and any later access faults the same bytes back in from the file, so slices
        // handed out earlier stay valid and unchanged. The range was checked to lie inside the
        // map when the tensor was added. Failure is harmless (the pages stay), hence ignored.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, tensor.start, tensor.len)
        };
    }

    /// Advises the kernel that pages of all maps will be read sequentially.
    pub fn advise_sequential(&self) {
        for (_, map) in &self.files {
            let _ = map.advise(memmap2::Advice::Sequential);
        }
    }

    /// Moves all of `other`'s files and tensors into this store, renaming each tensor with
    /// `rename` (tensors for which it returns None are dropped).
    pub fn absorb(
        &mut self,
        other: TensorStore,
        rename: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConvertError> {
        let base = self.files.len();
        self.files.extend(other.files);
        for (name, mut t) in other.tensors {
            if let Some(new_name) = rename(&name) {
                t.file += base;
                self.insert(new_name, t)?;
            }
        }
        Ok(())
    }
}
