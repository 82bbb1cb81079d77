//! The model facts the mix rules need, read from a GGUF file's metadata the way llama.cpp's
//! `llama_model::load_hparams` reads them.

use super::error::QuantizeError;
use super::mix::ModelContext;
use crate::gguf::{GgufFile, GgufValue};

/// `general.architecture`, then for anything but `clip`: `<arch>.block_count` (required),
/// `<arch>.attention.head_count`, `<arch>.attention.head_count_kv` (default: head_count) and
/// `<arch>.expert_count` (default 0). Per-layer head counts use layer 0, as `n_gqa()` does.
pub fn model_context(file: &GgufFile) -> Result<ModelContext, QuantizeError> {
    let arch = match file.get("general.architecture") {
        None => return Err(missing("general.architecture")),
        Some(value) => value.as_str().ok_or_else(|| QuantizeError::BadKey {
            key: "general.architecture".to_owned(),
            expected: "a string",
        })?,
    };
    if arch == "clip" {
        // llama.cpp loads no hyper-parameters for mmproj files.
        return Ok(ModelContext::clip());
    }
    let key = |suffix: &str| format!("{arch}.{suffix}");
    let n_layers =
        u32_key(file, &key("block_count"))?.ok_or_else(|| missing(&key("block_count")))?;
    let n_head = u32_key(file, &key("attention.head_count"))?.unwrap_or(0);
    let n_head_kv = u32_key(file, &key("attention.head_count_kv"))?.unwrap_or(n_head);
    let n_expert = u32_key(file, &key("expert_count"))?.unwrap_or(0);
    Ok(ModelContext {
        arch: arch.to_owned(),
        n_layers,
        n_head,
        n_head_kv,
        n_expert,
    })
}

fn missing(key: &str) -> QuantizeError {
    QuantizeError::MissingKey {
        key: key.to_owned(),
    }
}

/// An unsigned 32-bit key, or the first item of a per-layer array of them.
fn u32_key(file: &GgufFile, key: &str) -> Result<Option<u32>, QuantizeError> {
    let Some(value) = file.get(key) else {
        return Ok(None);
    };
    let scalar = match value {
        GgufValue::Array(_) => value
            .as_u32_array()
            .and_then(|items| items.first().copied()),
        _ => value.as_u32(),
    };
    scalar.map(Some).ok_or_else(|| QuantizeError::BadKey {
        key: key.to_owned(),
        expected: "an unsigned 32-bit integer (or a non-empty array of them)",
    })
}
