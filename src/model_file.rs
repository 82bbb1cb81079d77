//! Reading a model out of a [`GgufFile`]: typed metadata and shape-checked tensor views, with
//! one error type whose messages name the key or tensor, what was expected and what was found.
//! Shared by the language-model loader (`llm/`) and the vision loader (`vision/`).
//!
//! ```no_run
//! use llava::gguf::GgufFile;
//! use llava::model_file::{self, ModelFileError};
//! # fn main() -> Result<(), ModelFileError> {
//! let file = GgufFile::open("model.gguf")?;
//! let n_embd: usize = model_file::required(&file, "llama.embedding_length")?;
//! let eps: Option<f32> = model_file::optional(&file, "llama.attention.layer_norm_rms_epsilon")?;
//! let wq = model_file::matrix(&file, "blk.0.attn_q.weight", n_embd, n_embd)?;
//! let norm = model_file::vector_f32(&file, "blk.0.attn_norm.weight", n_embd)?;
//! # let _ = (eps, wq, norm);
//! # Ok(())
//! # }
//! ```

use crate::GgmlType;
use crate::gguf::{GgufError, GgufFile, GgufValue, TensorInfo};
use crate::kernels::matmul::QuantMatrix;
use crate::kernels::{KernelError, WeightLayout};
use crate::quant::{self, QuantError};

/// Why a model could not be read from a file.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{file}: missing metadata key `{key}` ({expected})")]
    MissingKey {
        file: String,
        key: String,
        expected: &'static str,
    },
    #[error("{file}: metadata key `{key}` should be {expected}, found {found}")]
    WrongType {
        file: String,
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("{file}: metadata key `{key}` = {value}: {reason}")]
    BadValue {
        file: String,
        key: String,
        value: String,
        reason: String,
    },
    #[error("{file}: missing tensor `{name}`")]
    MissingTensor { file: String, name: String },
    #[error("{file}: tensor `{name}` has shape {found:?}, expected {expected:?} (ggml order)")]
    TensorShape {
        file: String,
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error("{file}: tensor `{name}` has type {found}, expected one of: {allowed}")]
    TensorType {
        file: String,
        name: String,
        found: GgmlType,
        allowed: String,
    },
    #[error("{file}: tensor `{name}`: {source}")]
    TensorData {
        file: String,
        name: String,
        #[source]
        source: KernelOrQuant,
    },
    #[error("{file}: {what}")]
    Invalid { file: String, what: String },
}

