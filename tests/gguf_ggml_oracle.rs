//! Cross-checks against ggml's own GGUF reader and writer (the C in ggml-sys-bleedingedge, the
//! test oracle): llama.cpp reads our files as we meant them, and we read files ggml writes.
//! ggml of that release reads no nested arrays, so these files have none.

mod common;

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::Path;

use common::*;
use ggml_sys_bleedingedge as ggml;
use llava::GgmlType;
use llava::gguf::{GgufArray, GgufFile, GgufValue, GgufValueType, GgufWriter};

fn c_path(path: &Path) -> CString {
    CString::new(path.to_str().unwrap()).unwrap()
}

/// Every scalar type, strings, and arrays of the plain types ggml reads.
fn flat_values() -> Vec<(&'static str, GgufValue)> {
    every_value()
        .into_iter()
        .filter(|(_, v)| {
            v.as_array()
                .is_none_or(|a| a.elem_type() != GgufValueType::Array)
        })
        .collect()
}

fn tensors() -> Vec<(&'static str, Vec<u64>, GgmlType)> {
    vec![
        ("f32.weight", vec![5, 3], GgmlType::F32),
        ("f16.weight", vec![7], GgmlType::F16),
        ("q8_0.weight", vec![64, 3], GgmlType::Q8_0),
        ("q4_k.weight", vec![256, 2], GgmlType::Q4_K),
        ("q6_k.weight", vec![512], GgmlType::Q6_K),
    ]
}

/// The little-endian bytes of an array of plain values, as ggml stores them in memory.
fn plain_array_bytes(array: &GgufArray) -> Vec<u8> {
    let mut out = Vec::new();
    for item in array.items() {
        match item {
            GgufValue::U8(v) => out.push(*v),
            GgufValue::I8(v) => out.extend(v.to_le_bytes()),
            GgufValue::U16(v) => out.extend(v.to_le_bytes()),
            GgufValue::I16(v) => out.extend(v.to_le_bytes()),
            GgufValue::U32(v) => out.extend(v.to_le_bytes()),
            GgufValue::I32(v) => out.extend(v.to_le_bytes()),
            GgufValue::F32(v) => out.extend(v.to_le_bytes()),
            GgufValue::Bool(v) => out.push(u8::from(*v)),
            GgufValue::U64(v) => out.extend(v.to_le_bytes()),
            GgufValue::I64(v) => out.extend(v.to_le_bytes()),
            GgufValue::F64(v) => out.extend(v.to_le_bytes()),
            other => panic!("not a plain value: {other:?}"),
        }
    }
    out
}

/// Reads key `id` of a ggml gguf context as a `GgufValue`.
///
/// # Safety
/// `ctx` must be a valid gguf context and `id` one of its keys.
unsafe fn ggml_value(ctx: *const ggml::gguf_context, id: c_int, like: &GgufValue) -> GgufValue {
    let str_at = |p: *const c_char| {
        // SAFETY: ggml returns NUL-terminated strings owned by the context.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
    };
    // SAFETY: the caller guarantees `ctx` and `id`; each getter is called for the type the key
    // has (checked against `like` by the caller's comparison of type ids).
    unsafe {
        match like {
            GgufValue::U8(_) => GgufValue::U8(ggml::gguf_get_val_u8(ctx, id)),
            GgufValue::I8(_) => GgufValue::I8(ggml::gguf_get_val_i8(ctx, id)),
            GgufValue::U16(_) => GgufValue::U16(ggml::gguf_get_val_u16(ctx, id)),
            GgufValue::I16(_) => GgufValue::I16(ggml::gguf_get_val_i16(ctx, id)),
            GgufValue::U32(_) => GgufValue::U32(ggml::gguf_get_val_u32(ctx, id)),
            GgufValue::I32(_) => GgufValue::I32(ggml::gguf_get_val_i32(ctx, id)),
            GgufValue::F32(_) => GgufValue::F32(ggml::gguf_get_val_f32(ctx, id)),
            GgufValue::U64(_) => GgufValue::U64(ggml::gguf_get_val_u64(ctx, id)),
            GgufValue::I64(_) => GgufValue::I64(ggml::gguf_get_val_i64(ctx, id)),
            GgufValue::F64(_) => GgufValue::F64(ggml::gguf_get_val_f64(ctx, id)),
            GgufValue::Bool(_) => GgufValue::Bool(ggml::gguf_get_val_bool(ctx, id)),
            GgufValue::String(_) => GgufValue::String(str_at(ggml::gguf_get_val_str(ctx, id))),
            GgufValue::Array(_) => unreachable!("arrays are compared by bytes"),
        }
    }
}

