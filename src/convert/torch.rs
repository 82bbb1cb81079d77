//! PyTorch `.bin` checkpoints (`torch.save`'s zip format): not yet supported.

use std::path::Path;

use super::error::ConvertError;
use super::store::TensorStore;

pub fn load_file(_store: &mut TensorStore, path: &Path) -> Result<(), ConvertError> {
    Err(ConvertError::format(
        path,
        "PyTorch .bin checkpoints are not supported yet; convert them to safetensors first",
    ))
}

pub fn load_index(_store: &mut TensorStore, index: &Path) -> Result<(), ConvertError> {
    Err(ConvertError::format(
        index,
        "PyTorch .bin checkpoints are not supported yet; convert them to safetensors first",
    ))
}
