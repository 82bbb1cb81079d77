//! The scalar reference kernels: the table every tier starts from and is tested against.

use super::{ActKernels, DotKernels, GemmKernels, Kernels, Tier, VecDotFn};
use crate::GgmlType;
use crate::quant;

/// The scalar table.
pub const KERNELS: Kernels = Kernels {
    tier: Tier::Scalar,
    dot: DOT,
    gemm: GemmKernels::NONE,
    act: ACT,
};

/// Scalar dot products.
pub const DOT: DotKernels = DotKernels {
    q4_0: dot_q4_0,
    q4_1: dot_q4_1,
    q5_0: dot_q5_0,
    q5_1: dot_q5_1,
    q8_0: dot_q8_0,
    q2_k: dot_q2_k,
    q3_k: dot_q3_k,
    q4_k: dot_q4_k,
    q5_k: dot_q5_k,
    q6_k: dot_q6_k,
    f16: dot_f16,
    bf16: dot_bf16,
    f32: dot_f32,
};

/// Scalar activation quantizers.
pub const ACT: ActKernels = ActKernels {
    q8_0: quantize_act_q8_0,
    q8_1: quantize_act_q8_1,
    q8_k: quantize_act_q8_k,
    f16: quantize_act_f16,
    bf16: quantize_act_bf16,
    f32: quantize_act_f32,
};

/// Dequantizes both rows and sums the products in f32 (provisional reference).
fn dot_dequantized(w_type: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    let act_type = super::activation_type(w_type).expect("weight type has a kernel");
    let w_len = quant::row_bytes(w_type, n).expect("whole blocks");
    let a_len = quant::row_bytes(act_type, n).expect("whole blocks");
    let mut wf = vec![0f32; n];
    let mut af = vec![0f32; n];
    quant::dequantize_row(w_type, &w[..w_len], &mut wf).expect("weight row");
    quant::dequantize_row(act_type, &a[..a_len], &mut af).expect("activation row");
    wf.iter().zip(&af).map(|(x, y)| x * y).sum()
}

macro_rules! dequantized_dots {
    ($($name:ident => $ty:ident),+ $(,)?) => {$(
        #[doc = concat!("Dot product of a ", stringify!($ty), " weight row with its activations.")]
        pub fn $name(n: usize, w: &[u8], a: &[u8]) -> f32 {
            dot_dequantized(GgmlType::$ty, n, w, a)
        }
    )+};
}

dequantized_dots! {
    dot_q4_0 => Q4_0, dot_q4_1 => Q4_1, dot_q5_0 => Q5_0, dot_q5_1 => Q5_1, dot_q8_0 => Q8_0,
    dot_q2_k => Q2_K, dot_q3_k => Q3_K, dot_q4_k => Q4_K, dot_q5_k => Q5_K, dot_q6_k => Q6_K,
    dot_f16 => F16, dot_bf16 => BF16, dot_f32 => F32,
}

macro_rules! act_quantizers {
    ($($name:ident => $ty:ident),+ $(,)?) => {$(
        #[doc = concat!("Converts an f32 row to ", stringify!($ty), " activations.")]
        pub fn $name(x: &[f32], out: &mut [u8]) {
            quant::quantize_row(GgmlType::$ty, x, out).expect("activation row shape");
        }
    )+};
}

act_quantizers! {
    quantize_act_q8_0 => Q8_0, quantize_act_q8_1 => Q8_1, quantize_act_q8_k => Q8_K,
    quantize_act_f16 => F16, quantize_act_bf16 => BF16, quantize_act_f32 => F32,
}

/// A tile of dot products by looping `dot` (see [`super::GemmTileFn`]).
#[allow(clippy::too_many_arguments)]
pub fn gemm_tile_by_dots(
    dot: VecDotFn,
    n: usize,
    w: &[u8],
    w_stride: usize,
    rows: usize,
    a: &[u8],
    a_stride: usize,
    cols: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    for r in 0..rows {
        let w_row = &w[r * w_stride..];
        for c in 0..cols {
            out[r * out_stride + c] = dot(n, w_row, &a[c * a_stride..]);
        }
    }
}
