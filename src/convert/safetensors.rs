//! safetensors checkpoints: one file, or several with a `model.safetensors.index.json`.
//!
//! A file is `u64 n` (little-endian), `n` bytes of JSON mapping tensor names to
//! `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the end of the header), an
//! optional `__metadata__` string map, then the data. Everything is validated before use: the
//! header fits in the file, every dtype is known, every range lies in the data and holds exactly
//! shape × dtype bytes, and ranges do not overlap.

use std::path::Path;

use serde_json::Value;

use super::error::ConvertError;
use super::store::{SourceTensor, SrcDtype, TensorStore};

/// Largest header accepted (the format's own readers use 100 MB).
const MAX_HEADER: u64 = 100 << 20;

fn parse_dtype(name: &str) -> Option<SrcDtype> {
    Some(match name {
        "F64" => SrcDtype::F64,
        "F32" => SrcDtype::F32,
        "F16" => SrcDtype::F16,
        "BF16" => SrcDtype::BF16,
        "BOOL" => SrcDtype::Other(1, "BOOL"),
        "U8" => SrcDtype::Other(1, "U8"),
        "I8" => SrcDtype::Other(1, "I8"),
        "F8_E5M2" => SrcDtype::Other(1, "F8_E5M2"),
        "F8_E4M3" => SrcDtype::Other(1, "F8_E4M3"),
        "I16" => SrcDtype::Other(2, "I16"),
        "U16" => SrcDtype::Other(2, "U16"),
        "I32" => SrcDtype::Other(4, "I32"),
        "U32" => SrcDtype::Other(4, "U32"),
        "I64" => SrcDtype::Other(8, "I64"),
        "U64" => SrcDtype::Other(8, "U64"),
        _ => return None,
    })
}

/// Maps one safetensors file into `store`, adding all its tensors. Returns their names.
pub fn load_file(store: &mut TensorStore, path: &Path) -> Result<Vec<String>, ConvertError> {
    let file = store.map_file(path)?;
    let bytes = store.bytes(file);
    let bad = |reason: String| ConvertError::format(path, reason);
    if bytes.len() < 8 {
        return Err(bad(format!(
            "truncated: {} bytes, too short for the 8-byte header length",
            bytes.len()
        )));
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&bytes[..8]);
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER || header_len > (bytes.len() - 8) as u64 {
        return Err(bad(format!(
            "header length {header_len} exceeds the file ({} bytes) or the {MAX_HEADER}-byte limit",
            bytes.len()
        )));
    }
    let data_start = 8 + header_len as usize;
    let data_len = bytes.len() - data_start;
    let header: Value = serde_json::from_slice(&bytes[8..data_start])
        .map_err(|e| bad(format!("header is not valid JSON: {e}")))?;
    let Value::Object(entries) = header else {
        return Err(bad("header is not a JSON object".into()));
    };

    let mut parsed = Vec::with_capacity(entries.len());
    for (name, entry) in &entries {
        if name == "__metadata__" {
            continue;
        }
        let t =
            parse_entry(name, entry, data_len).map_err(|r| bad(format!("tensor {name}: {r}")))?;
        parsed.push((name.clone(), t));
    }
    // Ranges must not overlap (the format requires them to tile the data exactly; overlap is the
    // sign of a forged header).
    let mut ranges: Vec<(usize, usize, &str)> = parsed
        .iter()
        .filter(|(_, t)| t.1 > t.0)
        .map(|(n, t)| (t.0, t.1, n.as_str()))
        .collect();
    ranges.sort();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(bad(format!(
                "tensors {} and {} overlap (bytes {}..{} and {}..{})",
                w[0].2, w[1].2, w[0].0, w[0].1, w[1].0, w[1].1
            )));
        }
    }

    let mut names = Vec::with_capacity(parsed.len());
    for (name, (begin, end, dtype, shape)) in parsed {
        store.insert(
            name.clone(),
            SourceTensor {
                dtype,
                shape,
                file,
                start: data_start + begin,
                len: end - begin,
            },
        )?;
        names.push(name);
    }
    Ok(names)
}

type Entry = (usize, usize, SrcDtype, Vec<usize>);

fn parse_entry(name: &str, entry: &Value, data_len: usize) -> Result<Entry, String> {
    let _ = name;
    let dtype_name = entry
        .get("dtype")
        .and_then(Value::as_str)
        .ok_or("no string `dtype`")?;
    let dtype = parse_dtype(dtype_name).ok_or_else(|| format!("unknown dtype {dtype_name:?}"))?;
    let shape: Vec<usize> = entry
        .get("shape")
        .and_then(Value::as_array)
        .ok_or("no array `shape`")?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<_>>()
        .ok_or("`shape` holds a value that is not a non-negative integer")?;
    let offsets = entry
        .get("data_offsets")
        .and_then(Value::as_array)
        .filter(|a| a.len() == 2)
        .ok_or("no two-element `data_offsets`")?;
    let begin = offsets[0].as_u64().ok_or("bad begin offset")?;
    let end = offsets[1].as_u64().ok_or("bad end offset")?;
    if begin > end || end > data_len as u64 {
        return Err(format!(
            "data_offsets [{begin}, {end}] lie outside the {data_len} data bytes"
        ));
    }
    let n_bytes = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or("shape size overflows")?;
    if n_bytes as u64 != end - begin {
        return Err(format!(
            "shape {shape:?} of {dtype_name} needs {n_bytes} bytes but data_offsets give {}",
            end - begin
        ));
    }
    Ok((begin as usize, end as usize, dtype, shape))
}
