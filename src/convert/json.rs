//! Typed reads of JSON configuration objects, with transformers' defaults for absent keys and
//! errors that name the file and the (dotted) key.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::ConvertError;

/// A JSON object read from `path`; `prefix` is prepended to key names in errors
/// (e.g. `text_config.`).
#[derive(Clone, Debug)]
pub struct JsonObject {
    pub path: PathBuf,
    pub prefix: String,
    pub map: Map<String, Value>,
}

impl JsonObject {
    /// Reads and parses a JSON file holding an object.
    pub fn read(path: &Path) -> Result<JsonObject, ConvertError> {
        let bytes = std::fs::read(path).map_err(|e| ConvertError::io(path, e))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ConvertError::format(path, format!("not valid JSON: {e}")))?;
        match value {
            Value::Object(map) => Ok(JsonObject {
                path: path.to_owned(),
                prefix: String::new(),
                map,
            }),
            _ => Err(ConvertError::format(path, "not a JSON object")),
        }
    }

    /// Reads `path` if it exists.
    pub fn read_optional(path: &Path) -> Result<Option<JsonObject>, ConvertError> {
        if path.is_file() {
            Self::read(path).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn err(&self, key: &str, reason: impl Into<String>) -> ConvertError {
        ConvertError::Config {
            path: self.path.clone(),
            key: format!("{}{key}", self.prefix),
            reason: reason.into(),
        }
    }

    /// The value at `key`, treating JSON null as absent (transformers writes `null` for unset).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A nested object, or None if absent.
    pub fn object(&self, key: &str) -> Result<Option<JsonObject>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(JsonObject {
                path: self.path.clone(),
                prefix: format!("{}{key}.", self.prefix),
                map: map.clone(),
            })),
            Some(_) => Err(self.err(key, "expected an object")),
        }
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected a non-negative integer, got {v}"))),
        }
    }

    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected an integer, got {v}"))),
        }
    }

    /// A positive integer that fits in u32 (sizes, counts).
    pub fn count(&self, key: &str, default: u32) -> Result<u32, ConvertError> {
        let v = self.opt_u64(key)?.unwrap_or(u64::from(default));
        match u32::try_from(v) {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(self.err(key, format!("expected a positive 32-bit integer, got {v}"))),
        }
    }

    pub fn opt_count(&self, key: &str) -> Result<Option<u32>, ConvertError> {
        match self.opt_u64(key)? {
            None => Ok(None),
            Some(v) => match u32::try_from(v) {
                Ok(v) if v > 0 => Ok(Some(v)),
                _ => Err(self.err(key, format!("expected a positive 32-bit integer, got {v}"))),
            },
        }
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected a finite number, got {v}"))),
        }
    }

    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64, ConvertError> {
        Ok(self.opt_f64(key)?.unwrap_or(default))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected a string, got {v}"))),
        }
    }

    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> Result<&'a str, ConvertError> {
        Ok(self.opt_str(key)?.unwrap_or(default))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected true or false, got {v}"))),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConvertError> {
        Ok(self.opt_bool(key)?.unwrap_or(default))
    }

    /// An array of finite numbers.
    pub fn opt_f64_array(&self, key: &str) -> Result<Option<Vec<f64>>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_f64().filter(|x| x.is_finite()))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| self.err(key, "expected an array of numbers")),
            Some(v) => Err(self.err(key, format!("expected an array, got {v}"))),
        }
    }
}
