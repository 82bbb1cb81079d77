//! Finding and opening a directory's weights, whatever their format.

use std::path::Path;

use super::error::ConvertError;
use super::safetensors;
use super::store::TensorStore;

/// Loads the checkpoint in `dir`: a safetensors index, `model.safetensors`, other
/// `*.safetensors` files, a PyTorch `.bin` index or `pytorch_model.bin`, in that order.
pub fn load_dir(dir: &Path) -> Result<TensorStore, ConvertError> {
    let mut store = TensorStore::default();
    let st_index = dir.join("model.safetensors.index.json");
    if st_index.is_file() {
        safetensors::load_index(&mut store, &st_index)?;
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
        super::torch::load_index(&mut store, &bin_index)?;
        return Ok(store);
    }
    let bin = dir.join("pytorch_model.bin");
    if bin.is_file() {
        super::torch::load_file(&mut store, &bin)?;
        return Ok(store);
    }
    Err(ConvertError::NoWeights {
        dir: dir.to_owned(),
    })
}
