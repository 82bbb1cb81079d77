//! Shared by the quantize tests: tiny models written with llava's GGUF writer, weights from a
//! deterministic generator, encoded to F32/F16/BF16 here (independently of llava's converters).
#![allow(dead_code)]

use std::path::Path;

use half::{bf16, f16};
use llava::GgmlType::{self, *};
use llava::gguf::{GgufValue, GgufWriter};

pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
}

pub fn spec(name: &str, dims: &[u64], ty: GgmlType) -> TensorSpec {
    TensorSpec {
        name: name.to_owned(),
        dims: dims.to_vec(),
        ty,
    }
}

/// Deterministic weights, varied in scale per row so the quantizers' scales differ.
pub fn values(seed: u64, n: usize, row_length: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            unit * (1.0 + (i / row_length.max(1) % 5) as f32)
        })
        .collect()
}

/// The input bytes of a float tensor, encoded here (not by llava) from `values`.
pub fn encode(ty: GgmlType, xs: &[f32]) -> Vec<u8> {
    match ty {
        F32 => xs.iter().flat_map(|x| x.to_le_bytes()).collect(),
        F16 => xs
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_bits().to_le_bytes())
            .collect(),
        BF16 => xs
            .iter()
            .flat_map(|&x| bf16::from_f32(x).to_bits().to_le_bytes())
            .collect(),
        other => panic!("test inputs are float, not {other}"),
    }
}

pub fn write_model(path: &Path, metadata: &[(&str, GgufValue)], tensors: &[TensorSpec]) {
    let mut writer = GgufWriter::new(path);
    for (key, value) in metadata {
        writer.add_metadata(*key, value.clone()).unwrap();
    }
    for t in tensors {
        writer.add_tensor(t.name.clone(), &t.dims, t.ty).unwrap();
    }
    let mut data = writer.write_header().unwrap();
    for (i, t) in tensors.iter().enumerate() {
        let n = t.dims.iter().product::<u64>() as usize;
        let xs = values(i as u64 + 1, n, t.dims[0] as usize);
        data.write_tensor(&t.name, &encode(t.ty, &xs)).unwrap();
    }
    data.finish().unwrap();
}