/// The lower-level failure behind [`ModelFileError::TensorData`].
#[derive(Debug, thiserror::Error)]
pub enum KernelOrQuant {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Quant(#[from] QuantError),
}

/// The file's name for messages (see [`GgufFile::label`]).
pub fn file_label(file: &GgufFile) -> String {
    file.label()
}

/// A metadata value type that can be read with [`required`] / [`optional`].
pub trait MetaValue: Sized {
    /// What the value should be, for messages (e.g. "an unsigned integer").
    const EXPECTED: &'static str;
    fn from_value(value: &GgufValue) -> Option<Self>;
}

macro_rules! meta_value {
    ($ty:ty, $expected:expr, $conv:expr) => {
        impl MetaValue for $ty {
            const EXPECTED: &'static str = $expected;
            fn from_value(value: &GgufValue) -> Option<Self> {
                #[allow(clippy::redundant_closure_call)]
                ($conv)(value)
            }
        }
    };
}

meta_value!(u32, "an integer in u32 range", |v: &GgufValue| v.as_u32());
meta_value!(u64, "an integer in u64 range", |v: &GgufValue| v.as_u64());
meta_value!(usize, "a non-negative integer", |v: &GgufValue| v
    .as_usize());
meta_value!(i32, "an integer in i32 range", |v: &GgufValue| v.as_i32());
meta_value!(f32, "a float", |v: &GgufValue| v.as_f64().map(|x| x as f32));
meta_value!(f64, "a float", |v: &GgufValue| v.as_f64());
meta_value!(bool, "a bool", |v: &GgufValue| v.as_bool());
meta_value!(String, "a string", |v: &GgufValue| v
    .as_str()
    .map(str::to_owned));
meta_value!(Vec<String>, "an array of strings", |v: &GgufValue| v
    .as_string_array()
    .map(|a| a.into_iter().map(str::to_owned).collect()));
meta_value!(Vec<f32>, "an array of f32", |v: &GgufValue| v
    .as_f32_array());
meta_value!(
    Vec<i32>,
    "an array of integers in i32 range",
    |v: &GgufValue| v.as_i32_array()
);
meta_value!(
    Vec<u32>,
    "an array of integers in u32 range",
    |v: &GgufValue| v.as_u32_array()
);

/// A short description of a value found, for messages.
fn describe(value: &GgufValue) -> String {
    match value {
        GgufValue::Array(a) => format!("an array of {} {}", a.len(), a.elem_type()),
        GgufValue::String(s) if s.len() > 40 => {
            format!("string {:?}…", &s[..s.floor_char_boundary(40)])
        }
        other => format!(
            "{} {}",
            other.value_type(),
            crate::gguf::inspect::format_value(other, false)
        ),
    }
}

/// The value of `key`, which must be present and of type `T`.
pub fn required<T: MetaValue>(file: &GgufFile, key: &str) -> Result<T, ModelFileError> {
    optional(file, key)?.ok_or_else(|| ModelFileError::MissingKey {
        file: file_label(file),
        key: key.to_owned(),
        expected: T::EXPECTED,
    })
}

/// The value of `key` if present; present with another type is an error.
pub fn optional<T: MetaValue>(file: &GgufFile, key: &str) -> Result<Option<T>, ModelFileError> {
    match file.get(key) {
        None => Ok(None),
        Some(value) => T::from_value(value)
            .map(Some)
            .ok_or_else(|| ModelFileError::WrongType {
                file: file_label(file),
                key: key.to_owned(),
                expected: T::EXPECTED,
                found: describe(value),
            }),
    }
}

/// An error for a key whose value has the right type but is unusable (e.g. zero heads).
pub fn bad_value(
    file: &GgufFile,
    key: &str,
    value: impl ToString,
    reason: impl ToString,
) -> ModelFileError {
    ModelFileError::BadValue {
        file: file_label(file),
        key: key.to_owned(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// A general error about `file`.
pub fn invalid(file: &GgufFile, what: impl ToString) -> ModelFileError {
    ModelFileError::Invalid {
        file: file_label(file),
        what: what.to_string(),
    }
}

/// A tensor: its info and bytes (a view into the mmap).
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub info: &'a TensorInfo,
    pub data: &'a [u8],
}

impl<'a> TensorView<'a> {
    pub fn name(&self) -> &'a str {
        &self.info.name
    }

    pub fn ty(&self) -> GgmlType {
        self.info.ggml_type
    }

    /// Dimensions in ggml order (`dims[0]` contiguous).
    pub fn dims(&self) -> &'a [u64] {
        &self.info.dims
    }
}

/// Tensor `name`, if present.
pub fn optional_tensor<'a>(file: &'a GgufFile, name: &str) -> Option<TensorView<'a>> {
    let info = file.tensor(name)?;
    Some(TensorView {
        info,
        data: file.tensor_data(info),
    })
}

/// Tensor `name` with dimensions `dims` (ggml order, trailing 1s ignored on both sides) and a
/// type in `allowed` (any type if `allowed` is empty).
pub fn tensor<'a>(
    file: &'a GgufFile,
    name: &str,
    dims: &[u64],
    allowed: &[GgmlType],
) -> Result<TensorView<'a>, ModelFileError> {
    let view = optional_tensor(file, name).ok_or_else(|| ModelFileError::MissingTensor {
        file: file_label(file),
        name: name.to_owned(),
    })?;
    check_tensor(file, &view, dims, allowed)?;
    Ok(view)
}

fn trim_ones(dims: &[u64]) -> &[u64] {
    let mut end = dims.len();
    while end > 1 && dims[end - 1] == 1 {
        end -= 1;
    }
    &dims[..end]
}

fn check_tensor(
    file: &GgufFile,
    view: &TensorView<'_>,
    dims: &[u64],
    allowed: &[GgmlType],
) -> Result<(), ModelFileError> {
    if trim_ones(view.dims()) != trim_ones(dims) {
        return Err(ModelFileError::TensorShape {
            file: file_label(file),
            name: view.name().to_owned(),
            expected: dims.to_vec(),
            found: view.dims().to_vec(),
        });
    }
    if !allowed.is_empty() && !allowed.contains(&view.ty()) {
        return Err(ModelFileError::TensorType {
            file: file_label(file),
            name: view.name().to_owned(),
            found: view.ty(),
            allowed: allowed
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(())
}

fn data_error(file: &GgufFile, name: &str, source: impl Into<KernelOrQuant>) -> ModelFileError {
    ModelFileError::TensorData {
        file: file_label(file),
        name: name.to_owned(),
        source: source.into(),
    }
}

/// Weight `name` as a matrix of `rows` rows of `k` elements (ggml dims `[k, rows]`), of any
/// type with a dot kernel, for [`crate::kernels::matmul::matmul`]. Nothing is copied.
pub fn matrix<'a>(
    file: &'a GgufFile,
    name: &str,
    rows: usize,
    k: usize,
) -> Result<QuantMatrix<'a>, ModelFileError> {
    let view = tensor(file, name, &[k as u64, rows as u64], &[])?;
    view_as_matrix(file, &view)
}

/// Like [`matrix`], `None` if the tensor is absent (shape and type still checked if present).
pub fn optional_matrix<'a>(
    file: &'a GgufFile,
    name: &str,
    rows: usize,
    k: usize,
) -> Result<Option<QuantMatrix<'a>>, ModelFileError> {
    match optional_tensor(file, name) {
        None => Ok(None),
        Some(_) => matrix(file, name, rows, k).map(Some),
    }
}

