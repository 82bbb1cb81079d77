//! PyTorch `.bin` checkpoints in `torch.save`'s zip format (PyTorch ≥ 1.6): `<archive>/data.pkl`
//! (the state dict, read by the restricted unpickler in [`super::pickle`]) and one stored entry
//! `<archive>/data/<key>` per storage. Tensors become views into those entries. The legacy
//! (pre-1.6) format is a bare pickle stream and is refused.

use std::path::Path;

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
