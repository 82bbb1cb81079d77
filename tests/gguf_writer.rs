//! The writer: round trips through our reader, byte layout against an independent encoding,
//! atomicity, determinism, and refusal of what llama.cpp could not read.

mod common;

use std::path::Path;

use common::*;
use llava::GgmlType;
use llava::gguf::{GgufArray, GgufError, GgufFile, GgufValue, GgufValueType, GgufWriter};
use proptest::prelude::*;

fn same_value(a: &GgufValue, b: &GgufValue) -> bool {
    // Bitwise for floats (-0.0, denormals); everything else by value.
    match (a, b) {
        (GgufValue::F32(x), GgufValue::F32(y)) => x.to_bits() == y.to_bits(),
        (GgufValue::F64(x), GgufValue::F64(y)) => x.to_bits() == y.to_bits(),
        (GgufValue::Array(x), GgufValue::Array(y)) => {
            x.elem_type() == y.elem_type()
                && x.len() == y.len()
                && x.items()
                    .iter()
                    .zip(y.items())
                    .all(|(p, q)| same_value(p, q))
        }
        _ => a == b,
    }
}

#[test]
fn round_trip_every_value_type_and_several_tensor_types_and_alignments() {
    let dir = temp_dir();
    for alignment in [None, Some(1), Some(8), Some(64), Some(4096)] {
        let path = dir.path().join(format!("m{alignment:?}.gguf"));
        write_full_file(&path, alignment);
        let file = GgufFile::open(&path).unwrap();
        let expected_alignment = alignment.map_or(32, u64::from);
        assert_eq!(file.version(), 3);
        assert_eq!(file.alignment(), expected_alignment);
        assert_eq!(file.data_offset() % expected_alignment, 0);

        let mut expected = vec![("general.architecture".to_owned(), GgufValue::from("llama"))];
        if let Some(a) = alignment {
            expected.push(("general.alignment".to_owned(), GgufValue::U32(a)));
        }
        expected.extend(every_value().into_iter().map(|(k, v)| (k.to_owned(), v)));
        assert_eq!(file.metadata().len(), expected.len());
        for (entry, (key, value)) in file.metadata().iter().zip(&expected) {
            assert_eq!(&entry.key, key);
            assert!(
                same_value(&entry.value, value),
                "{key}: {:?} != {value:?}",
                entry.value
            );
        }

        assert_eq!(file.tensors().len(), some_tensors().len());
        let mut covered = vec![false; file.file_size() as usize];
        for (i, (info, (name, dims, t))) in file.tensors().iter().zip(some_tensors()).enumerate() {
            assert_eq!(info.name, name);
            assert_eq!(info.dims, dims);
            assert_eq!(info.ggml_type, t);
            assert_eq!(info.n_bytes, n_bytes(&dims, t));
            assert_eq!(info.offset % expected_alignment, 0);
            assert_eq!(file.tensor_data(info), pattern(i, info.n_bytes).as_slice());
            let start = (file.data_offset() + info.offset) as usize;
            covered[start..start + info.n_bytes as usize].fill(true);
        }
        // Everything in the data section outside tensor data is zero padding, and the file ends
        // at the last tensor's padded end.
        let data = &file.bytes()[file.data_offset() as usize..];
        let uncovered = &covered[file.data_offset() as usize..];
        assert!(data.iter().zip(uncovered).all(|(&b, &c)| c || b == 0));
        assert_eq!(file.file_size() % expected_alignment, 0);
    }
}

#[test]
fn writes_byte_for_byte_what_an_independent_encoder_writes() {
    let dir = temp_dir();
    let path = dir.path().join("small.gguf");
    let mut w = GgufWriter::new(&path);
    w.add_metadata("general.architecture", "llama").unwrap();
    w.add_metadata("test.count", 7u32).unwrap();
    w.add_tensor("a", &[8], GgmlType::F32).unwrap();
    w.add_tensor("b", &[2, 2], GgmlType::F32).unwrap();
    let mut data = w.write_header().unwrap();
    let bytes: Vec<u8> = (0..48).collect();
    data.write_tensor("a", &bytes[..32]).unwrap();
    data.write_tensor("b", &bytes[32..]).unwrap();
    data.finish().unwrap();
    // small_valid_file's last tensor is 16 bytes, which the writer pads to 32.
    let mut expected = small_valid_file();
    expected.resize(expected.len() + 16, 0);
    assert_eq!(std::fs::read(&path).unwrap(), expected);
}

