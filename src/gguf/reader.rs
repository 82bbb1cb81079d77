//! A GGUF file opened for reading: header parsed and validated, tensor data served as zero-copy
//! slices of its bytes, which are a memory mapping of a file, a buffer in memory, or bytes
//! compiled into the program (the embedded demo model).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap, MmapOptions};

use super::error::GgufError;
use super::header::{GgufHeader, MetadataEntry, TensorInfo};
use super::value::GgufValue;

/// Where a [`GgufFile`]'s bytes live. Every source is read the same way (a byte slice); they
/// differ in who owns the bytes and in what the OS can do with their pages.
enum FileBytes {
    /// A read-only mapping of a file (page-aligned).
    Mapped(Mmap),
    /// The file read into anonymous memory, read-only once filled (page-aligned).
    Loaded(Mmap),
    /// A buffer read or built in memory.
    Owned(Vec<u8>),
    /// Bytes in the program image (`include_bytes!`), aligned to the file's alignment.
    Static(&'static [u8]),
}

impl FileBytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(map) | FileBytes::Loaded(map) => map,
            FileBytes::Owned(bytes) => bytes,
            FileBytes::Static(bytes) => bytes,
        }
    }
}

/// What a [`GgufFile`] was read from, for messages.
enum Origin {
    Path(PathBuf),
    Memory,
    Named(&'static str),
}

/// A GGUF file: its validated header and its bytes.
pub struct GgufFile {
    bytes: FileBytes,
    header: GgufHeader,
    origin: Origin,
}

impl GgufFile {
    /// Memory-maps and parses the file at `path`. Nothing of the tensor data is read or copied.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| GgufError::io(path, e))?;
        let len = file.metadata().map_err(|e| GgufError::io(path, e))?.len();
        let bytes = if len == 0 {
            // Mapping an empty file fails on some platforms; it is simply too short to parse.
            FileBytes::Owned(Vec::new())
        } else {
            // SAFETY: the mapping is read-only and lives as long as `GgufFile`, which hands out
            // slices borrowed from it. Memory safety then relies on the file not being truncated
            // or modified by another process while open, which every mmap-based model loader
            // (llama.cpp included) assumes of model files.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| GgufError::io(path, e))?;
            FileBytes::Mapped(map)
        };
        let header = GgufHeader::parse(bytes.as_slice())?;
        Ok(GgufFile {
            bytes,
            header,
            origin: Origin::Path(path.to_owned()),
        })
    }

    /// Reads the file at `path` into anonymous memory and parses it: for weights read in full
    /// over and over, as decoding does: a 7B Q4_K_M decode ran ~8% faster (mean of 9 runs each,
    /// ±10% run to run) from such memory than from the page-cache pages of a mapping
    /// (BENCHMARKS.md, "Decode end to end, Q4_K_M"); why was not isolated. Huge-page advice
    /// gave no more and its compaction stalled loading by up to 7 s, so the pages are plain.
    /// Costs a copy at load (~2 s per 4 GB from the page cache) and the file's size in memory
    /// that cannot be paged back to the file.
    pub fn read_into_memory(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        GgufFile::read_into_memory_with(path, |_, _| Ok::<(), GgufError>(()))
    }

