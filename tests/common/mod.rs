//! Test helpers: a raw GGUF byte builder, independent of llava's writer, so that tests can
//! build valid files and deliberately broken ones byte by byte.
#![allow(dead_code)]

use std::path::PathBuf;

/// Appends little-endian GGUF primitives to a byte vector.
#[derive(Default, Clone)]
pub struct RawGguf(pub Vec<u8>);

pub const TYPE_U8: u32 = 0;
pub const TYPE_U32: u32 = 4;
pub const TYPE_BOOL: u32 = 7;
pub const TYPE_STRING: u32 = 8;
pub const TYPE_ARRAY: u32 = 9;
pub const TYPE_U64: u32 = 10;

pub const GGML_F32: u32 = 0;
pub const GGML_Q4_K: u32 = 12;

impl RawGguf {
    /// Magic, version, tensor count and key/value count.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> RawGguf {
        let mut b = RawGguf::default();
        b.raw(b"GGUF").u32(version).u64(n_tensors).u64(n_kv);
        b
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    pub fn string(&mut self, s: &str) -> &mut Self {
        self.raw_string(s.as_bytes())
    }

    /// A string of arbitrary (possibly invalid UTF-8) bytes.
    pub fn raw_string(&mut self, bytes: &[u8]) -> &mut Self {
        self.u64(bytes.len() as u64).raw(bytes)
    }

    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.string(key).u32(TYPE_U32).u32(v)
    }

    pub fn kv_string(&mut self, key: &str, v: &str) -> &mut Self {
        self.string(key).u32(TYPE_STRING).string(v)
    }

    pub fn tensor_info(
        &mut self,
        name: &str,
        dims: &[u64],
        type_id: u32,
        offset: u64,
    ) -> &mut Self {
        self.string(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(type_id).u64(offset)
    }

    /// Zero bytes up to the next multiple of `alignment`.
    pub fn pad_to(&mut self, alignment: usize) -> &mut Self {
        let len = self.0.len().next_multiple_of(alignment);
        self.0.resize(len, 0);
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.0.clone()
    }
}

/// A valid file: one string key, one u32 key, and two F32 tensors (8 and 4 elements) whose data
/// is the bytes 0, 1, 2, ... The last tensor ends exactly at the end of the file.
pub fn small_valid_file() -> Vec<u8> {
    let mut b = RawGguf::header(3, 2, 2);
    b.kv_string("general.architecture", "llama")
        .kv_u32("test.count", 7)
        .tensor_info("a", &[8], GGML_F32, 0)
        .tensor_info("b", &[2, 2], GGML_F32, 32)
        .pad_to(32);
    for i in 0..48u8 {
        b.u8(i);
    }
    b.bytes()
}

/// A fresh, empty temporary directory.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("creating a temporary directory")
}

/// The crate root.
pub fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
