//! Stamps out one x86 kernel variant: for a set of target features and a [`Mac`], a module of
//! `#[target_feature]` functions instantiating the generic bodies (`dot.rs`, `act.rs`), each
//! behind a safe wrapper with the table's signature that checks the slice lengths.
//!
//! [`Mac`]: super::common::Mac

/// `x86_variant!(module_name, "feature,list", MacType, tile_rows, tile_cols, FloatLanes,
/// float_tile_rows, float_tile_cols, PackedIsa, packed_groups, packed_tokens,
/// float_packed_groups, float_packed_tokens);` (the float tiles' shape is separate: they hold
/// `rows × cols` vector accumulators, see `float_tile.rs`; the packed tiles hold `groups`
/// vectors of rows × `tokens`, see `packed.rs` and `float_packed.rs`).
macro_rules! x86_variant {
    ($module:ident, $features:literal, $mac:ty, $tile_r:literal, $tile_c:literal,
     $lanes:ty, $ftile_r:literal, $ftile_c:literal,
     $pk:ty, $pk_r:literal, $pk_c:literal, $fpk_r:literal, $fpk_c:literal) => {
        pub(crate) mod $module {
            #![allow(clippy::missing_safety_doc)]
            use crate::kernels::x86::{act, dot, float_packed, float_tile, packed, tile};

            /// A dot product over whole blocks: `$w_block`/`$a_block` elements, `$w_bytes`/
            /// `$a_bytes` bytes per block.
            macro_rules! block_dot {
                ($name:ident, $body:ident, $elems:expr, $w_bytes:expr, $a_bytes:expr) => {
                    #[target_feature(enable = $features)]
                    unsafe fn $body(nb: usize, w: *const u8, a: *const u8) -> f32 {
                        // SAFETY: forwarded contract (whole blocks behind both pointers); the
                        // features the body needs are enabled on this function.
                        unsafe { dot::$body::<$mac>(nb, w, a) }
                    }

                    /// Safe entry for the kernel table.
                    pub(crate) fn $name(n: usize, w: &[u8], a: &[u8]) -> f32 {
                        let nb = n / $elems;
                        assert!(
                            n.is_multiple_of($elems)
                                && w.len() >= nb * $w_bytes
                                && a.len() >= nb * $a_bytes,
                            "{}: {n} elements need whole blocks and {} + {} bytes (got {} + {})",
                            stringify!($name),
                            nb * $w_bytes,
                            nb * $a_bytes,
                            w.len(),
                            a.len()
                        );
                        // SAFETY: only reachable through a kernel table built after detecting
                        // this variant's features; the lengths were checked above.
                        unsafe { $body(nb, w.as_ptr(), a.as_ptr()) }
                    }
                };
            }

            block_dot!(vec_dot_q4_0_q8_0, q4_0, 32, 18, 34);
            block_dot!(vec_dot_q4_1_q8_1, q4_1, 32, 20, 36);
            block_dot!(vec_dot_q5_0_q8_0, q5_0, 32, 22, 34);
            block_dot!(vec_dot_q5_1_q8_1, q5_1, 32, 24, 36);
            block_dot!(vec_dot_q8_0_q8_0, q8_0, 32, 34, 34);
            block_dot!(vec_dot_q2_k_q8_k, q2_k, 256, 84, 292);
            block_dot!(vec_dot_q3_k_q8_k, q3_k, 256, 110, 292);
            block_dot!(vec_dot_q4_k_q8_k, q4_k, 256, 144, 292);
            block_dot!(vec_dot_q5_k_q8_k, q5_k, 256, 176, 292);
            block_dot!(vec_dot_q6_k_q8_k, q6_k, 256, 210, 292);
            block_dot!(vec_dot_f16, float16, 1, 2, 2);
            block_dot!(vec_dot_bf16, bfloat16, 1, 2, 2);
            block_dot!(vec_dot_f32, float32, 1, 4, 4);

            /// An activation quantizer: `$elems` floats to `$bytes` bytes per block.
            macro_rules! act_quant {
                ($name:ident, $inner:ident, $body:ident, $elems:expr, $bytes:expr) => {
                    #[target_feature(enable = $features)]
                    unsafe fn $inner(x: &[f32], out: &mut [u8]) {
                        // SAFETY: forwarded length contract; features enabled on this function.
                        unsafe { act::$body(x, out) }
                    }

                    /// Safe entry for the kernel table.
                    pub(crate) fn $name(x: &[f32], out: &mut [u8]) {
                        assert!(
                            x.len().is_multiple_of($elems)
                                && out.len() == x.len() / $elems * $bytes,
                            "{}: {} floats need whole blocks and {} output bytes (got {})",
                            stringify!($name),
                            x.len(),
                            x.len() / $elems * $bytes,
                            out.len()
                        );
                        // SAFETY: only reachable through a kernel table built after detecting
                        // this variant's features; the lengths were checked above.
                        unsafe { $inner(x, out) }
                    }
                };
            }

            #[target_feature(enable = $features)]
            fn swiglu_tf(gate: &mut [f32], up: &[f32]) {
                crate::kernels::unary::swiglu_slice(gate, up)
            }

            /// Safe entry for the kernel table (the loop, compiled with this variant's features).
            pub(crate) fn swiglu(gate: &mut [f32], up: &[f32]) {
                // SAFETY: only reachable through a kernel table built after detecting this
                // variant's features.
                unsafe { swiglu_tf(gate, up) }
            }

            #[target_feature(enable = $features)]
            fn scaled_exp_tf(x: &mut [f32], scale: f32, shift: f32) {
                crate::kernels::unary::scaled_exp_slice(x, scale, shift)
            }

            /// Safe entry for the kernel table.
            pub(crate) fn scaled_exp(x: &mut [f32], scale: f32, shift: f32) {
                // SAFETY: as for `swiglu`.
                unsafe { scaled_exp_tf(x, scale, shift) }
            }

            #[target_feature(enable = $features)]
            fn quick_gelu_tf(x: &mut [f32]) {
                crate::kernels::unary::quick_gelu_slice(x)
            }

            /// Safe entry for the kernel table.
            pub(crate) fn quick_gelu(x: &mut [f32]) {
                // SAFETY: as for `swiglu`.
                unsafe { quick_gelu_tf(x) }
            }

            act_quant!(quantize_q8_0, quantize_q8_0_tf, quantize_q8_0, 32, 34);
            act_quant!(quantize_q8_1, quantize_q8_1_tf, quantize_q8_1, 32, 36);
            act_quant!(quantize_q8_k, quantize_q8_k_tf, quantize_q8_k, 256, 292);
            act_quant!(convert_f16, convert_f16_tf, convert_f16, 1, 2);
            act_quant!(convert_bf16, convert_bf16_tf, convert_bf16, 1, 2);

            /// A GEMM tile kernel over whole blocks of `$w_bytes`/`$a_bytes` bytes.
            macro_rules! gemm_tile {
                (@entry $name:ident, $inner:ident, $elems:expr, $w_bytes:expr, $a_bytes:expr) => {
                    gemm_tile!(@entry $name, $inner, $elems, $w_bytes, $a_bytes, false);
                };
                // `$token_major`: the tile writes `out[c * out_stride + r]`.
                (@entry $name:ident, $inner:ident, $elems:expr, $w_bytes:expr, $a_bytes:expr, $token_major:expr) => {
                    /// Safe entry for the kernel table.
                    #[allow(clippy::too_many_arguments)]
                    pub(crate) fn $name(
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
                        let nb = n / $elems;
                        let fits = |len: usize, count: usize, stride: usize, record: usize| {
                            count == 0 || (count - 1)
                                .checked_mul(stride)
                                .and_then(|v| v.checked_add(record))
                                .is_some_and(|end| end <= len)
                        };
                        assert!(
                            n.is_multiple_of($elems)
                                && fits(w.len(), rows, w_stride, nb * $w_bytes)
                                && fits(a.len(), cols, a_stride, nb * $a_bytes)
                                && if $token_major {
                                    fits(out.len(), cols, out_stride, rows)
                                        && (cols < 2 || out_stride >= rows)
                                } else {
                                    fits(out.len(), rows, out_stride, cols)
                                        && (rows < 2 || out_stride >= cols)
                                },
                            "{}: tile of {rows}×{cols} rows of {n} elements does not fit its buffers",
                            stringify!($name)
                        );
                        if rows == 0 || cols == 0 {
                            return;
                        }
                        // SAFETY: only reachable through a kernel table built after detecting
                        // this variant's features; the buffer sizes were checked above.
                        unsafe {
                            $inner(nb, w.as_ptr(), w_stride, rows, a.as_ptr(), a_stride, cols, out, out_stride)
                        }
                    }
                };
                (packed: $name:ident, $inner:ident, $ty:ident, $elems:expr, $w_bytes:expr, $a_bytes:expr) => {
                    #[target_feature(enable = $features)]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn $inner(
                        nb: usize,
                        w: *const u8,
                        w_stride: usize,
                        rows: usize,
                        a: *const u8,
                        a_stride: usize,
                        cols: usize,
                        out: &mut [f32],
                        out_stride: usize,
                    ) {
                        // SAFETY: forwarded contract (rows × cols rows of whole blocks behind
                        // the pointers, out holds the tile); features enabled here.
                        unsafe {
                            packed::gemm::<$pk, packed::$ty, $pk_r, $pk_c>(
                                nb, w, w_stride, rows, a, a_stride, cols, out, out_stride,
                            )
                        }
                    }
                    gemm_tile!(@entry $name, $inner, $elems, $w_bytes, $a_bytes);
                };
                // The packed tiles reading x8 groups (whole groups: they assert).
                (packed_x8: $name:ident, $inner:ident, $ty:ident, $elems:expr, $w_bytes:expr, $a_bytes:expr) => {
                    #[target_feature(enable = $features)]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn $inner(
                        nb: usize,
                        w: *const u8,
                        w_stride: usize,
                        rows: usize,
                        a: *const u8,
                        a_stride: usize,
                        cols: usize,
                        out: &mut [f32],
                        out_stride: usize,
                    ) {
                        // SAFETY: forwarded contract (rows × cols rows of whole blocks behind
                        // the pointers, out holds the tile); features enabled here.
                        unsafe {
                            packed::gemm_x8::<$pk, packed::$ty, $pk_r, $pk_c>(
                                nb, w, w_stride, rows, a, a_stride, cols, out, out_stride,
                            )
                        }
                    }
                    gemm_tile!(@entry $name, $inner, $elems, $w_bytes, $a_bytes);
                };
                // The float tiles: plain (`float_tile`) or packed (`float_packed`), one body
                // with its own tile shape.
                (float_packed: $name:ident, $inner:ident, $elem:ident, $bytes:expr) => {
                    gemm_tile!(@float float_packed::gemm, $fpk_r, $fpk_c, $name, $inner, $elem, $bytes, false);
                };
                (float: $name:ident, $inner:ident, $elem:ident, $bytes:expr) => {
                    gemm_tile!(@float float_tile::gemm, $ftile_r, $ftile_c, $name, $inner, $elem, $bytes, false);
                };
                // The packed float tiles writing token-major output (`Y`, not `Yᵀ`).
                (float_packed_token_major: $name:ident, $inner:ident, $elem:ident, $bytes:expr) => {
                    gemm_tile!(@float float_packed::gemm_token_major, $fpk_r, $fpk_c, $name, $inner, $elem, $bytes, true);
                };
                (@float $tile_mod:ident :: $body:ident, $r:tt, $c:tt, $name:ident, $inner:ident, $elem:ident, $bytes:expr, $token_major:expr) => {
                    #[target_feature(enable = $features)]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn $inner(
                        n: usize,
                        w: *const u8,
                        w_stride: usize,
                        rows: usize,
                        a: *const u8,
                        a_stride: usize,
                        cols: usize,
                        out: &mut [f32],
                        out_stride: usize,
                    ) {
                        // SAFETY: forwarded contract (rows × cols rows of n elements behind
                        // the pointers); features enabled here.
                        unsafe {
                            $tile_mod::$body::<$lanes, float_tile::$elem, $r, $c>(
                                n, w, w_stride, rows, a, a_stride, cols, out, out_stride,
                            )
                        }
                    }
                    gemm_tile!(@entry $name, $inner, 1, $bytes, $bytes, $token_major);
                };
                ($name:ident, $inner:ident, $body:ident, $elems:expr, $w_bytes:expr, $a_bytes:expr) => {
                    #[target_feature(enable = $features)]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn $inner(
                        nb: usize,
                        w: *const u8,
                        w_stride: usize,
                        rows: usize,
                        a: *const u8,
                        a_stride: usize,
                        cols: usize,
                        out: &mut [f32],
                        out_stride: usize,
                    ) {
                        // SAFETY: forwarded contract (rows × cols rows of whole blocks behind
                        // the pointers, out holds the tile); features enabled here.
                        unsafe {
                            tile::tile_driver!(
                                $body, $mac, $tile_r, $tile_c,
                                nb, w, w_stride, rows, a, a_stride, cols, out, out_stride
                            )
                        }
                    }
                    gemm_tile!(@entry $name, $inner, $elems, $w_bytes, $a_bytes);
                };
            }

            gemm_tile!(gemm_q4_0_q8_0, gemm_q4_0_tf, q4_0, 32, 18, 34);
            gemm_tile!(gemm_q8_0_q8_0, gemm_q8_0_tf, q8_0, 32, 34, 34);
            gemm_tile!(gemm_q4_k_q8_k, gemm_q4_k_tf, q4_k, 256, 144, 292);
            gemm_tile!(gemm_q6_k_q8_k, gemm_q6_k_tf, q6_k, 256, 210, 292);
            gemm_tile!(packed: packed_q4_0_q8_0, packed_q4_0_tf, Q4_0, 32, 18, 34);
            gemm_tile!(packed: packed_q5_0_q8_0, packed_q5_0_tf, Q5_0, 32, 22, 34);
            gemm_tile!(packed: packed_q8_0_q8_0, packed_q8_0_tf, Q8_0, 32, 34, 34);
            gemm_tile!(packed: packed_q4_k_q8_k, packed_q4_k_tf, Q4K, 256, 144, 292);
            gemm_tile!(packed: packed_q5_k_q8_k, packed_q5_k_tf, Q5K, 256, 176, 292);
            gemm_tile!(packed: packed_q6_k_q8_k, packed_q6_k_tf, Q6K, 256, 210, 292);
            gemm_tile!(packed_x8: packed_q4_k_x8_q8_k, packed_q4_k_x8_tf, Q4K, 256, 144, 292);
            gemm_tile!(packed_x8: packed_q6_k_x8_q8_k, packed_q6_k_x8_tf, Q6K, 256, 210, 292);
            gemm_tile!(packed_x8: packed_q8_0_x8_q8_0, packed_q8_0_x8_tf, Q8_0, 32, 34, 34);
            gemm_tile!(float_packed: packed_f16, packed_f16_tf, F16, 2);
            gemm_tile!(float_packed: packed_bf16, packed_bf16_tf, Bf16, 2);
            gemm_tile!(float_packed: packed_f32, packed_f32_tf, F32, 4);
            gemm_tile!(float_packed_token_major: packed_f16_y, packed_f16_y_tf, F16, 2);
            gemm_tile!(float_packed_token_major: packed_bf16_y, packed_bf16_y_tf, Bf16, 2);
            gemm_tile!(float_packed_token_major: packed_f32_y, packed_f32_y_tf, F32, 4);
            gemm_tile!(float: gemm_f16, gemm_f16_tf, F16, 2);
            gemm_tile!(float: gemm_bf16, gemm_bf16_tf, Bf16, 2);
            gemm_tile!(float: gemm_f32, gemm_f32_tf, F32, 4);

            use crate::kernels::{ActKernels, DotKernels, GemmKernels, Kernels};

            /// `base` with every entry this variant implements replaced.
            pub(crate) fn table(base: Kernels) -> Kernels {
                Kernels {
                    dot: DotKernels {
                        q4_0: vec_dot_q4_0_q8_0,
                        q4_1: vec_dot_q4_1_q8_1,
                        q5_0: vec_dot_q5_0_q8_0,
                        q5_1: vec_dot_q5_1_q8_1,
                        q8_0: vec_dot_q8_0_q8_0,
                        q2_k: vec_dot_q2_k_q8_k,
                        q3_k: vec_dot_q3_k_q8_k,
                        q4_k: vec_dot_q4_k_q8_k,
                        q5_k: vec_dot_q5_k_q8_k,
                        q6_k: vec_dot_q6_k_q8_k,
                        f16: vec_dot_f16,
                        bf16: vec_dot_bf16,
                        f32: vec_dot_f32,
                    },
                    gemm: GemmKernels {
                        q4_0: Some(gemm_q4_0_q8_0),
                        q8_0: Some(gemm_q8_0_q8_0),
                        q4_k: Some(gemm_q4_k_q8_k),
                        q6_k: Some(gemm_q6_k_q8_k),
                        f16: Some(gemm_f16),
                        bf16: Some(gemm_bf16),
                        f32: Some(gemm_f32),
                        ..base.gemm
                    },
                    packed: GemmKernels {
                        q4_0: Some(packed_q4_0_q8_0),
                        q5_0: Some(packed_q5_0_q8_0),
                        q8_0: Some(packed_q8_0_q8_0),
                        q4_k: Some(packed_q4_k_q8_k),
                        q5_k: Some(packed_q5_k_q8_k),
                        q6_k: Some(packed_q6_k_q8_k),
                        f16: Some(packed_f16),
                        bf16: Some(packed_bf16),
                        f32: Some(packed_f32),
                        ..base.packed
                    },
                    packed_token_major: GemmKernels {
                        f16: Some(packed_f16_y),
                        bf16: Some(packed_bf16_y),
                        f32: Some(packed_f32_y),
                        ..base.packed_token_major
                    },
                    packed_q4_k_x8: Some(packed_q4_k_x8_q8_k),
                    packed_q6_k_x8: Some(packed_q6_k_x8_q8_k),
                    packed_q8_0_x8: Some(packed_q8_0_x8_q8_0),
                    float_panel_tokens: $fpk_c,
                    act: ActKernels {
                        q8_0: quantize_q8_0,
                        q8_1: quantize_q8_1,
                        q8_k: quantize_q8_k,
                        f16: convert_f16,
                        bf16: convert_bf16,
                        ..base.act
                    },
                    unary: crate::kernels::unary::UnaryKernels {
                        swiglu,
                        quick_gelu,
                        scaled_exp,
                    },
                    attend: crate::kernels::x86::attend::KERNELS,
                    ..base
                }
            }
        }
    };
}

pub(super) use x86_variant;
