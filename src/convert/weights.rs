//! Finding and opening a directory's weights, whatever their format.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::error::ConvertError;
use super::store::TensorStore;
use super::{safetensors, torch};

/// A loader of one weight file into the store; returns the names of the tensors it added.
type LoadFile = fn(&mut TensorStore, &Path) -> Result<Vec<String>, ConvertError>;

/// Loads the checkpoint in `dir`: a safetensors index, `model.safetensors`, other
/// `*.safetensors` files, a PyTorch `.bin` index or `pytorch_model.bin`, in that order.
pub fn load_dir(dir: &Path) -> Result<TensorStore, ConvertError> {
    let mut store = TensorStore::default();
    let st_index = dir.join("model.safetensors.index.json");
    if st_index.is_file() {
        load_sharded(&mut store, &st_index, safetensors::load_file)?;
        return Ok(store);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        safetensors::load_file(&mut store, &single)?;
        return Ok(store);
    }
    let mut others: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| ConvertError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    others.sort();
    if !others.is_empty() {
        for p in others {
            safetensors::load_file(&mut store, &p)?;
        }
        return Ok(store);
    }
    let bin_index = dir.join("pytorch_model.bin.index.json");
    if bin_index.is_file() {
        load_sharded(&mut store, &bin_index, torch::load_file)?;
        return Ok(store);
    }
    let bin = dir.join("pytorch_model.bin");
    if bin.is_file() {
        torch::load_file(&mut store, &bin)?;
        return Ok(store);
    }
    Err(ConvertError::NoWeights {
        dir: dir.to_owned(),
    })
}

/// Loads a sharded checkpoint from its index (`weight_map`: tensor name → shard file name beside
/// the index; safetensors and `.bin` indexes alike), each shard with `load_file`, and checks
/// that every shard holds the tensors the index places there.
fn load_sharded(
    store: &mut TensorStore,
    index: &Path,
    load_file: LoadFile,
) -> Result<(), ConvertError> {
    let dir = index.parent().unwrap_or(Path::new("."));
    let text = std::fs::read(index).map_err(|e| ConvertError::io(index, e))?;
    let json: Value = serde_json::from_slice(&text)
        .map_err(|e| ConvertError::format(index, format!("not valid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| ConvertError::format(index, "no `weight_map` object"))?;
    // shard file -> tensors the index places there
    let mut shards: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (tensor, shard) in map {
        let shard = shard.as_str().ok_or_else(|| {
            ConvertError::format(index, format!("weight_map[{tensor}] is not a string"))
        })?;
        if shard.contains(['/', '\\']) || shard == ".." {
            return Err(ConvertError::format(
                index,
                format!("shard name {shard:?} (for {tensor}) is not a plain file name"),
            ));
        }
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