    /// As [`GgufFile::read_into_memory`], with `prepare` given the parsed header and the
    /// file's bytes, still writable, before they become read-only: e.g. to rearrange tensors
    /// in place ([`GgufHeader::tensor_data_mut`]). The header is parsed once, before
    /// `prepare`, and kept: `prepare` rewrites tensor data, not the header's own bytes. An error
    /// from `prepare` is returned as it is, and the memory is freed.
    pub fn read_into_memory_with<E: From<GgufError>>(
        path: impl AsRef<Path>,
        prepare: impl FnOnce(&GgufHeader, &mut [u8]) -> Result<(), E>,
    ) -> Result<GgufFile, E> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| GgufError::io(path, e))?;
        let len = file.metadata().map_err(|e| GgufError::io(path, e))?.len();
        let len = usize::try_from(len).map_err(|_| {
            GgufError::io(path, std::io::Error::from(std::io::ErrorKind::OutOfMemory))
        })?;
        let (bytes, header) = if len == 0 {
            let header = GgufHeader::parse(&[])?;
            (FileBytes::Owned(Vec::new()), header)
        } else {
            // Populated up front (Linux `MAP_POPULATE`): one pass of the kernel instead of a
            // fault per page during the read, which took 7B Q4_K_M's load from 2.8-4.5 s to
            // 1.7-2.7 s (4.08 GB from the page cache, BENCHMARKS.md).
            let mut memory = MmapOptions::new()
                .len(len)
                .populate()
                .map_anon()
                .map_err(|e| GgufError::io(path, e))?;
            file.read_exact(&mut memory)
                .map_err(|e| GgufError::io(path, e))?;
            let header = GgufHeader::parse(&memory)?;
            prepare(&header, &mut memory)?;
            let memory = memory
                .make_read_only()
                .map_err(|e| GgufError::io(path, e))?;
            (FileBytes::Loaded(memory), header)
        };
        Ok(GgufFile {
            bytes,
            header,
            origin: Origin::Path(path.to_owned()),
        })
    }

    /// Parses a GGUF file held in memory. For borrowed bytes without copying, parse with
    /// [`GgufHeader::parse`] and slice tensor data with [`GgufHeader::tensor_data`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        let header = GgufHeader::parse(&bytes)?;
        Ok(GgufFile {
            bytes: FileBytes::Owned(bytes),
            header,
            origin: Origin::Memory,
        })
    }

    /// Parses a GGUF file compiled into the program, without copying; `name` stands for it in
    /// messages. The bytes must start at a multiple of the file's alignment (`general.alignment`,
    /// 32 by default), so that every tensor's data is aligned in memory as in a mapped file
    /// (mappings are page-aligned): `include_bytes!` alone does not guarantee that, see
    /// [`crate::demo`] for a wrapper that does.
    pub fn from_static(bytes: &'static [u8], name: &'static str) -> Result<GgufFile, GgufError> {
        let header = GgufHeader::parse(bytes)?;
        let misalignment = bytes.as_ptr() as usize as u64 % header.alignment();
        if misalignment != 0 {
            return Err(GgufError::MisalignedBytes {
                alignment: header.alignment(),
                misalignment,
            });
        }
        Ok(GgufFile {
            bytes: FileBytes::Static(bytes),
            header,
            origin: Origin::Named(name),
        })
    }

    /// The path the file was opened from (`None` for in-memory and compiled-in files).
    pub fn path(&self) -> Option<&Path> {
        match &self.origin {
            Origin::Path(path) => Some(path),
            Origin::Memory | Origin::Named(_) => None,
        }
    }

    /// The file's name for messages: its path, the name given to [`GgufFile::from_static`], or
    /// `<memory>`.
    pub fn label(&self) -> String {
        match &self.origin {
            Origin::Path(path) => path.display().to_string(),
            Origin::Memory => "<memory>".to_owned(),
            Origin::Named(name) => (*name).to_owned(),
        }
    }

    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// The data of a tensor of this file: a slice of the mapping, nothing copied.
    ///
    /// # Panics
    /// If `info` comes from another file and lies outside this one.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        self.header.tensor_data(self.bytes.as_slice(), info)
    }

    /// Tells the OS that `info`'s data will not be read again soon, so its pages can leave this
    /// process's resident memory. Streaming tools (the quantizer, the converter) call it after
    /// each tensor, so their peak memory does not grow with the model. A later read of the
    /// tensor still works: the pages are read from the file again. No-op for in-memory files
    /// (those of [`GgufFile::read_into_memory`] included: their pages have no file behind them).
    pub fn release_tensor_pages(&self, info: &TensorInfo) {
        let FileBytes::Mapped(map) = &self.bytes else {
            return;
        };
        let start = self.header.data_offset().saturating_add(info.offset);
        let (Ok(start), Ok(len)) = (usize::try_from(start), usize::try_from(info.n_bytes)) else {
            return;
        };
        if start.checked_add(len).is_none_or(|end| end > map.len()) {
            return;
        }
        // SAFETY: the map is a read-only shared mapping of a file; MADV_DONTNEED only drops its
        // resident pages, and any later access faults the same bytes back in from the file, so
        // slices handed out earlier stay valid and unchanged. The range is inside the map.
        // Failure is harmless (the pages simply stay resident), hence ignored.
        let _ =
            unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) };
    }

    /// Hints that the tensor data will be read front to back once (more read-ahead).
    pub fn advise_sequential(&self) {
        if let FileBytes::Mapped(map) = &self.bytes {
            let _ = map.advise(Advice::Sequential);
        }
    }

    /// The data of tensor `name`.
    pub fn tensor_data_by_name(&self, name: &str) -> Result<&[u8], GgufError> {
        let info = self
            .header
            .tensor(name)
            .ok_or_else(|| GgufError::NoSuchTensor {
                tensor: name.to_owned(),
            })?;
        Ok(self.tensor_data(info))
    }

    pub fn version(&self) -> u32 {
        self.header.version()
    }

    pub fn alignment(&self) -> u64 {
        self.header.alignment()
    }

    pub fn data_offset(&self) -> u64 {
        self.header.data_offset()
    }

    pub fn file_size(&self) -> u64 {
        self.header.file_size()
    }

    pub fn metadata(&self) -> &[MetadataEntry] {
        self.header.metadata()
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.header.get(key)
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        self.header.tensors()
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensor(name)
    }
}