/// Where a weight matrix lives in a file and how its bytes are arranged, checked once at load:
/// a model that owns its [`GgufFile`] keeps these (no borrow of the file) and makes the
/// zero-copy [`QuantMatrix`] view with [`MatrixRef::view`] when it multiplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixRef {
    pub ty: GgmlType,
    pub rows: usize,
    pub k: usize,
    /// ggml's, as in the file, unless the loader repacked the bytes in memory
    /// ([`crate::kernels::repack`]); a mapped file's matrices always keep ggml's.
    pub layout: WeightLayout,
    /// Byte range in [`GgufFile::bytes`].
    pub start: usize,
    pub len: usize,
}

impl MatrixRef {
    /// The matrix as a view into `file`, which must be the file it was read from.
    pub fn view<'a>(&self, file: &'a GgufFile) -> Result<QuantMatrix<'a>, KernelError> {
        let data =
            file.bytes()
                .get(self.start..self.start + self.len)
                .ok_or(KernelError::Shape {
                    what: "matrix bytes in the file",
                    expected: self.start + self.len,
                    actual: file.bytes().len(),
                })?;
        QuantMatrix::with_layout(self.ty, self.rows, self.k, self.layout, data)
    }

    /// The same matrix with its bytes in `layout` (which must hold its type and rows), for a
    /// loader that repacked them.
    pub fn in_layout(self, layout: WeightLayout) -> Result<MatrixRef, KernelError> {
        layout.check(self.ty, self.rows)?;
        Ok(MatrixRef { layout, ..self })
    }
}

/// Weight `name` as a [`MatrixRef`] of `rows` × `k` (checked as [`matrix`] does).
pub fn matrix_ref(
    file: &GgufFile,
    name: &str,
    rows: usize,
    k: usize,
) -> Result<MatrixRef, ModelFileError> {
    let m = matrix(file, name, rows, k)?;
    let info = file
        .tensor(name)
        .ok_or_else(|| ModelFileError::MissingTensor {
            file: file_label(file),
            name: name.to_owned(),
        })?;
    Ok(MatrixRef {
        ty: m.ty(),
        rows,
        k,
        layout: WeightLayout::Ggml,
        start: (file.data_offset() + info.offset) as usize,
        len: m.data().len(),
    })
}

/// Like [`matrix_ref`], `None` if the tensor is absent.
pub fn optional_matrix_ref(
    file: &GgufFile,
    name: &str,
    rows: usize,
    k: usize,
) -> Result<Option<MatrixRef>, ModelFileError> {
    match optional_tensor(file, name) {
        None => Ok(None),
        Some(_) => matrix_ref(file, name, rows, k).map(Some),
    }
}

/// A tensor viewed as a matrix: rows = product of the outer dims, k = dims[0].
pub fn view_as_matrix<'a>(
    file: &GgufFile,
    view: &TensorView<'a>,
) -> Result<QuantMatrix<'a>, ModelFileError> {
    let dims = view.dims();
    let k = dims.first().copied().unwrap_or(1) as usize;
    let rows = dims.iter().skip(1).product::<u64>() as usize;
    QuantMatrix::new(view.ty(), rows, k, view.data).map_err(|e| match e {
        KernelError::UnsupportedWeightType(ty) => ModelFileError::TensorType {
            file: file_label(file),
            name: view.name().to_owned(),
            found: ty,
            allowed: "a type with a dot kernel (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, \
                      Q2_K..Q6_K)"
                .to_owned(),
        },
        other => data_error(file, view.name(), other),
    })
}

/// All elements of a tensor converted to f32 (F32, F16, BF16 or any block type).
pub fn dequantize(file: &GgufFile, view: &TensorView<'_>) -> Result<Vec<f32>, ModelFileError> {
    let n = view.info.n_elements() as usize;
    let mut out = vec![0f32; n];
    quant::dequantize_row(view.ty(), view.data, &mut out)
        .map_err(|e| data_error(file, view.name(), e))?;
    Ok(out)
}