#[test]
fn output_is_deterministic() {
    let dir = temp_dir();
    let (a, b) = (dir.path().join("a.gguf"), dir.path().join("b.gguf"));
    write_full_file(&a, Some(64));
    write_full_file(&b, Some(64));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A writer with two F32 tensors `a` (8 elements) and `b` (4), header written.
fn two_tensor_writer(path: &Path) -> llava::gguf::GgufDataWriter {
    let mut w = GgufWriter::new(path);
    w.add_tensor("a", &[8], GgmlType::F32).unwrap();
    w.add_tensor("b", &[4], GgmlType::F32).unwrap();
    w.write_header().unwrap()
}

#[test]
fn unfinished_or_failed_writes_leave_no_file() {
    let dir = temp_dir();
    let path = dir.path().join("out.gguf");

    // Dropped after the header.
    drop(two_tensor_writer(&path));
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());

    // Dropped in the middle of a tensor.
    let mut data = two_tensor_writer(&path);
    data.begin_tensor("a")
        .unwrap()
        .write_chunk(&[0; 8])
        .unwrap();
    drop(data);
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());

    // Too few bytes.
    let mut data = two_tensor_writer(&path);
    let mut t = data.begin_tensor("a").unwrap();
    t.write_chunk(&[0; 31]).unwrap();
    let err = t.finish().unwrap_err();
    assert!(
        matches!(&err, GgufError::TensorSizeMismatch { tensor, expected: 32, written: 31 } if tensor == "a"),
        "{err}"
    );
    drop(data);

    // Too many bytes.
    let mut data = two_tensor_writer(&path);
    let mut t = data.begin_tensor("a").unwrap();
    t.write_chunk(&[0; 30]).unwrap();
    assert!(matches!(
        t.write_chunk(&[0; 3]),
        Err(GgufError::TensorSizeMismatch { written: 33, .. })
    ));
    drop(data);

    // A tensor left unfinished, then finish().
    let mut data = two_tensor_writer(&path);
    data.write_tensor("a", &[0; 32]).unwrap();
    data.begin_tensor("b")
        .unwrap()
        .write_chunk(&[0; 4])
        .unwrap();
    assert!(matches!(
        data.finish(),
        Err(GgufError::TensorSizeMismatch { written: 4, .. })
    ));

    // Out of order, unknown, and missing tensors.
    let mut data = two_tensor_writer(&path);
    assert!(matches!(
        data.begin_tensor("b").err().unwrap(),
        GgufError::TensorOutOfOrder { .. }
    ));
    assert!(matches!(
        data.begin_tensor("zzz").err().unwrap(),
        GgufError::UnexpectedTensor { .. }
    ));
    data.write_tensor("a", &[0; 32]).unwrap();
    let err = data.finish().unwrap_err();
    assert!(
        matches!(&err, GgufError::TensorNotWritten { tensor } if tensor == "b"),
        "{err}"
    );

    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

#[test]
fn a_failed_write_keeps_the_previous_file() {
    let dir = temp_dir();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, b"previous contents").unwrap();
    let mut data = two_tensor_writer(&path);
    data.write_tensor("a", &[0; 32]).unwrap();
    drop(data);
    assert_eq!(std::fs::read(&path).unwrap(), b"previous contents");
    assert_eq!(dir_entries(dir.path()), vec!["model.gguf".to_owned()]);

    // And a successful one replaces it.
    let mut data = two_tensor_writer(&path);
    data.write_tensor("a", &[1; 32]).unwrap();
    data.write_tensor("b", &[2; 16]).unwrap();
    data.finish().unwrap();
    assert_eq!(
        GgufFile::open(&path)
            .unwrap()
            .tensor_data_by_name("b")
            .unwrap(),
        &[2; 16]
    );
    assert_eq!(dir_entries(dir.path()), vec!["model.gguf".to_owned()]);
}

