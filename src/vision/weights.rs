//! Weight matrices of a model that owns its [`GgufFile`]: the name and shape, checked at load,
//! and a zero-copy [`QuantMatrix`] view made when multiplying (a lookup by name, no copy).

use crate::gguf::GgufFile;
use crate::kernels::matmul::QuantMatrix;
use crate::model_file::{self, ModelFileError};

/// A matrix of `rows` rows of `k` elements. `flat` matrices are stored with more dimensions
/// (a convolution kernel) and viewed as rows × k of the same bytes.
#[derive(Clone, Debug)]
pub struct WeightRef {
    name: String,
    rows: usize,
    k: usize,
    dims: Option<Vec<u64>>,
}

impl WeightRef {
    /// Weight `name` with ggml dims [k, rows]; checked now.
    pub fn matrix(
        file: &GgufFile,
        name: &str,
        rows: usize,
        k: usize,
    ) -> Result<Self, ModelFileError> {
        let w = Self {
            name: name.to_owned(),
            rows,
            k,
            dims: None,
        };
        w.view(file)?;
        Ok(w)
    }

    /// Tensor `name` of ggml dims `dims` (rows × k elements in all) viewed as rows × k.
    pub fn flattened(
        file: &GgufFile,
        name: &str,
        dims: &[u64],
        rows: usize,
        k: usize,
    ) -> Result<Self, ModelFileError> {
        let w = Self {
            name: name.to_owned(),
            rows,
            k,
            dims: Some(dims.to_vec()),
        };
        w.view(file)?;
        Ok(w)
    }

    pub fn view<'a>(&self, file: &'a GgufFile) -> Result<QuantMatrix<'a>, ModelFileError> {
        match &self.dims {
            None => model_file::matrix(file, &self.name, self.rows, self.k),
            Some(dims) => {
                let t = model_file::tensor(file, &self.name, dims, &[])?;
                QuantMatrix::new(t.ty(), self.rows, self.k, t.data).map_err(|e| {
                    model_file::invalid(
                        file,
                        format!(
                            "tensor `{}` as a {} x {} matrix: {e}",
                            self.name, self.rows, self.k
                        ),
                    )
                })
            }
        }
    }
}
