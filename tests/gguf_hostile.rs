//! The reader against broken and hostile files: every case gives a clear error, never a panic or
//! an out-of-bounds read.

mod common;

use common::*;
use llava::gguf::{GgufError, GgufFile, GgufHeader, MAX_ARRAY_NESTING, inspect};
use proptest::prelude::*;

fn parse(bytes: &[u8]) -> Result<GgufHeader, GgufError> {
    GgufHeader::parse(bytes)
}

fn parse_err(bytes: &[u8]) -> GgufError {
    match parse(bytes) {
        Ok(h) => panic!("expected an error, parsed: {h:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_small_valid_file_parses() {
    let bytes = small_valid_file();
    let file = GgufFile::from_bytes(bytes.clone()).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 32);
    assert_eq!(file.get("test.count").and_then(|v| v.as_u32()), Some(7));
    let b = file.tensor("b").unwrap();
    assert_eq!(b.dims, vec![2, 2]);
    assert_eq!(b.n_bytes, 16);
    let data_offset = file.data_offset() as usize;
    assert_eq!(data_offset % 32, 0);
    assert_eq!(
        file.tensor_data(b),
        &bytes[data_offset + 32..data_offset + 48]
    );
}

/// `bytes` copied into a leaked buffer, starting `misalign` bytes past a multiple of 32.
fn leaked_at(bytes: &[u8], misalign: usize) -> &'static [u8] {
    let buf = Box::leak(vec![0u8; bytes.len() + 64].into_boxed_slice());
    let at = buf.as_ptr().align_offset(32) + misalign;
    buf[at..at + bytes.len()].copy_from_slice(bytes);
    &buf[at..at + bytes.len()]
}

#[test]
fn static_bytes_are_served_in_place_and_must_keep_the_alignment() {
    let bytes = small_valid_file();
    let aligned = leaked_at(&bytes, 0);
    let file = GgufFile::from_static(aligned, "<test>").unwrap();
    assert_eq!(file.bytes().as_ptr(), aligned.as_ptr(), "not copied");
    assert_eq!((file.label().as_str(), file.path()), ("<test>", None));
    let b = file.tensor("b").unwrap();
    assert_eq!(file.tensor_data(b).as_ptr() as usize % 32, 0);
    for misalign in [1, 16] {
        let e = GgufFile::from_static(leaked_at(&bytes, misalign), "<test>")
            .err()
            .expect("misaligned bytes accepted");
        assert!(
            matches!(e, GgufError::MisalignedBytes { alignment: 32, misalignment } if misalignment == misalign as u64),
            "{e}"
        );
    }
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    let bytes = small_valid_file();
    for len in 0..bytes.len() {
        let result = parse(&bytes[..len]);
        assert!(result.is_err(), "file cut to {len} bytes parsed");
    }
    // The message says what was cut off and where.
    // Cut inside the value of the second key (24-byte header, 45-byte first entry, 18-byte key,
    // 4-byte type).
    let msg = parse_err(&bytes[..24 + 45 + 18 + 4 + 2]).to_string();
    assert!(
        msg.contains("truncated") && msg.contains("'test.count'"),
        "{msg}"
    );
    let msg = parse_err(&bytes[..bytes.len() - 1]).to_string();
    assert!(msg.contains("tensor 'b'"), "{msg}");
}

#[test]
fn bad_magic() {
    let mut bytes = small_valid_file();
    bytes[3] = b'X';
    assert!(matches!(parse_err(&bytes), GgufError::BadMagic { .. }));
    assert!(parse_err(&bytes).to_string().contains("not a GGUF file"));
}