#[test]
fn refuses_what_llama_cpp_could_not_read() {
    let mut w = GgufWriter::new("unused.gguf");
    w.add_metadata("k", 1u32).unwrap();
    assert!(matches!(
        w.add_metadata("k", 2u32),
        Err(GgufError::DuplicateKey { .. })
    ));
    for bad in [0u32, 24] {
        assert!(matches!(
            w.add_metadata("general.alignment", bad),
            Err(GgufError::BadAlignment { .. })
        ));
    }
    assert!(matches!(
        w.add_metadata("general.alignment", 32u64),
        Err(GgufError::WrongValueType { .. })
    ));
    w.add_tensor("t", &[32], GgmlType::Q8_0).unwrap();
    assert!(matches!(
        w.add_tensor("t", &[32], GgmlType::Q8_0),
        Err(GgufError::DuplicateTensor { .. })
    ));
    assert!(matches!(
        w.add_tensor("u", &[1, 1, 1, 1, 1], GgmlType::F32),
        Err(GgufError::TooManyDims { .. })
    ));
    assert!(matches!(
        w.add_tensor("u", &[16], GgmlType::Q8_0),
        Err(GgufError::NotWholeBlocks { .. })
    ));
    assert!(matches!(
        w.add_tensor("x".repeat(64), &[1], GgmlType::F32),
        Err(GgufError::TensorNameTooLong { len: 64, .. })
    ));
    w.add_tensor("x".repeat(63), &[1], GgmlType::F32).unwrap();
    let mut deep = GgufValue::from(vec![1u8]);
    for _ in 0..llava::gguf::MAX_ARRAY_NESTING {
        deep = GgufValue::Array(GgufArray::new(GgufValueType::Array, vec![deep]).unwrap());
    }
    assert!(matches!(
        w.add_metadata("deep", deep),
        Err(GgufError::WriterNestingTooDeep { .. })
    ));
}

fn leaf_value() -> impl Strategy<Value = GgufValue> {
    prop_oneof![
        any::<u8>().prop_map(GgufValue::U8),
        any::<i8>().prop_map(GgufValue::I8),
        any::<u16>().prop_map(GgufValue::U16),
        any::<i16>().prop_map(GgufValue::I16),
        any::<u32>().prop_map(GgufValue::U32),
        any::<i32>().prop_map(GgufValue::I32),
        any::<u32>().prop_map(|b| GgufValue::F32(f32::from_bits(b))),
        any::<bool>().prop_map(GgufValue::Bool),
        ".{0,12}".prop_map(GgufValue::String),
        any::<u64>().prop_map(GgufValue::U64),
        any::<i64>().prop_map(GgufValue::I64),
        any::<u64>().prop_map(|b| GgufValue::F64(f64::from_bits(b))),
    ]
}

/// Scalars and (nested) arrays; array items are made homogeneous by keeping those of the first
/// item's type.
fn any_value() -> impl Strategy<Value = GgufValue> {
    leaf_value().prop_recursive(3, 64, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(|items| {
            let elem_type = items
                .first()
                .map_or(GgufValueType::I32, GgufValue::value_type);
            let items = items
                .into_iter()
                .filter(|v| v.value_type() == elem_type)
                .collect();
            GgufValue::Array(GgufArray::new(elem_type, items).unwrap())
        })
    })
}

