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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufWriter;

    fn context_of(metadata: Vec<(&str, GgufValue)>) -> Result<ModelContext, QuantizeError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let mut writer = GgufWriter::new(&path);
        for (key, value) in metadata {
            writer.add_metadata(key, value).unwrap();
        }
        writer.write_header().unwrap().finish().unwrap();
        model_context(&GgufFile::open(&path).unwrap())
    }

    #[test]
    fn reads_llama_hparams_with_defaults() {
        let ctx = context_of(vec![
            ("general.architecture", "llama".into()),
            ("llama.block_count", 32u32.into()),
            ("llama.attention.head_count", 32u32.into()),
        ])
        .unwrap();
        assert_eq!(
            (ctx.n_layers, ctx.n_head, ctx.n_head_kv, ctx.n_expert),
            (32, 32, 32, 0)
        );
        let ctx = context_of(vec![
            ("general.architecture", "llama".into()),
            ("llama.block_count", 60u32.into()),
            ("llama.attention.head_count", vec![56u32, 56].into()),
            ("llama.attention.head_count_kv", 8u32.into()),
            ("llama.expert_count", 8u32.into()),
        ])
        .unwrap();
        assert_eq!(
            (ctx.n_layers, ctx.n_head, ctx.n_head_kv, ctx.n_expert),
            (60, 56, 8, 8)
        );
        assert_eq!(ctx.n_gqa(), 7);
    }

    #[test]
    fn clip_has_no_hparams() {
        let ctx = context_of(vec![
            ("general.architecture", "clip".into()),
            ("clip.vision.block_count", 23u32.into()),
        ])
        .unwrap();
        assert_eq!(ctx, ModelContext::clip());
    }

    #[test]
    fn missing_or_mistyped_keys_are_named() {
        let err = context_of(vec![("general.architecture", "llama".into())]).unwrap_err();
        assert_eq!(err.to_string(), "metadata key llama.block_count is missing");
        let err = context_of(vec![("general.name", "x".into())]).unwrap_err();
        assert!(err.to_string().contains("general.architecture"));
        let err = context_of(vec![
            ("general.architecture", "llama".into()),
            ("llama.block_count", "many".into()),
        ])
        .unwrap_err();
        assert!(matches!(err, QuantizeError::BadKey { .. }), "{err}");
    }
}
