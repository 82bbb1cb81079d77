//! The converter's PyTorch `.bin` reader on a file saved by torch.save itself
//! (tests/convert_data, made by tools/make_convert_testdata.py): a state dict with `_metadata`
//! (BUILD), f16/bf16/f32 tensors, a view at a storage offset, two tensors sharing a storage and
//! an nn.Parameter, all read back with the values torch had.

mod common;

use common::crate_root;
use llava::convert::load_weights;
use serde_json::Value;

#[test]
fn reads_what_torch_save_wrote() {
    let data = crate_root().join("tests/convert_data");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(data.join("expected.json")).unwrap()).unwrap();
    let store = load_weights(&data.join("state-dict")).unwrap();
    let expected = expected.as_object().unwrap();
    let names: Vec<&str> = store.names().collect();
    let mut want: Vec<&str> = expected.keys().map(String::as_str).collect();
    want.sort();
    assert_eq!(names, want);
    for (name, e) in expected {
        let t = store.get(name).unwrap();
        let shape: Vec<usize> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape, shape, "{name}");
        let dtype = match e["dtype"].as_str().unwrap() {
            "float16" => "F16",
            "bfloat16" => "BF16",
            "float32" => "F32",
            other => panic!("{other}"),
        };
        assert_eq!(t.dtype.name(), dtype, "{name}");
        let values: Vec<f32> = e["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(store.tensor_f32(name).unwrap(), values, "{name}");
    }
}