/// A 1-D tensor of `len` elements (a norm weight, a bias) as f32.
pub fn vector_f32(file: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>, ModelFileError> {
    let view = tensor(file, name, &[len as u64], &[])?;
    dequantize(file, &view)
}

/// Like [`vector_f32`], `None` if absent.
pub fn optional_vector_f32(
    file: &GgufFile,
    name: &str,
    len: usize,
) -> Result<Option<Vec<f32>>, ModelFileError> {
    match optional_tensor(file, name) {
        None => Ok(None),
        Some(_) => vector_f32(file, name, len).map(Some),
    }
}

/// A tensor of shape `dims` (ggml order) as f32, e.g. a convolution kernel.
pub fn tensor_f32(file: &GgufFile, name: &str, dims: &[u64]) -> Result<Vec<f32>, ModelFileError> {
    let view = tensor(file, name, dims, &[])?;
    dequantize(file, &view)
}

/// Row `row` of a matrix of any block type as f32 into `out` (length `m.k()`), e.g. one token's
/// embedding. A repacked matrix's row is unpacked with its group first (a copy of the group).
pub fn dequantize_matrix_row(
    m: &QuantMatrix<'_>,
    row: usize,
    out: &mut [f32],
) -> Result<(), KernelOrQuant> {
    if row >= m.rows() || out.len() != m.k() {
        return Err(KernelOrQuant::Kernel(KernelError::Shape {
            what: "matrix row (row index or output length)",
            expected: m.rows().min(m.k()),
            actual: row.max(out.len()),
        }));
    }
    let row_bytes = m.row_bytes();
    if m.layout() == WeightLayout::Ggml {
        let bytes = &m.data()[row * row_bytes..(row + 1) * row_bytes];
        quant::dequantize_row(m.ty(), bytes, out)?;
    } else {
        let group = m.layout().group_rows();
        let mut rows = vec![0u8; group * row_bytes];
        crate::kernels::repack::unpack_rows(m, row / group * group, &mut rows)?;
        let at = row % group * row_bytes;
        quant::dequantize_row(m.ty(), &rows[at..at + row_bytes], out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufWriter;

    fn test_file() -> GgufFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        let mut w = GgufWriter::new(&path);
        w.add_metadata("llama.block_count", GgufValue::U32(2))
            .unwrap();
        w.add_metadata("llama.rope.freq_base", GgufValue::F32(10000.0))
            .unwrap();
        w.add_metadata("general.name", "tiny").unwrap();
        let m: Vec<f32> = (0..12).map(|i| i as f32).collect();
        w.add_tensor("w", &[4, 3], GgmlType::F32).unwrap();
        w.add_tensor("norm", &[4], GgmlType::F32).unwrap();
        let mut d = w.write_header().unwrap();
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        d.write_tensor("w", &bytes(&m)).unwrap();
        d.write_tensor("norm", &bytes(&m[..4])).unwrap();
        d.finish().unwrap();
        GgufFile::open(&path).unwrap()
    }

    #[test]
    fn metadata_and_tensors_with_errors_that_name_the_problem() {
        let f = test_file();
        assert_eq!(required::<u32>(&f, "llama.block_count").unwrap(), 2);
        assert_eq!(
            required::<f32>(&f, "llama.rope.freq_base").unwrap(),
            10000.0
        );
        assert_eq!(optional::<u32>(&f, "nope").unwrap(), None);
        let e = required::<u32>(&f, "llama.context_length")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("llama.context_length") && e.contains("missing"),
            "{e}"
        );
        let e = required::<u32>(&f, "general.name").unwrap_err().to_string();
        assert!(e.contains("general.name") && e.contains("\"tiny\""), "{e}");

        let m = matrix(&f, "w", 3, 4).unwrap();
        assert_eq!((m.rows(), m.k()), (3, 4));
        let mut row = [0f32; 4];
        dequantize_matrix_row(&m, 2, &mut row).unwrap();
        assert_eq!(row, [8.0, 9.0, 10.0, 11.0]);
        assert!(dequantize_matrix_row(&m, 3, &mut row).is_err());
        let e = matrix(&f, "w", 4, 3).unwrap_err().to_string();
        assert!(
            e.contains("`w`") && e.contains("[3, 4]") && e.contains("[4, 3]"),
            "{e}"
        );
        let e = matrix(&f, "missing.weight", 4, 3).unwrap_err().to_string();
        assert!(e.contains("missing tensor `missing.weight`"), "{e}");
        let e = tensor(&f, "norm", &[4], &[GgmlType::F16])
            .unwrap_err()
            .to_string();
        assert!(e.contains("F32") && e.contains("F16"), "{e}");
        assert_eq!(vector_f32(&f, "norm", 4).unwrap(), [0.0, 1.0, 2.0, 3.0]);
        assert!(optional_vector_f32(&f, "absent", 4).unwrap().is_none());
        assert!(optional_matrix(&f, "w", 3, 4).unwrap().is_some());
        let r = matrix_ref(&f, "w", 3, 4).unwrap();
        assert_eq!(r.view(&f).unwrap().data(), m.data());
        assert!(optional_matrix_ref(&f, "nope", 3, 4).unwrap().is_none());
    }
}
