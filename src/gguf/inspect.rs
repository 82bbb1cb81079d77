//! Human-readable and JSON listings of a GGUF file's metadata and tensors, in the spirit of
//! gguf-py's `gguf_dump.py`. Used by `llava inspect`.

use std::fmt::Write;

use serde_json::{Value, json};

use super::header::GgufHeader;
use super::value::GgufValue;

/// Array items shown before the listing says `...`, unless the full listing is asked for.
const SUMMARY_ITEMS: usize = 3;
/// Characters of a string shown before it is cut, unless the full listing is asked for.
const SUMMARY_STRING_CHARS: usize = 120;

/// Totals over a file's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    pub tensors: usize,
    pub parameters: u64,
    pub bytes: u64,
}

pub fn totals(header: &GgufHeader) -> Totals {
    Totals {
        tensors: header.tensors().len(),
        parameters: header.tensors().iter().map(|t| t.n_elements()).sum(),
        bytes: header.tensors().iter().map(|t| t.n_bytes).sum(),
    }
}

/// A text listing: file summary, metadata (key, type, value) and a tensor table. Long arrays and
/// strings are summarised unless `full`.
pub fn render_text(header: &GgufHeader, full: bool) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_text(&mut out, header, full);
    out
}

fn write_text(out: &mut String, header: &GgufHeader, full: bool) -> std::fmt::Result {
    writeln!(
        out,
        "GGUF v{}, {} bytes, alignment {}, data section at offset {}",
        header.version(),
        header.file_size(),
        header.alignment(),
        header.data_offset()
    )?;
    writeln!(out)?;
    writeln!(out, "{} metadata key(s):", header.metadata().len())?;
    for (i, entry) in header.metadata().iter().enumerate() {
        writeln!(
            out,
            "{:>5}: {:<16} {} = {}",
            i + 1,
            type_label(&entry.value),
            entry.key,
            format_value(&entry.value, full)
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{} tensor(s):", header.tensors().len())?;
    let name_width = header
        .tensors()
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:>5}  {:<name_width$}  {:<7} {:<28} {:>12} {:>12}",
        "#", "name", "type", "shape", "offset", "bytes"
    )?;
    for (i, t) in header.tensors().iter().enumerate() {
        writeln!(
            out,
            "{:>5}  {:<name_width$}  {:<7} {:<28} {:>12} {:>12}",
            i + 1,
            t.name,
            t.ggml_type.to_string(),
            format!("{:?}", t.dims),
            t.offset,
            t.n_bytes
        )?;
    }
    let totals = totals(header);
    writeln!(out)?;
    writeln!(
        out,
        "total: {} tensor(s), {} parameter(s), {} byte(s) of tensor data",
        totals.tensors, totals.parameters, totals.bytes
    )
}

/// `str`, `u32`, `arr[str]`, `arr[arr[i32]]`, ...
fn type_label(value: &GgufValue) -> String {
    match value {
        GgufValue::Array(a) => {
            let elem = match a.items().first() {
                Some(first @ GgufValue::Array(_)) => type_label(first),
                _ => a.elem_type().name().to_owned(),
            };
            format!("arr[{elem}]")
        }
        other => other.value_type().name().to_owned(),
    }
}

/// One value as text; arrays longer than [`SUMMARY_ITEMS`] summarised unless `full`.
pub fn format_value(value: &GgufValue, full: bool) -> String {
    match value {
        GgufValue::U8(v) => v.to_string(),
        GgufValue::I8(v) => v.to_string(),
        GgufValue::U16(v) => v.to_string(),
        GgufValue::I16(v) => v.to_string(),
        GgufValue::U32(v) => v.to_string(),
        GgufValue::I32(v) => v.to_string(),
        GgufValue::U64(v) => v.to_string(),
        GgufValue::I64(v) => v.to_string(),
        GgufValue::F32(v) => format_float(f64::from(*v), v.to_string()),
        GgufValue::F64(v) => format_float(*v, v.to_string()),
        GgufValue::Bool(v) => v.to_string(),
        GgufValue::String(s) => {
            let cut = s.char_indices().nth(SUMMARY_STRING_CHARS).map(|(i, _)| i);
            match cut {
                Some(at) if !full => format!("{:?}... ({} bytes)", &s[..at], s.len()),
                _ => format!("{s:?}"),
            }
        }
        GgufValue::Array(a) => {
            if full || a.len() <= SUMMARY_ITEMS {
                let items: Vec<String> = a.items().iter().map(|v| format_value(v, full)).collect();
                format!("[{}]", items.join(", "))
            } else {
                let items: Vec<String> = a.items()[..SUMMARY_ITEMS]
                    .iter()
                    .map(|v| format_value(v, full))
                    .collect();
                format!(
                    "[arr of {} {}: {}, ... ]",
                    a.len(),
                    a.elem_type().name(),
                    items.join(", ")
                )
            }
        }
    }
}

/// `shortest` (the shortest round-tripping decimal) unless the magnitude calls for an exponent.
fn format_float(v: f64, shortest: String) -> String {
    let magnitude = v.abs();
    if magnitude != 0.0 && magnitude.is_finite() && !(1e-5..1e16).contains(&magnitude) {
        // `{:e}` of the shortest decimal: re-parse it so f32 values keep their short form.
        shortest
            .parse::<f64>()
            .map_or(shortest, |x| format!("{x:e}"))
    } else {
        shortest
    }
}

/// The whole header as JSON: metadata in file order with full values, tensors, totals.
pub fn render_json(header: &GgufHeader) -> Value {
    let metadata: Vec<Value> = header
        .metadata()
        .iter()
        .map(|e| json!({"key": e.key, "type": type_label(&e.value), "value": json_value(&e.value)}))
        .collect();
    let tensors: Vec<Value> = header
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ggml_type.to_string(),
                "shape": t.dims,
                "offset": t.offset,
                "n_bytes": t.n_bytes,
            })
        })
        .collect();
    let totals = totals(header);
    json!({
        "version": header.version(),
        "file_size": header.file_size(),
        "alignment": header.alignment(),
        "data_offset": header.data_offset(),
        "metadata": metadata,
        "tensors": tensors,
        "totals": {
            "tensors": totals.tensors,
            "parameters": totals.parameters,
            "bytes": totals.bytes,
        },
    })
}

/// A value as JSON. Non-finite floats, which JSON cannot hold, become `null`.
pub fn json_value(value: &GgufValue) -> Value {
    match value {
        GgufValue::U8(v) => json!(v),
        GgufValue::I8(v) => json!(v),
        GgufValue::U16(v) => json!(v),
        GgufValue::I16(v) => json!(v),
        GgufValue::U32(v) => json!(v),
        GgufValue::I32(v) => json!(v),
        GgufValue::U64(v) => json!(v),
        GgufValue::I64(v) => json!(v),
        GgufValue::F32(v) => json!(v),
        GgufValue::F64(v) => json!(v),
        GgufValue::Bool(v) => json!(v),
        GgufValue::String(v) => json!(v),
        GgufValue::Array(a) => Value::Array(a.items().iter().map(json_value).collect()),
    }
}
