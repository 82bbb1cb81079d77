//! Test helpers: a raw GGUF byte builder, independent of llava's writer, so that tests can
//! build valid files and deliberately broken ones byte by byte.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use llava::GgmlType;
use llava::gguf::{GgufArray, GgufValue, GgufValueType, GgufWriter};

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

/// The Python interpreter for the cross-checks (`gguf`, `numpy` and the packages tools/test.sh
/// installs): `LLAVA_PYTHON`, by default `.venv/bin/python` under the crate root.
pub fn python() -> PathBuf {
    let python = std::env::var_os("LLAVA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "the Python cross-checks need an interpreter with the `gguf` and `numpy` packages, \
         and {} does not exist: run tools/test.sh (it creates .venv), or point LLAVA_PYTHON at one",
        python.display()
    );
    python
}

/// One value of every type, arrays of every element type, nested and empty arrays.
pub fn every_value() -> Vec<(&'static str, GgufValue)> {
    let nested = GgufArray::new(
        GgufValueType::Array,
        vec![
            GgufValue::from(vec![1i32, 2]),
            GgufValue::from(Vec::<i32>::new()),
            GgufValue::from(vec![3i32]),
        ],
    )
    .unwrap();
    let nested_strings = GgufArray::new(
        GgufValueType::Array,
        vec![GgufValue::from(vec!["a", "bc"]), GgufValue::from(vec![""])],
    )
    .unwrap();
    let doubly_nested =
        GgufArray::new(GgufValueType::Array, vec![GgufValue::Array(nested.clone())]).unwrap();
    vec![
        ("v.u8", GgufValue::U8(250)),
        ("v.i8", GgufValue::I8(-128)),
        ("v.u16", GgufValue::U16(65535)),
        ("v.i16", GgufValue::I16(-32768)),
        ("v.u32", GgufValue::U32(u32::MAX)),
        ("v.i32", GgufValue::I32(i32::MIN)),
        ("v.f32", GgufValue::F32(-0.1)),
        ("v.f32_inf", GgufValue::F32(f32::INFINITY)),
        ("v.f32_nan", GgufValue::F32(f32::from_bits(0x7fc0_1234))),
        ("v.bool", GgufValue::Bool(true)),
        ("v.str", GgufValue::from("tokenizer ✓ \u{0} end")),
        ("v.str_empty", GgufValue::from("")),
        ("v.u64", GgufValue::U64(u64::MAX)),
        ("v.i64", GgufValue::I64(i64::MIN)),
        ("v.f64", GgufValue::F64(1e-300)),
        ("a.u8", GgufValue::from(vec![0u8, 255])),
        ("a.i8", GgufValue::from(vec![-1i8, 1])),
        ("a.u16", GgufValue::from(vec![1u16, 2, 3])),
        ("a.i16", GgufValue::from(vec![-5i16])),
        ("a.u32", GgufValue::from(vec![7u32; 10])),
        ("a.i32", GgufValue::from(vec![-7i32, 7])),
        ("a.f32", GgufValue::from(vec![1.5f32, -0.0, 1e-40])),
        ("a.bool", GgufValue::from(vec![false, true, false])),
        ("a.str", GgufValue::from(vec!["<unk>", "<s>", "</s>", "▁a"])),
        ("a.u64", GgufValue::from(vec![u64::MAX, 0])),
        ("a.i64", GgufValue::from(vec![i64::MIN, i64::MAX])),
        ("a.f64", GgufValue::from(vec![0.25f64, -1e300])),
        ("a.empty", GgufValue::from(Vec::<f32>::new())),
        ("a.nested", GgufValue::Array(nested)),
        ("a.nested_str", GgufValue::Array(nested_strings)),
        ("a.nested2", GgufValue::Array(doubly_nested)),
    ]
}

/// (name, dims, type) of the tensors written; data is a deterministic byte pattern.
pub fn some_tensors() -> Vec<(&'static str, Vec<u64>, GgmlType)> {
    vec![
        ("f32.weight", vec![5, 3], GgmlType::F32),
        ("f16.weight", vec![7], GgmlType::F16),
        ("bf16.weight", vec![4, 1, 2], GgmlType::BF16),
        ("q8_0.weight", vec![64, 3], GgmlType::Q8_0),
        ("q4_k.weight", vec![256, 2, 1, 1], GgmlType::Q4_K),
        ("empty.weight", vec![0, 4], GgmlType::F32),
        ("scalar", vec![], GgmlType::F32),
        ("q6_k.weight", vec![512], GgmlType::Q6_K),
    ]
}

pub fn pattern(seed: usize, len: u64) -> Vec<u8> {
    (0..len as usize)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(101)) as u8)
        .collect()
}

pub fn n_bytes(dims: &[u64], t: GgmlType) -> u64 {
    t.bytes_for(dims.iter().product()).unwrap()
}

/// Writes every value and every tensor to `path`, with `alignment` if given.
pub fn write_full_file(path: &Path, alignment: Option<u32>) {
    let mut w = GgufWriter::new(path);
    w.add_metadata("general.architecture", "llama").unwrap();
    if let Some(a) = alignment {
        w.add_metadata("general.alignment", a).unwrap();
    }
    for (key, value) in every_value() {
        w.add_metadata(key, value).unwrap();
    }
    for (name, dims, t) in some_tensors() {
        w.add_tensor(name, &dims, t).unwrap();
    }
    let mut data = w.write_header().unwrap();
    for (i, (name, dims, t)) in some_tensors().into_iter().enumerate() {
        let bytes = pattern(i, n_bytes(&dims, t));
        if i % 2 == 0 {
            data.write_tensor(name, &bytes).unwrap();
        } else {
            // In uneven chunks, through io::Write.
            let mut tensor = data.begin_tensor(name).unwrap();
            for chunk in bytes.chunks(5) {
                tensor.write_all(chunk).unwrap();
            }
            tensor.finish().unwrap();
        }
    }
    data.finish().unwrap();
}
