//! PyTorch `.bin` checkpoints in `torch.save`'s zip format (PyTorch ≥ 1.6): `<archive>/data.pkl`
//! (the state dict, read by the restricted unpickler in [`super::pickle`]) and one stored entry
//! `<archive>/data/<key>` per storage. Tensors become views into those entries. The legacy
//! (pre-1.6) format is a bare pickle stream and is refused.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;

use super::error::ConvertError;
use super::pickle::{self, TensorRef, Value};
use super::store::{SourceTensor, TensorStore};
use super::zip;

/// Maps `path` and adds its tensors to `store`; returns their names.
pub fn load_file(store: &mut TensorStore, path: &Path) -> Result<Vec<String>, ConvertError> {
    let file = store.map_file(path)?;
    let bytes = store.bytes(file);
    let bad = |reason: String| ConvertError::format(path, reason);
    if !zip::is_zip(bytes) {
        return Err(bad(if bytes.first() == Some(&0x80) {
            "legacy (pre-1.6, non-zip) torch.save format is not supported: re-save it with a \
             current PyTorch, or convert it to safetensors"
                .into()
        } else {
            "not a torch.save zip archive".into()
        }));
    }
    let archive = zip::parse(bytes).map_err(&bad)?;
    let pkl: Vec<&String> = archive
        .entries
        .keys()
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .collect();
    let [pkl] = pkl.as_slice() else {
        return Err(bad(format!(
            "expected one <archive>/data.pkl entry, found {}",
            pkl.len()
        )));
    };
    let prefix = pkl.trim_end_matches("data.pkl").to_owned();
    if let Some(order) = archive.entries.get(&format!("{prefix}byteorder"))
        && &bytes[order.clone()] != b"little"
    {
        return Err(bad("big-endian checkpoints are not supported".into()));
    }
    let object = pickle::load(&bytes[archive.entries[*pkl].clone()])
        .map_err(|e| bad(format!("{pkl}: {e}")))?;
    let Value::Dict(items) = object else {
        return Err(bad("the pickled object is not a state dict".into()));
    };
    let mut tensors = Vec::with_capacity(items.len());
    for (key, value) in items {
        let Value::Str(name) = key else {
            return Err(bad("a state-dict key is not a string".into()));
        };
        let Value::Tensor(t) = value else {
            return Err(bad(format!("state-dict entry {name} is not a tensor")));
        };
        let range = archive
            .entries
            .get(&format!("{prefix}data/{}", t.storage_key))
            .ok_or_else(|| {
                bad(format!(
                    "tensor {name}: storage {} is missing",
                    t.storage_key
                ))
            })?;
        let (start, len) =
            locate(&t, range.start, range.end).map_err(|e| bad(format!("tensor {name}: {e}")))?;
        tensors.push((
            name,
            SourceTensor {
                dtype: t.dtype,
                shape: t.shape,
                file,
                start,
                len,
            },
        ));
    }
    let mut names = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        store.insert(name.clone(), t)?;
        names.push(name);
    }
    Ok(names)
}

/// The byte range of a contiguous tensor inside its storage entry `[begin, end)`.
fn locate(t: &TensorRef, begin: usize, end: usize) -> Result<(usize, usize), String> {
    if t.shape.len() != t.stride.len() {
        return Err("size and stride have different lengths".into());
    }
    // Row-major contiguity (dimensions of size 1 may have any stride).
    let mut expected = 1usize;
    for (&d, &s) in t.shape.iter().zip(&t.stride).rev() {
        if d != 1 && s != expected {
            return Err(format!(
                "not contiguous (size {:?}, stride {:?}); save it with .contiguous()",
                t.shape, t.stride
            ));
        }
        expected = expected.checked_mul(d).ok_or("size overflows")?;
    }
    let elem = t.dtype.size();
    let start = t
        .storage_offset
        .checked_mul(elem)
        .and_then(|o| o.checked_add(begin))
        .ok_or("offset overflows")?;
    let len = expected.checked_mul(elem).ok_or("size overflows")?;
    match start.checked_add(len) {
        Some(stop) if stop <= end => Ok((start, len)),
        _ => Err(format!(
            "offset {} + {} elements run past its storage of {} bytes",
            t.storage_offset,
            expected,
            end - begin
        )),
    }
}

/// Loads a sharded `.bin` checkpoint from `pytorch_model.bin.index.json`.
pub fn load_index(store: &mut TensorStore, index: &Path) -> Result<(), ConvertError> {
    let dir = index.parent().unwrap_or(Path::new("."));
    let text = std::fs::read(index).map_err(|e| ConvertError::io(index, e))?;
    let json: Json = serde_json::from_slice(&text)
        .map_err(|e| ConvertError::format(index, format!("not valid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(Json::as_object)
        .ok_or_else(|| ConvertError::format(index, "no `weight_map` object"))?;
    let mut shards: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (tensor, shard) in map {
        let shard = shard
            .as_str()
            .filter(|s| !s.contains(['/', '\\']) && *s != "..")
            .ok_or_else(|| {
                ConvertError::format(index, format!("weight_map[{tensor}] is not a file name"))
            })?;
        shards.entry(shard).or_default().push(tensor);
    }
    for (shard, tensors) in shards {
        let path = dir.join(shard);
        if !path.is_file() {
            return Err(ConvertError::MissingShard {
                index: index.to_owned(),
                shard: path,
                tensor: tensors[0].to_owned(),
            });
        }
        let names = load_file(store, &path)?;
        if let Some(t) = tensors.iter().find(|t| !names.iter().any(|n| n == *t)) {
            return Err(ConvertError::format(
                &path,
                format!("the index places tensor {t} here but the shard does not hold it"),
            ));
        }
    }
    Ok(())
}
