//! NumPy `.npy` files (format version 1.0 and 2.0), little-endian `f32`, `i32` and `i64`,
//! C order: what `--dump` writes and the fixtures' reference outputs are read from.
//!
//! Writing goes through a temporary file renamed into place, like every output of llava-rs.

use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// An element type this module reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyDtype {
    F32,
    I32,
    I64,
}

impl NpyDtype {
    fn descr(self) -> &'static str {
        match self {
            NpyDtype::F32 => "<f4",
            NpyDtype::I32 => "<i4",
            NpyDtype::I64 => "<i8",
        }
    }

    fn size(self) -> usize {
        match self {
            NpyDtype::F32 | NpyDtype::I32 => 4,
            NpyDtype::I64 => 8,
        }
    }

    fn from_descr(descr: &str) -> Option<NpyDtype> {
        match descr {
            "<f4" => Some(NpyDtype::F32),
            "<i4" => Some(NpyDtype::I32),
            "<i8" => Some(NpyDtype::I64),
            _ => None,
        }
    }
}

/// Errors reading or writing a `.npy` file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a .npy file: {reason}")]
    Format { path: String, reason: String },
    #[error("{path}: holds {found:?} elements, expected {expected:?}")]
    Dtype {
        path: String,
        found: NpyDtype,
        expected: NpyDtype,
    },
    #[error("{what}: shape {shape:?} needs {needed} elements, got {got}")]
    Shape {
        what: String,
        shape: Vec<usize>,
        needed: usize,
        got: usize,
    },
}

/// An array read from a `.npy` file: its shape and its elements in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

/// Element types that can be stored.
pub trait NpyElement: Copy {
    const DTYPE: NpyDtype;
    fn write_le(self, out: &mut Vec<u8>);
    fn read_le(bytes: &[u8]) -> Self;
}

impl NpyElement for f32 {
    const DTYPE: NpyDtype = NpyDtype::F32;
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read_le(bytes: &[u8]) -> Self {
        f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

impl NpyElement for i32 {
    const DTYPE: NpyDtype = NpyDtype::I32;
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read_le(bytes: &[u8]) -> Self {
        i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

impl NpyElement for i64 {
    const DTYPE: NpyDtype = NpyDtype::I64;
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read_le(bytes: &[u8]) -> Self {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[..8]);
        i64::from_le_bytes(b)
    }
}

/// The bytes of a `.npy` file (version 1.0) holding `data` with `shape`.
pub fn encode<T: NpyElement>(shape: &[usize], data: &[T]) -> Result<Vec<u8>, NpyError> {
    let needed = shape.iter().product::<usize>();
    if needed != data.len() {
        return Err(NpyError::Shape {
            what: "npy array".into(),
            shape: shape.to_vec(),
            needed,
            got: data.len(),
        });
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        T::DTYPE.descr(),
        shape_text
    );
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * T::DTYPE.size());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in data {
        v.write_le(&mut out);
    }
    Ok(out)
}

/// Writes `data` with `shape` to `path` atomically (temporary file, then rename).
pub fn write<T: NpyElement>(
    path: impl AsRef<Path>,
    shape: &[usize],
    data: &[T],
) -> Result<(), NpyError> {
    let path = path.as_ref();
    let io = |source| NpyError::Io {
        path: path.display().to_string(),
        source,
    };
    let bytes = encode(shape, data)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(&bytes).map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Reads a `.npy` file of element type `T`.
pub fn read<T: NpyElement>(path: impl AsRef<Path>) -> Result<NpyArray<T>, NpyError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: name.clone(),
        source,
    })?;
    decode(&bytes, &name)
}

