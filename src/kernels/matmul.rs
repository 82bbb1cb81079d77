//! Matrix products on top of the kernel table.
//!
//! [`matmul`]: `Y = X·Wᵀ` for a weight matrix `W` [rows × k] of any type with a dot kernel (as
//! stored in GGUF, zero-copy from the mmap) and f32 activations `X` [n × k], giving `Y`
//! [n × rows], all row-major. Each row of X is converted once to the paired activation type,
//! then n = 1 (decoding, bound by memory bandwidth) goes to [`super::decode`] and n > 1
//! (prompts, image tokens: bound by compute) to the GEMM tiles of [`super::gemm`].
//!
//! Attention uses [`matmul_f32`] (`Q·Kᵀ` with f32 K), [`matmul_f16`] (K or Vᵀ stored as f16,
//! dotted in F16 as ggml does) and [`matmul_nn_f32`] (`P·V`, V not transposed).
//!
//! Parallel work runs on the current rayon pool: use `ThreadPool::install` to choose the
//! thread count.

use rayon::prelude::*;

use super::{KernelError, Kernels, WeightLayout, activation_type, bytes_of};
use crate::GgmlType;

/// A weight matrix `[rows × k]` of type `ty`: in ggml's layout, `rows` rows of `k` elements,
/// each `row_bytes` long, back to back (e.g. a tensor's bytes in a GGUF mmap); or repacked at
/// load into another [`WeightLayout`] of the same size.
#[derive(Clone, Copy, Debug)]
pub struct QuantMatrix<'a> {
    ty: GgmlType,
    layout: WeightLayout,
    rows: usize,
    k: usize,
    row_bytes: usize,
    data: &'a [u8],
}

impl<'a> QuantMatrix<'a> {
    /// A view of `data` as `rows` rows of `k` elements of `ty`; `data` must be exactly that
    /// long and `ty` must have a dot kernel.
    pub fn new(ty: GgmlType, rows: usize, k: usize, data: &'a [u8]) -> Result<Self, KernelError> {
        QuantMatrix::with_layout(ty, rows, k, WeightLayout::Ggml, data)
    }

