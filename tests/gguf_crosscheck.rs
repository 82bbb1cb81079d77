//! Round trips with gguf-py, the reference implementation (tools/gguf_crosscheck.py): a file
//! gguf-py writes reads identically in ours, and a file ours writes reads identically in gguf-py.
//!
//! Needs a Python with the `gguf` and `numpy` packages: `LLAVA_PYTHON`, by default
//! `.venv/bin/python` under the crate root.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use llava::gguf::{GgufError, GgufFile, GgufValue};
use serde_json::{Value, json};

/// Runs tools/gguf_crosscheck.py with `args`; returns its stdout.
fn crosscheck(args: &[&str]) -> String {
    let script = crate_root().join("tools/gguf_crosscheck.py");
    let out = Command::new(python())
        .arg(&script)
        .args(args)
        .output()
        .expect("running the gguf-py cross-check script");
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("script output is UTF-8")
}

fn read_with_gguf_py(path: &Path) -> Value {
    serde_json::from_str(&crosscheck(&["read", path.to_str().unwrap()])).unwrap()
}

/// The canonical form tools/gguf_crosscheck.py prints: floats as bit patterns, arrays with their
/// element type.
fn canonical_value(value: &GgufValue) -> Value {
    let t = value.value_type().name();
    match value {
        GgufValue::U8(v) => json!({"t": t, "v": v}),
        GgufValue::I8(v) => json!({"t": t, "v": v}),
        GgufValue::U16(v) => json!({"t": t, "v": v}),
        GgufValue::I16(v) => json!({"t": t, "v": v}),
        GgufValue::U32(v) => json!({"t": t, "v": v}),
        GgufValue::I32(v) => json!({"t": t, "v": v}),
        GgufValue::U64(v) => json!({"t": t, "v": v}),
        GgufValue::I64(v) => json!({"t": t, "v": v}),
        GgufValue::F32(v) => json!({"t": t, "v": v.to_bits()}),
        GgufValue::F64(v) => json!({"t": t, "v": v.to_bits()}),
        GgufValue::Bool(v) => json!({"t": t, "v": v}),
        GgufValue::String(v) => json!({"t": t, "v": v}),
        GgufValue::Array(a) => json!({
            "t": t,
            "elem": a.elem_type().name(),
            "v": a.items().iter().map(canonical_value).collect::<Vec<_>>(),
        }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_with_llava(path: &Path) -> Value {
    let file = GgufFile::open(path).unwrap();
    json!({
        "version": file.version(),
        "alignment": file.alignment(),
        "data_offset": file.data_offset(),
        "metadata": file.metadata().iter().map(|e| json!({
            "key": e.key,
            "value": canonical_value(&e.value),
        })).collect::<Vec<_>>(),
        "tensors": file.tensors().iter().map(|t| json!({
            "name": t.name,
            "type": t.ggml_type.id(),
            "dims": t.dims,
            "offset": t.offset,
            "n_bytes": t.n_bytes,
            "data": hex(file.tensor_data(t)),
        })).collect::<Vec<_>>(),
    })
}

#[test]
fn files_written_by_gguf_py_read_identically() {
    let dir = temp_dir();
    for alignment in [None, Some(64)] {
        let path = dir.path().join("py.gguf");
        let path_str = path.to_str().unwrap().to_owned();
        match alignment {
            None => crosscheck(&["write", &path_str]),
            Some(a) => crosscheck(&["write", &path_str, "--alignment", &a.to_string()]),
        };
        let ours = read_with_llava(&path);
        let reference = read_with_gguf_py(&path);
        assert_eq!(ours, reference, "alignment {alignment:?}");

        // What the script wrote, spot-checked independently of both readers.
        let file = GgufFile::open(&path).unwrap();
        assert_eq!(file.alignment(), alignment.unwrap_or(32));
        assert_eq!(file.get("test.u8"), Some(&GgufValue::U8(200)));
        assert_eq!(file.get("test.i64"), Some(&GgufValue::I64(i64::MIN)));
        assert_eq!(file.get("test.f32").and_then(|v| v.as_f32()), Some(0.1));
        assert_eq!(
            file.get("test.str").and_then(|v| v.as_str()),
            Some("héllo, wörld ✓")
        );
        let nested = file
            .get("test.arr_nested_str")
            .and_then(|v| v.as_array())
            .unwrap();
        assert_eq!(nested.items()[0].as_string_array(), Some(vec!["a", "b"]));
        assert_eq!(nested.items()[1].as_string_array(), Some(vec!["c"]));
        let q4_k = file.tensor("q4_k.weight").unwrap();
        assert_eq!(q4_k.ggml_type, llava::GgmlType::Q4_K);
        assert_eq!(q4_k.dims, vec![256, 2]);
        assert_eq!(q4_k.n_bytes, 2 * 144);
        assert_eq!(file.tensors().len(), 6);
    }
}

#[test]
fn big_endian_files_from_gguf_py_are_refused_with_a_message() {
    let dir = temp_dir();
    let path = dir.path().join("be.gguf");
    crosscheck(&["write", path.to_str().unwrap(), "--big-endian"]);
    let err = GgufFile::open(&path).err().unwrap();
    assert!(matches!(err, GgufError::BigEndian { version: 3 }), "{err}");
    assert!(err.to_string().contains("big-endian"), "{err}");
}

#[test]
fn files_written_by_llava_read_identically_in_gguf_py() {
    let dir = temp_dir();
    for alignment in [None, Some(128)] {
        let path = dir.path().join("ours.gguf");
        write_full_file(&path, alignment);
        let reference = read_with_gguf_py(&path);
        assert_eq!(read_with_llava(&path), reference, "alignment {alignment:?}");

        // gguf-py sees what was meant to be written, not only what our reader sees.
        let mut expected =
            vec![json!({"key": "general.architecture", "value": {"t": "str", "v": "llama"}})];
        if let Some(a) = alignment {
            expected.push(json!({"key": "general.alignment", "value": {"t": "u32", "v": a}}));
        }
        for (key, value) in every_value() {
            expected.push(json!({"key": key, "value": canonical_value(&value)}));
        }
        assert_eq!(reference["metadata"], Value::Array(expected));
        let tensors = reference["tensors"].as_array().unwrap();
        assert_eq!(tensors.len(), some_tensors().len());
        for (i, (t, (name, dims, ggml_type))) in tensors.iter().zip(some_tensors()).enumerate() {
            assert_eq!(t["name"], name);
            assert_eq!(t["type"], ggml_type.id());
            assert_eq!(t["dims"], json!(dims));
            assert_eq!(t["data"], hex(&pattern(i, n_bytes(&dims, ggml_type))));
        }
    }
}