fn same_bits(a: &GgufValue, b: &GgufValue) -> bool {
    match (a, b) {
        (GgufValue::F32(x), GgufValue::F32(y)) => x.to_bits() == y.to_bits(),
        (GgufValue::F64(x), GgufValue::F64(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

#[test]
fn ggml_reads_our_files_as_meant() {
    let dir = temp_dir();
    for alignment in [None, Some(64u32)] {
        let path = dir.path().join("ours.gguf");
        let mut expected = vec![("general.architecture", GgufValue::from("llama"))];
        if let Some(a) = alignment {
            expected.push(("general.alignment", GgufValue::U32(a)));
        }
        expected.extend(flat_values());
        let mut w = GgufWriter::new(&path);
        for (key, value) in &expected {
            w.add_metadata(*key, value.clone()).unwrap();
        }
        for (name, dims, t) in tensors() {
            w.add_tensor(name, &dims, t).unwrap();
        }
        let mut data = w.write_header().unwrap();
        for (i, (name, dims, t)) in tensors().into_iter().enumerate() {
            data.write_tensor(name, &pattern(i, n_bytes(&dims, t)))
                .unwrap();
        }
        data.finish().unwrap();
        let ours = GgufFile::open(&path).unwrap();

        let mut tensor_ctx: *mut ggml::ggml_context = std::ptr::null_mut();
        let params = ggml::gguf_init_params {
            no_alloc: false,
            ctx: &mut tensor_ctx,
        };
        let fname = c_path(&path);
        // SAFETY: valid NUL-terminated path and params; the result is checked for null.
        let ctx = unsafe { ggml::gguf_init_from_file(fname.as_ptr(), params) };
        assert!(
            !ctx.is_null(),
            "ggml refused our file (alignment {alignment:?})"
        );

        // SAFETY (whole block): `ctx` and `tensor_ctx` are valid until freed at the end; key and
        // tensor ids are within the counts ggml reports; data pointers cover ggml_nbytes.
        unsafe {
            assert_eq!(ggml::gguf_get_version(ctx), 3);
            assert_eq!(ggml::gguf_get_alignment(ctx) as u64, ours.alignment());
            assert_eq!(ggml::gguf_get_data_offset(ctx) as u64, ours.data_offset());
            assert_eq!(ggml::gguf_get_n_kv(ctx) as usize, expected.len());
            for (id, (key, value)) in expected.iter().enumerate() {
                let id = id as c_int;
                let ggml_key = CStr::from_ptr(ggml::gguf_get_key(ctx, id));
                assert_eq!(ggml_key.to_str().unwrap(), *key);
                assert_eq!(
                    ggml::gguf_get_kv_type(ctx, id),
                    value.value_type().id(),
                    "{key}"
                );
                match value {
                    GgufValue::Array(array) => {
                        assert_eq!(ggml::gguf_get_arr_type(ctx, id), array.elem_type().id());
                        let n = ggml::gguf_get_arr_n(ctx, id);
                        assert_eq!(n as usize, array.len(), "{key}");
                        if array.elem_type() == GgufValueType::String {
                            let strings: Vec<String> = (0..n)
                                .map(|i| {
                                    let p = ggml::gguf_get_arr_str(ctx, id, i);
                                    CStr::from_ptr(p).to_str().unwrap().to_owned()
                                })
                                .collect();
                            assert_eq!(
                                Some(strings.iter().map(String::as_str).collect()),
                                value.as_string_array()
                            );
                        } else if n > 0 {
                            let expected_bytes = plain_array_bytes(array);
                            let p = ggml::gguf_get_arr_data(ctx, id) as *const u8;
                            let got = std::slice::from_raw_parts(p, expected_bytes.len());
                            assert_eq!(got, expected_bytes.as_slice(), "{key}");
                        }
                    }
                    // ggml keeps strings NUL-terminated: compare up to the first NUL.
                    GgufValue::String(s) => {
                        let got = ggml_value(ctx, id, value);
                        let until_nul = s.split('\0').next().unwrap();
                        assert_eq!(got.as_str(), Some(until_nul), "{key}");
                    }
                    _ => {
                        let got = ggml_value(ctx, id, value);
                        assert!(
                            same_bits(&got, value),
                            "{key}: ggml {got:?}, ours {value:?}"
                        );
                    }
                }
            }

            assert_eq!(ggml::gguf_get_n_tensors(ctx) as usize, tensors().len());
            for (i, (name, dims, t)) in tensors().into_iter().enumerate() {
                let id = i as c_int;
                let ggml_name = CStr::from_ptr(ggml::gguf_get_tensor_name(ctx, id));
                assert_eq!(ggml_name.to_str().unwrap(), name);
                assert_eq!(ggml::gguf_get_tensor_type(ctx, id), t.id());
                assert_eq!(
                    ggml::gguf_get_tensor_offset(ctx, id) as u64,
                    ours.tensor(name).unwrap().offset
                );
                let cname = CString::new(name).unwrap();
                let tensor = ggml::ggml_get_tensor(tensor_ctx, cname.as_ptr());
                assert!(!tensor.is_null());
                let ne_all = (*tensor).ne;
                let ne: Vec<u64> = ne_all[..dims.len()].iter().map(|&n| n as u64).collect();
                assert_eq!(ne, dims);
                let n = ggml::ggml_nbytes(tensor);
                let got = std::slice::from_raw_parts((*tensor).data as *const u8, n);
                assert_eq!(got, pattern(i, n_bytes(&dims, t)).as_slice(), "{name}");
            }
            ggml::ggml_free(tensor_ctx);
            ggml::gguf_free(ctx);
        }
    }
}

#[test]
fn we_read_files_ggml_writes() {
    let dir = temp_dir();
    let path = dir.path().join("ggml.gguf");
    let tokens = ["<unk>", "<s>", "</s>", "▁hello"];
    let token_cstrings: Vec<CString> = tokens.iter().map(|s| CString::new(*s).unwrap()).collect();
    let mut token_ptrs: Vec<*const c_char> = token_cstrings.iter().map(|s| s.as_ptr()).collect();
    let scores = [0.0f32, -1.5, -2.25, 3.0];
    let q8_0_bytes = pattern(7, 2 * 2 * 34);
    let f32_values: Vec<f32> = (0..16).map(|i| i as f32 * 0.5 - 3.0).collect();
    let key = |k: &str| CString::new(k).unwrap();

    // SAFETY (whole block): every pointer passed is valid for the call (CStrings and vectors
    // alive until after gguf_write_to_file; tensor data sized by ggml_nbytes); contexts are freed
    // once, at the end.
    unsafe {
        let ctx = ggml::gguf_init_empty();
        ggml::gguf_set_val_str(
            ctx,
            key("general.architecture").as_ptr(),
            key("llama").as_ptr(),
        );
        ggml::gguf_set_val_u8(ctx, key("t.u8").as_ptr(), 200);
        ggml::gguf_set_val_i8(ctx, key("t.i8").as_ptr(), -7);
        ggml::gguf_set_val_u16(ctx, key("t.u16").as_ptr(), 65000);
        ggml::gguf_set_val_i16(ctx, key("t.i16").as_ptr(), -32000);
        ggml::gguf_set_val_u32(ctx, key("t.u32").as_ptr(), 4_000_000_000);
        ggml::gguf_set_val_i32(ctx, key("t.i32").as_ptr(), -2_000_000_000);
        ggml::gguf_set_val_f32(ctx, key("t.f32").as_ptr(), 1e-6);
        ggml::gguf_set_val_u64(ctx, key("t.u64").as_ptr(), u64::MAX - 1);
        ggml::gguf_set_val_i64(ctx, key("t.i64").as_ptr(), i64::MIN + 1);
        ggml::gguf_set_val_f64(ctx, key("t.f64").as_ptr(), std::f64::consts::PI);
        ggml::gguf_set_val_bool(ctx, key("t.bool").as_ptr(), true);
        ggml::gguf_set_arr_str(
            ctx,
            key("tokenizer.ggml.tokens").as_ptr(),
            token_ptrs.as_mut_ptr(),
            tokens.len() as c_int,
        );
        ggml::gguf_set_arr_data(
            ctx,
            key("tokenizer.ggml.scores").as_ptr(),
            GgufValueType::F32.id(),
            scores.as_ptr() as *const c_void,
            scores.len() as c_int,
        );

        let tensor_ctx = ggml::ggml_init(ggml::ggml_init_params {
            mem_size: 1 << 20,
            mem_buffer: std::ptr::null_mut(),
            no_alloc: false,
        });
        let a = ggml::ggml_new_tensor_2d(tensor_ctx, GgmlType::F32.id(), 8, 2);
        ggml::ggml_set_name(a, key("a.weight").as_ptr());
        std::ptr::copy_nonoverlapping(f32_values.as_ptr(), (*a).data as *mut f32, 16);
        let b = ggml::ggml_new_tensor_2d(tensor_ctx, GgmlType::Q8_0.id(), 64, 2);
        ggml::ggml_set_name(b, key("b.weight").as_ptr());
        assert_eq!(ggml::ggml_nbytes(b), q8_0_bytes.len());
        std::ptr::copy_nonoverlapping(q8_0_bytes.as_ptr(), (*b).data as *mut u8, q8_0_bytes.len());
        ggml::gguf_add_tensor(ctx, a);
        ggml::gguf_add_tensor(ctx, b);
        ggml::gguf_write_to_file(ctx, c_path(&path).as_ptr(), false);
        ggml::ggml_free(tensor_ctx);
        ggml::gguf_free(ctx);
    }

    let file = GgufFile::open(&path).unwrap();
    let expect = [
        ("general.architecture", GgufValue::from("llama")),
        ("t.u8", GgufValue::U8(200)),
        ("t.i8", GgufValue::I8(-7)),
        ("t.u16", GgufValue::U16(65000)),
        ("t.i16", GgufValue::I16(-32000)),
        ("t.u32", GgufValue::U32(4_000_000_000)),
        ("t.i32", GgufValue::I32(-2_000_000_000)),
        ("t.f32", GgufValue::F32(1e-6)),
        ("t.u64", GgufValue::U64(u64::MAX - 1)),
        ("t.i64", GgufValue::I64(i64::MIN + 1)),
        ("t.f64", GgufValue::F64(std::f64::consts::PI)),
        ("t.bool", GgufValue::Bool(true)),
        ("tokenizer.ggml.tokens", GgufValue::from(tokens.to_vec())),
        ("tokenizer.ggml.scores", GgufValue::from(scores.to_vec())),
    ];
    assert_eq!(file.metadata().len(), expect.len());
    for (entry, (key, value)) in file.metadata().iter().zip(&expect) {
        assert_eq!(entry.key, *key);
        assert_eq!(&entry.value, value, "{key}");
    }
    let a = file.tensor("a.weight").unwrap();
    assert_eq!(
        (a.ggml_type, a.dims.as_slice()),
        (GgmlType::F32, &[8u64, 2][..])
    );
    let a_bytes: Vec<u8> = f32_values.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(file.tensor_data(a), a_bytes.as_slice());
    let b = file.tensor("b.weight").unwrap();
    assert_eq!(
        (b.ggml_type, b.dims.as_slice()),
        (GgmlType::Q8_0, &[64u64, 2][..])
    );
    assert_eq!(file.tensor_data(b), q8_0_bytes.as_slice());
}