    /// As [`QuantMatrix::new`], the bytes in `layout` (which must hold `ty` and `rows`; see
    /// [`super::repack`]).
    pub fn with_layout(
        ty: GgmlType,
        rows: usize,
        k: usize,
        layout: WeightLayout,
        data: &'a [u8],
    ) -> Result<Self, KernelError> {
        layout.check(ty, rows)?;
        activation_type(ty).ok_or(KernelError::UnsupportedWeightType(ty))?;
        let row_bytes = bytes_of(ty, k)?;
        let expected = row_bytes.checked_mul(rows).ok_or(KernelError::Shape {
            what: "weight matrix bytes (overflow)",
            expected: usize::MAX,
            actual: data.len(),
        })?;
        check("weight matrix bytes", data.len(), expected)?;
        Ok(QuantMatrix {
            ty,
            layout,
            rows,
            k,
            row_bytes,
            data,
        })
    }

    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    pub fn layout(&self) -> WeightLayout {
        self.layout
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// The bytes of one row (in ggml's layout; a group of `g` repacked rows takes `g` times
    /// as many).
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

fn check(what: &'static str, actual: usize, expected: usize) -> Result<(), KernelError> {
    if actual != expected {
        return Err(KernelError::Shape {
            what,
            expected,
            actual,
        });
    }
    Ok(())
}

/// Checks that a buffer holds exactly `rows × cols` elements (an overflowing product is a shape
/// error too).
fn check_matrix(
    what: &'static str,
    actual: usize,
    rows: usize,
    cols: usize,
) -> Result<(), KernelError> {
    check(what, actual, product(what, rows, cols, actual)?)
}

/// `n * m`, or a shape error naming `what`.
fn product(what: &'static str, n: usize, m: usize, actual: usize) -> Result<usize, KernelError> {
    n.checked_mul(m).ok_or(KernelError::Shape {
        what,
        expected: usize::MAX,
        actual,
    })
}

/// Converts the `n` rows of `x` ([n × k]) to `act_type`, row after row.
fn quantize_rows(
    kernels: &Kernels,
    act_type: GgmlType,
    x: &[f32],
    k: usize,
    act_row_bytes: usize,
) -> Result<Vec<u8>, KernelError> {
    let n = x.len() / k.max(1);
    let mut out = vec![0u8; product("activation bytes", n, act_row_bytes, 0)?];
    if n == 0 || k == 0 {
        return Ok(out);
    }
    let quantize = kernels
        .act
        .get(act_type)
        .ok_or(KernelError::UnsupportedActivationType(act_type))?;
    if n == 1 {
        quantize(x, &mut out);
    } else {
        out.par_chunks_mut(act_row_bytes)
            .zip(x.par_chunks(k))
            .for_each(|(dst, src)| quantize(src, dst));
    }
    Ok(out)
}

/// `Y = X·Wᵀ`: `x` is [n × w.k()], `y` [n × w.rows()], both row-major f32.
pub fn matmul(
    kernels: &Kernels,
    w: &QuantMatrix<'_>,
    x: &[f32],
    n: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    let (rows, k) = (w.rows, w.k);
    check_matrix("activation elements (n × k)", x.len(), n, k)?;
    check_matrix("output elements (n × rows)", y.len(), n, rows)?;
    let act_type = activation_type(w.ty).ok_or(KernelError::UnsupportedWeightType(w.ty))?;
    kernels
        .vec_dot(w.ty)
        .ok_or(KernelError::UnsupportedWeightType(w.ty))?;
    let act_row_bytes = bytes_of(act_type, k)?;
    if n == 0 || rows == 0 {
        return Ok(());
    }
    if k == 0 {
        y.fill(0.0);
        return Ok(());
    }
    // F32 activations are their own bytes: no copy (attention's products multiply
    // 128 × 577 scores per call).
    let converted;
    let acts = if act_type == GgmlType::F32 {
        f32_bytes(x)
    } else {
        converted = quantize_rows(kernels, act_type, x, k, act_row_bytes)?;
        &converted
    };

    if n == 1 {
        return super::decode::matmul_decode(kernels, w, acts, y);
    }
    super::gemm::matmul_tiled(kernels, w, acts, act_row_bytes, n, y)
}

/// `Y = X·Wᵀ` with f16 weights (e.g. a K cache stored as f16): `w` holds `rows` rows of `k`
/// f16 values, little-endian. X is rounded to f16 first, as ggml does.
pub fn matmul_f16(
    kernels: &Kernels,
    w: &[u8],
    rows: usize,
    k: usize,
    x: &[f32],
    n: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    let w = QuantMatrix::new(GgmlType::F16, rows, k, w)?;
    matmul(kernels, &w, x, n, y)
}

/// `Y = X·Wᵀ` in f32: `x` [n × k], `w` [rows × k], `y` [n × rows] (e.g. attention scores
/// `Q·Kᵀ`). Through [`matmul`] with F32 weights on the start-up tier ([`super::kernels`]): its
/// F32 dot for n = 1, its F32 gemm tiles for n > 1. Products and sums in f32.
pub fn matmul_f32(
    x: &[f32],
    n: usize,
    w: &[f32],
    rows: usize,
    k: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    check_matrix("activation elements (n × k)", x.len(), n, k)?;
    check_matrix("weight elements (rows × k)", w.len(), rows, k)?;
    check_matrix("output elements (n × rows)", y.len(), n, rows)?;
    let w = QuantMatrix::new(GgmlType::F32, rows, k, f32_bytes(w))?;
    matmul(super::kernels(), &w, x, n, y)
}

/// As [`matmul_f32`], computed in the calling task: for callers that already run one task per
/// thread (attention, one per head), where splitting each product among threads would only
/// repack its operands once more per task. Through the start-up tier's token-major packed
/// tile where it has one and `n` is large enough for packing to pay, else [`matmul_f32`].
pub fn matmul_f32_in_task(
    x: &[f32],
    n: usize,
    w: &[f32],
    rows: usize,
    k: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    let kernels = super::kernels();
    if n < super::gemm::PACKED_MIN_TOKENS_FLOAT
        || kernels.packed_token_major.f32.is_none()
        || k == 0
    {
        return matmul_f32(x, n, w, rows, k, y);
    }
    check_matrix("activation elements (n × k)", x.len(), n, k)?;
    check_matrix("weight elements (rows × k)", w.len(), rows, k)?;
    check_matrix("output elements (n × rows)", y.len(), n, rows)?;
    let row_bytes = product("row bytes", k, 4, 0)?;
    kernels.gemm_tile_token_major(
        GgmlType::F32,
        k,
        f32_bytes(w),
        row_bytes,
        rows,
        f32_bytes(x),
        row_bytes,
        n,
        y,
        rows,
    )
}

/// The bytes of `v` (little-endian f32, as GGUF stores F32 and the F32 kernels read).
fn f32_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding or invalid bit patterns and u8 has alignment 1, so the
    // 4·len bytes of the slice are a valid &[u8] for its lifetime (x86-64 and aarch64 are
    // little-endian, the byte order the kernels read).
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// `Y = P·V` in f32: `p` [n × m], `v` [m × d] (not transposed), `y` [n × d] (e.g. attention
/// weights times values). V is transposed once (m·d copies, small beside n·m·d products), then
/// multiplied as in [`matmul_f32`].
pub fn matmul_nn_f32(
    p: &[f32],
    n: usize,
    m: usize,
    v: &[f32],
    d: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    check_matrix("left elements (n × m)", p.len(), n, m)?;
    check_matrix("right elements (m × d)", v.len(), m, d)?;
    check_matrix("output elements (n × d)", y.len(), n, d)?;
    if n == 0 || d == 0 {
        return Ok(());
    }
    let mut v_t = vec![0f32; d * m];
    for (j, row) in v.chunks_exact(d).enumerate() {
        for (c, &value) in row.iter().enumerate() {
            v_t[c * m + j] = value;
        }
    }
    matmul_f32(p, n, &v_t, d, m, y)
}