fn any_tensor() -> impl Strategy<Value = (Vec<u64>, GgmlType)> {
    let types = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q5_K,
        GgmlType::IQ4_XS,
    ];
    (
        prop::sample::select(types.to_vec()),
        0u64..3,
        0u64..4,
        0usize..4,
    )
        .prop_map(|(t, blocks, rows, n_dims)| {
            let mut dims = vec![blocks * t.block_size() as u64, rows, 1, 2];
            // A tensor without dimensions is one element, never a whole block of a quant type.
            dims.truncate(if t.is_quantized() {
                n_dims.max(1)
            } else {
                n_dims
            });
            (dims, t)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_files_round_trip(
        values in prop::collection::vec(any_value(), 0..8),
        tensors in prop::collection::vec(any_tensor(), 0..5),
        alignment in prop::sample::select(vec![1u32, 2, 32, 64, 256]),
    ) {
        let dir = temp_dir();
        let path = dir.path().join("r.gguf");
        let mut w = GgufWriter::new(&path);
        w.add_metadata("general.alignment", alignment).unwrap();
        for (i, v) in values.iter().enumerate() {
            w.add_metadata(format!("k{i}"), v.clone()).unwrap();
        }
        for (i, (dims, t)) in tensors.iter().enumerate() {
            w.add_tensor(format!("t{i}"), dims, *t).unwrap();
        }
        let mut data = w.write_header().unwrap();
        for (i, (dims, t)) in tensors.iter().enumerate() {
            data.write_tensor(&format!("t{i}"), &pattern(i, n_bytes(dims, *t))).unwrap();
        }
        data.finish().unwrap();

        let file = GgufFile::open(&path).unwrap();
        prop_assert_eq!(file.alignment(), u64::from(alignment));
        prop_assert_eq!(file.metadata().len(), values.len() + 1);
        for (entry, v) in file.metadata()[1..].iter().zip(&values) {
            prop_assert!(same_value(&entry.value, v), "{:?} != {:?}", entry.value, v);
        }
        prop_assert_eq!(file.tensors().len(), tensors.len());
        for (i, (info, (dims, t))) in file.tensors().iter().zip(&tensors).enumerate() {
            prop_assert_eq!(&info.dims, dims);
            prop_assert_eq!(info.ggml_type, *t);
            let expected = pattern(i, n_bytes(dims, *t));
            prop_assert_eq!(file.tensor_data(info), expected.as_slice());
        }
    }
}

#[test]
fn released_tensor_pages_read_back_unchanged_mapped_or_in_memory() {
    let dir = temp_dir();
    let path = dir.path().join("pages.gguf");
    // Several pages per tensor, so the release covers whole pages inside the map.
    let n = 4 * 4096;
    let a: Vec<u8> = (0..n * 4).map(|i| (i * 7 % 251) as u8).collect();
    let b: Vec<u8> = (0..n * 4).map(|i| (i * 13 % 241) as u8).collect();
    let mut w = GgufWriter::new(&path);
    w.add_tensor("a", &[n as u64], GgmlType::F32).unwrap();
    w.add_tensor("b", &[n as u64], GgmlType::F32).unwrap();
    let mut data = w.write_header().unwrap();
    data.write_tensor("a", &a).unwrap();
    data.write_tensor("b", &b).unwrap();
    data.finish().unwrap();

    // Mapped, and read into anonymous memory, where a release must not drop the pages: they
    // have no file behind them and would read back as zeros.
    for (how, file) in [
        ("mapped", GgufFile::open(&path).unwrap()),
        ("in memory", GgufFile::read_into_memory(&path).unwrap()),
    ] {
        file.advise_sequential();
        for (name, expected) in [("a", &a), ("b", &b)] {
            let info = file.tensor(name).unwrap();
            assert_eq!(file.tensor_data(info), &expected[..], "{how}: {name}");
            file.release_tensor_pages(info);
            assert_eq!(
                file.tensor_data(info),
                &expected[..],
                "{how}: {name} after release"
            );
        }
    }
}

/// `read_into_memory_with` hands its closure the header and the writable bytes: the tensors
/// it picks come as disjoint slices in file order (whatever order the header lists them in),
/// what it writes there is what the file then reads, the rest is untouched; its error is
/// returned as it is.
#[test]
fn tensors_rewritten_in_place_before_the_memory_is_read_only() {
    let dir = temp_dir();
    let path = dir.path().join("rewrite.gguf");
    let tensor =
        |seed: usize, n: usize| -> Vec<u8> { (0..n).map(|i| (i * seed % 251) as u8).collect() };
    let (a, b, c) = (tensor(7, 400), tensor(13, 64), tensor(17, 1000));
    let mut w = GgufWriter::new(&path);
    for (name, bytes) in [("c", &c), ("a", &a), ("b", &b)] {
        w.add_tensor(name, &[bytes.len() as u64], GgmlType::I8)
            .unwrap();
    }
    let mut data = w.write_header().unwrap();
    for (name, bytes) in [("c", &c), ("a", &a), ("b", &b)] {
        data.write_tensor(name, bytes).unwrap();
    }
    data.finish().unwrap();

    let file = GgufFile::read_into_memory_with(&path, |header, bytes| {
        let picked = header.tensor_data_mut(bytes, |t| t.name != "a");
        let names: Vec<&str> = picked.iter().map(|(t, _)| t.name.as_str()).collect();
        assert_eq!(names, ["c", "b"]);
        for (info, data) in picked {
            assert_eq!(data.len() as u64, info.n_bytes);
            data.reverse();
        }
        Ok::<(), GgufError>(())
    })
    .unwrap();
    let reversed = |v: &[u8]| v.iter().rev().copied().collect::<Vec<u8>>();
    assert_eq!(file.tensor_data_by_name("a").unwrap(), &a[..]);
    assert_eq!(file.tensor_data_by_name("b").unwrap(), &reversed(&b)[..]);
    assert_eq!(file.tensor_data_by_name("c").unwrap(), &reversed(&c)[..]);

    let err = GgufFile::read_into_memory_with(&path, |_, _| {
        Err(GgufError::NoSuchTensor {
            tensor: "from the closure".into(),
        })
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("from the closure"), "{err}");
}