#[test]
fn versions() {
    let with_version = |v: u32| {
        let mut bytes = small_valid_file();
        bytes[4..8].copy_from_slice(&v.to_le_bytes());
        bytes
    };
    // v2 has the same layout as v3 for little-endian files.
    assert_eq!(parse(&with_version(2)).unwrap().version(), 2);
    assert!(matches!(
        parse_err(&with_version(1)),
        GgufError::VersionOneUnsupported
    ));
    assert!(matches!(
        parse_err(&with_version(4)),
        GgufError::UnsupportedVersion { version: 4 }
    ));
    let err = parse_err(&with_version(3u32.swap_bytes()));
    assert!(matches!(err, GgufError::BigEndian { version: 3 }), "{err}");
    assert!(err.to_string().contains("big-endian"));
}

#[test]
fn counts_larger_than_the_file_are_refused_before_allocating() {
    let mut b = RawGguf::header(3, 0, u64::MAX);
    b.kv_u32("k", 1);
    assert!(matches!(
        parse_err(&b.bytes()),
        GgufError::CountTooLarge {
            count: u64::MAX,
            ..
        }
    ));

    let mut b = RawGguf::header(3, u64::MAX / 2, 0);
    b.pad_to(64);
    let err = parse_err(&b.bytes());
    assert!(matches!(err, GgufError::CountTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("tensor count"));

    let mut b = RawGguf::header(3, 0, 1);
    b.string("big.array")
        .u32(TYPE_ARRAY)
        .u32(TYPE_U32)
        .u64(1 << 60)
        .u32(0);
    let err = parse_err(&b.bytes());
    assert!(matches!(err, GgufError::CountTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("big.array"), "{err}");

    // A string length beyond the file.
    let mut b = RawGguf::header(3, 0, 1);
    b.string("s").u32(TYPE_STRING).u64(u64::MAX).raw(b"abc");
    let err = parse_err(&b.bytes());
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("'s'"), "{err}");
}

#[test]
fn unknown_value_types() {
    let mut b = RawGguf::header(3, 0, 1);
    b.string("weird").u32(13).u32(0);
    let err = parse_err(&b.bytes());
    assert!(
        matches!(
            err,
            GgufError::UnknownValueType {
                type_id: 13,
                offset: 37,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("weird"));

    let mut b = RawGguf::header(3, 0, 1);
    b.string("weird.array")
        .u32(TYPE_ARRAY)
        .u32(99)
        .u64(1)
        .u32(0);
    assert!(matches!(
        parse_err(&b.bytes()),
        GgufError::UnknownValueType { type_id: 99, .. }
    ));
}

#[test]
fn invalid_bool() {
    let mut b = RawGguf::header(3, 0, 1);
    b.string("flag").u32(TYPE_BOOL).u8(2);
    assert!(matches!(
        parse_err(&b.bytes()),
        GgufError::InvalidBool { byte: 2, .. }
    ));
}

#[test]
fn duplicate_keys_and_tensor_names() {
    let mut b = RawGguf::header(3, 0, 2);
    b.kv_u32("k", 1).kv_u32("k", 2);
    let err = parse_err(&b.bytes());
    assert!(
        matches!(&err, GgufError::DuplicateKey { key, .. } if key == "k"),
        "{err}"
    );

    let mut b = RawGguf::header(3, 2, 0);
    b.tensor_info("t", &[8], GGML_F32, 0)
        .tensor_info("t", &[8], GGML_F32, 32)
        .pad_to(32)
        .raw(&[0; 64]);
    let err = parse_err(&b.bytes());
    assert!(
        matches!(&err, GgufError::DuplicateTensor { tensor } if tensor == "t"),
        "{err}"
    );
}

#[test]
fn invalid_utf8() {
    let mut b = RawGguf::header(3, 0, 1);
    b.raw_string(&[0x66, 0xff]).u32(TYPE_U32).u32(1);
    assert!(matches!(
        parse_err(&b.bytes()),
        GgufError::InvalidUtf8 { offset: 32, .. }
    ));

    let mut b = RawGguf::header(3, 0, 1);
    b.string("s").u32(TYPE_STRING).raw_string(&[0xc3, 0x28]);
    let err = parse_err(&b.bytes());
    assert!(matches!(err, GgufError::InvalidUtf8 { .. }), "{err}");
    assert!(err.to_string().contains("'s'"), "{err}");

    let mut b = RawGguf::header(3, 1, 0);
    b.raw_string(&[0x80])
        .u32(1)
        .u64(8)
        .u32(GGML_F32)
        .u64(0)
        .pad_to(32)
        .raw(&[0; 32]);
    assert!(matches!(
        parse_err(&b.bytes()),
        GgufError::InvalidUtf8 { .. }
    ));
}

/// A key holding `depth` arrays nested in each other, the innermost holding one u8.
fn nested_array_file(depth: usize) -> Vec<u8> {
    let mut b = RawGguf::header(3, 0, 1);
    b.string("nested").u32(TYPE_ARRAY);
    for _ in 1..depth {
        b.u32(TYPE_ARRAY).u64(1);
    }
    b.u32(TYPE_U8).u64(1).u8(5);
    b.bytes()
}

#[test]
fn nesting_limit() {
    let header = parse(&nested_array_file(MAX_ARRAY_NESTING)).unwrap();
    let mut value = header.get("nested").unwrap();
    for _ in 1..MAX_ARRAY_NESTING {
        value = &value.as_array().unwrap().items()[0];
    }
    assert_eq!(value.as_u32_array(), Some(vec![5]));

    let err = parse_err(&nested_array_file(MAX_ARRAY_NESTING + 1));
    assert!(matches!(err, GgufError::NestingTooDeep { .. }), "{err}");
    // Far deeper than the limit: refused, not a stack overflow.
    assert!(matches!(
        parse_err(&nested_array_file(100_000)),
        GgufError::NestingTooDeep { .. }
    ));
}

#[test]
fn alignment_must_be_a_power_of_two() {
    for bad in [0u32, 3, 48] {
        let mut b = RawGguf::header(3, 0, 1);
        b.kv_u32("general.alignment", bad);
        let err = parse_err(&b.bytes());
        assert!(
            matches!(err, GgufError::BadAlignment { .. }),
            "{bad}: {err}"
        );
    }
    let mut b = RawGguf::header(3, 0, 1);
    b.kv_string("general.alignment", "32");
    assert!(matches!(
        parse_err(&b.bytes()),
        GgufError::BadAlignment { .. }
    ));
}

#[test]
fn alignment_is_honoured() {
    let mut b = RawGguf::header(3, 1, 1);
    b.kv_u32("general.alignment", 256)
        .tensor_info("t", &[4], GGML_F32, 0)
        .pad_to(256);
    let data_offset = b.0.len();
    b.raw(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    let file = GgufFile::from_bytes(b.bytes()).unwrap();
    assert_eq!(file.alignment(), 256);
    assert_eq!(file.data_offset(), data_offset as u64);
    assert_eq!(file.tensor_data(&file.tensors()[0])[0], 1);

    // The same tensor at offset 32, a multiple of the default alignment but not of 256.
    let mut b = RawGguf::header(3, 1, 1);
    b.kv_u32("general.alignment", 256)
        .tensor_info("t", &[4], GGML_F32, 32)
        .pad_to(256)
        .raw(&[0; 64]);
    assert!(matches!(
        parse_err(&b.bytes()),
        GgufError::MisalignedTensor {
            offset: 32,
            alignment: 256,
            ..
        }
    ));
}

/// A file with one tensor `t` of `dims` and `type_id` at `offset`, followed by `data_len` bytes.
fn one_tensor_file(dims: &[u64], type_id: u32, offset: u64, data_len: usize) -> Vec<u8> {
    let mut b = RawGguf::header(3, 1, 0);
    b.tensor_info("t", dims, type_id, offset).pad_to(32);
    b.raw(&vec![0; data_len]);
    b.bytes()
}

#[test]
fn tensor_shapes() {
    let err = parse_err(&one_tensor_file(&[1, 1, 1, 1, 1], GGML_F32, 0, 4));
    assert!(
        matches!(err, GgufError::TooManyDims { n_dims: 5, .. }),
        "{err}"
    );

    // Too many dims is caught before reading them: no allocation from a huge n_dims.
    let mut b = RawGguf::header(3, 1, 0);
    b.string("t").u32(u32::MAX).raw(&[0; 64]);
    assert!(matches!(
        parse_err(&b.bytes()),
        GgufError::TooManyDims { .. }
    ));

    let err = parse_err(&one_tensor_file(&[1 << 32, 1 << 32, 2], GGML_F32, 0, 0));
    assert!(matches!(err, GgufError::ShapeOverflow { .. }), "{err}");
    // Element count fits u64 but not ggml's i64.
    let err = parse_err(&one_tensor_file(&[1 << 32, 1 << 31], GGML_F32, 0, 0));
    assert!(matches!(err, GgufError::ShapeOverflow { .. }), "{err}");
    // Element count fits, byte count does not.
    let err = parse_err(&one_tensor_file(&[1 << 62], GGML_F32, 0, 0));
    assert!(matches!(err, GgufError::ShapeOverflow { .. }), "{err}");

    let err = parse_err(&one_tensor_file(&[100, 2], GGML_Q4_K, 0, 1024));
    assert!(
        matches!(
            err,
            GgufError::NotWholeBlocks {
                ne0: 100,
                block_size: 256,
                ..
            }
        ),
        "{err}"
    );

    let err = parse_err(&one_tensor_file(&[8], 4, 0, 32));
    assert!(
        matches!(err, GgufError::UnknownTensorType { type_id: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("'t'"));

    // Zero dimensions: a scalar. A zero-sized dimension: no data at all.
    let header = parse(&one_tensor_file(&[], GGML_F32, 0, 4)).unwrap();
    assert_eq!(header.tensors()[0].n_bytes, 4);
    let header = parse(&one_tensor_file(&[0, 3], GGML_F32, 0, 0)).unwrap();
    assert_eq!(header.tensors()[0].n_bytes, 0);
}

#[test]
fn tensor_placement() {
    // 8 f32 = 32 bytes of data needed, 31 present.
    let err = parse_err(&one_tensor_file(&[8], GGML_F32, 0, 31));
    assert!(
        matches!(
            err,
            GgufError::TensorOutOfBounds {
                n_bytes: 32,
                data_size: 31,
                ..
            }
        ),
        "{err}"
    );
    // Offset + size overflows u64.
    let err = parse_err(&one_tensor_file(&[8], GGML_F32, u64::MAX - 31, 64));
    assert!(matches!(err, GgufError::TensorOutOfBounds { .. }), "{err}");

    let err = parse_err(&one_tensor_file(&[8], GGML_F32, 4, 64));
    assert!(
        matches!(err, GgufError::MisalignedTensor { offset: 4, .. }),
        "{err}"
    );

    let mut b = RawGguf::header(3, 2, 0);
    b.tensor_info("first", &[16], GGML_F32, 0)
        .tensor_info("second", &[16], GGML_F32, 32)
        .pad_to(32)
        .raw(&[0; 96]);
    let err = parse_err(&b.bytes());
    assert!(
        matches!(&err, GgufError::OverlappingTensors { first, second } if first == "first" && second == "second"),
        "{err}"
    );
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = GgufFile::open("/nonexistent/model.gguf").err().unwrap();
    assert!(matches!(err, GgufError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");
}

/// Parsing must not panic; what parses must be fully usable.
fn parse_and_use(bytes: Vec<u8>) {
    if let Ok(file) = GgufFile::from_bytes(bytes) {
        for t in file.tensors() {
            assert_eq!(file.tensor_data(t).len() as u64, t.n_bytes);
        }
        let _ = inspect::render_text(file.header(), false);
        let _ = inspect::render_json(file.header());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_mutations_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = small_valid_file();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        parse_and_use(bytes);
    }
}
