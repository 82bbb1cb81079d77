//! The tensor operations the models are built from, shared by the language model (`llm/`) and
//! the vision encoder (`vision/`). All work on row-major f32 buffers: a "row" is one token's
//! vector. Matrix products go through [`crate::kernels::matmul`]; everything here is plain
//! (vectorisable) Rust, with sums that decide accuracy (norms, softmax) accumulated in f64 as
//! ggml does.
//!
//! - [`norm`]: RMSNorm (LLaMA) and LayerNorm with weight and bias (CLIP);
//! - [`rope`]: rotary position embedding in llama.cpp's "normal" layout (adjacent pairs);
//! - [`softmax`]: numerically safe softmax over rows;
//! - [`attention`]: scaled dot-product attention, causal or not, grouped-query;
//! - [`activation`]: SiLU / SwiGLU, GELU (erf), quick GELU;
//! - [`elementwise`]: add / mul / scale helpers;
//! - [`linear`]: `y = x·Wᵀ (+ b)` over a weight of any block type.

pub mod activation;
pub mod attention;
mod attention_decode;
pub mod elementwise;
pub mod linear;
pub mod norm;
pub mod rope;
pub mod softmax;

pub use activation::{gelu, gelu_in_place, quick_gelu, quick_gelu_in_place, silu, swiglu};
pub use attention::{AttentionParams, KvRows, attention};
pub use elementwise::{
    add_in_place, add_rows_in_place, mul_in_place, mul_rows_in_place, scale_in_place,
};
pub use linear::{linear, linear_into};
pub use norm::{layer_norm, rms_norm};
pub use rope::{RopeParams, rope};
pub use softmax::{softmax_in_place, softmax_rows_in_place};

use crate::kernels::KernelError;

/// Why an op could not run: buffers whose lengths do not fit the shape it was given. These
/// are programming errors of the caller or shapes from a bad file, reported instead of a panic.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum OpError {
    #[error("{op}: {what}: expected {expected}, got {actual}")]
    Shape {
        op: &'static str,
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("{op}: {reason}")]
    Invalid { op: &'static str, reason: String },
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// Checks `actual == expected` for op `op`.
pub(crate) fn check_len(
    op: &'static str,
    what: &'static str,
    actual: usize,
    expected: usize,
) -> Result<(), OpError> {
    if actual != expected {
        return Err(OpError::Shape {
            op,
            what,
            expected,
            actual,
        });
    }
    Ok(())
}

/// Checks that `len` is a whole number of rows of `dim` (dim > 0) and returns the row count.
pub(crate) fn rows_of(
    op: &'static str,
    what: &'static str,
    len: usize,
    dim: usize,
) -> Result<usize, OpError> {
    if dim == 0 || !len.is_multiple_of(dim) {
        return Err(OpError::Shape {
            op,
            what,
            expected: dim * len.div_ceil(dim.max(1)),
            actual: len,
        });
    }
    Ok(len / dim)
}

/// `Σ f(v)` in f64, in eight interleaved partial sums (one running sum waits on each add).
pub(crate) fn sum_f64(v: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(f64::from(x));
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&x| f(f64::from(x))).sum();
    acc.iter().sum::<f64>() + tail
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Deterministic pseudo-random values in [-scale, scale) (xorshift), for op tests.
    pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// max |a - b| / max |b|.
    pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        let max_ref = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
        let max_diff = a
            .iter()
            .zip(b)
            .fold(0f64, |m, (x, y)| m.max((*x as f64 - y).abs()));
        max_diff / max_ref
    }
}