/// Parses the bytes of a `.npy` file; `name` is used in errors.
pub fn decode<T: NpyElement>(bytes: &[u8], name: &str) -> Result<NpyArray<T>, NpyError> {
    let bad = |reason: &str| NpyError::Format {
        path: name.to_string(),
        reason: reason.to_string(),
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unsupported format version")),
    };
    let data_start = header_start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| bad("header runs past the end of the file"))?;
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| bad("header is not UTF-8"))?;
    let descr = dict_value(header, "descr").ok_or_else(|| bad("no 'descr' in the header"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let dtype = NpyDtype::from_descr(descr).ok_or_else(|| {
        bad(&format!(
            "unsupported dtype {descr} (f4, i4, i8 little-endian)"
        ))
    })?;
    if dtype != T::DTYPE {
        return Err(NpyError::Dtype {
            path: name.to_string(),
            found: dtype,
            expected: T::DTYPE,
        });
    }
    let fortran = dict_value(header, "fortran_order").unwrap_or("False");
    if fortran.trim() != "False" {
        return Err(bad("Fortran order is not supported"));
    }
    let shape_text = dict_value(header, "shape").ok_or_else(|| bad("no 'shape' in the header"))?;
    let shape = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad("bad dimension in 'shape'"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad("shape overflows"))?;
    let payload = &bytes[data_start..];
    if count.checked_mul(dtype.size()) != Some(payload.len()) {
        return Err(bad(&format!(
            "shape {shape:?} needs {count} elements, the file holds {} bytes of data",
            payload.len()
        )));
    }
    let data = payload.chunks_exact(dtype.size()).map(T::read_le).collect();
    Ok(NpyArray { shape, data })
}

/// The text of `key`'s value in the header's Python dict literal (values here never contain a
/// comma outside parentheses).
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let quoted = [format!("'{key}'"), format!("\"{key}\"")];
    let at = quoted
        .iter()
        .find_map(|q| header.find(q.as_str()).map(|i| i + q.len()))?;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0usize;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_dtype_and_rank() {
        let f = encode(&[2, 3], &[1.0f32, -2.5, 3.0, 0.0, f32::MAX, -0.0]).unwrap();
        let back: NpyArray<f32> = decode(&f, "f").unwrap();
        assert_eq!(back.shape, vec![2, 3]);
        assert_eq!(back.data[4], f32::MAX);
        assert!(back.data[5].is_sign_negative());
        let i = encode(&[4], &[1i32, -1, i32::MIN, i32::MAX]).unwrap();
        assert_eq!(
            decode::<i32>(&i, "i").unwrap().data,
            vec![1, -1, i32::MIN, i32::MAX]
        );
        let l = encode::<i64>(&[0, 5], &[]).unwrap();
        assert_eq!(decode::<i64>(&l, "l").unwrap().shape, vec![0, 5]);
        let s = encode(&[], &[7i64]).unwrap();
        assert_eq!(
            decode::<i64>(&s, "s").unwrap(),
            NpyArray {
                shape: vec![],
                data: vec![7]
            }
        );
    }

    #[test]
    fn header_is_aligned_to_64_bytes() {
        for n in 0..70 {
            let bytes = encode(&[n], &vec![0f32; n]).unwrap();
            assert_eq!((bytes.len() - n * 4) % 64, 0, "n = {n}");
        }
    }

    #[test]
    fn refuses_bad_files_with_reasons() {
        let good = encode(&[3], &[1.0f32, 2.0, 3.0]).unwrap();
        assert!(matches!(
            decode::<i32>(&good, "x"),
            Err(NpyError::Dtype {
                found: NpyDtype::F32,
                ..
            })
        ));
        for cut in 0..good.len() {
            assert!(decode::<f32>(&good[..cut], "x").is_err(), "cut at {cut}");
        }
        let mut wrong_magic = good.clone();
        wrong_magic[1] = b'X';
        let err = decode::<f32>(&wrong_magic, "x.npy")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.npy") && err.contains("magic"), "{err}");
        assert!(encode(&[2, 2], &[1.0f32]).is_err());
    }

    #[test]
    fn write_then_read_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        write(&path, &[2, 2], &[1i32, 2, 3, 4]).unwrap();
        let back: NpyArray<i32> = read(&path).unwrap();
        assert_eq!(back.data, vec![1, 2, 3, 4]);
        let missing = read::<f32>(dir.path().join("none.npy"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("none.npy"), "{missing}");
    }
}
