//! CPU kernels: activation quantizers, dot products and matmul for every weight block type,
//! in several tiers (scalar reference, AVX2+FMA, AVX-512, NEON, NEON+dotprod), chosen once at
//! start-up by CPU feature detection and overridable with `LLAVA_CPU`.
//!
//! The shape follows tract's `linalg`: a table of function pointers ([`Kernels`]) whose portable
//! entries each tier overrides with what it implements better. Every SIMD entry is tested
//! against the scalar one (`tests/kernels_tiers.rs`), and the scalar ones against ggml.
//!
//! Pairing of weight and activation types (as ggml's `vec_dot_type`): Q4_0, Q5_0, Q8_0 with
//! Q8_0; Q4_1, Q5_1 with Q8_1; Q2_K..Q6_K with Q8_K; F16 with F16; BF16 with BF16; F32 with F32.
//! Activation rows are quantized once (per row of X) into that type's bytes, then dotted with
//! each weight row.

// DESIGN (to be implemented; this comment goes when done):
//
//   pub enum Tier { Scalar, Avx2, Avx512, Neon, NeonDotprod }
//     Tier::name() ("scalar", "avx2", "avx512", "neon", "neon-dotprod"), Tier::parse(&str),
//     Tier::is_supported(self) -> bool (runtime detection: is_x86_feature_detected!("avx2") &&
//     "fma" && "f16c" for Avx2; "avx512f" && "avx512bw" (+ the Avx2 set) for Avx512 — VNNI
//     ("avx512vnni") is used inside the Avx512 tier when present, as a sub-variant;
//     std::arch::is_aarch64_feature_detected!("neon") / ("dotprod") on aarch64; false on other
//     architectures), Tier::ALL, Tier::best_supported().
//
//   /// Dot product of one weight row (`n` elements of the weight type, as stored in GGUF: any
//   /// alignment) with one activation row already converted to the paired activation type.
//   pub type VecDotFn = fn(n: usize, w: &[u8], a: &[u8]) -> f32;
//   /// Converts an f32 row to an activation type's bytes (Q8_0, Q8_1, Q8_K, F16, BF16, F32).
//   pub type QuantizeActFn = fn(x: &[f32], out: &mut [u8]);
//   /// A tile of dot products for batched inputs: for r in 0..rows, c in 0..cols:
//   ///   out[r * out_stride + c] = dot(w[r * w_stride ..], a[c * a_stride ..])   (n elements)
//   /// so each weight block is read once per tile of activation rows.
//   pub type GemmTileFn = fn(n: usize, w: &[u8], w_stride: usize, rows: usize,
//                            a: &[u8], a_stride: usize, cols: usize,
//                            out: &mut [f32], out_stride: usize);
//
//   pub struct DotKernels { pub q4_0: VecDotFn, pub q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k,
//                           q5_k, q6_k, f16, bf16, f32: VecDotFn }
//   pub struct GemmKernels { same fields: GemmTileFn }   (generic default: loops of VecDotFn)
//   pub struct ActKernels { pub q8_0, q8_1, q8_k, f16, bf16, f32: QuantizeActFn }
//   pub struct Kernels { pub tier: Tier, pub dot: DotKernels, pub gemm: GemmKernels,
//                        pub act: ActKernels }
//   impl Kernels {
//       pub fn for_tier(tier: Tier) -> Option<&'static Kernels>  // None if not supported here
//       pub fn vec_dot(&self, w_type: GgmlType) -> Option<VecDotFn>
//       pub fn activation_type(w_type: GgmlType) -> Option<GgmlType>
//       pub fn quantize_activations(&self, act_type, x, out) -> Result<(), KernelError>
//   }
//   /// The kernels for this process: LLAVA_CPU=scalar|avx2|avx512|neon|neon-dotprod if set
//   /// (an unsupported or unknown value is an error naming the supported ones), else the best.
//   pub fn kernels() -> &'static Kernels   (OnceLock; `try_kernels()` returns the error)
//
//   A tier's table is built from the scalar one with struct update syntax, e.g.
//     Kernels { tier: Tier::Avx2, dot: DotKernels { q4_0: avx2::vec_dot_q4_0_q8_0, ..scalar::DOT }, .. }
//   SIMD entries are safe `fn`s that call a `#[target_feature(enable = ...)] unsafe fn` inside
//   `unsafe { }` with `// SAFETY: only reachable through a table built after detection`.
//
// Files: mod.rs (this: Tier, table, detection), scalar.rs (reference dots + gemm tiles + act
// quantizers; activation quantizers reuse crate::quant's exact q8_0/q8_1/q8_k code),
// matmul.rs (Y = X·Wᵀ: n = 1 parallel over weight rows with rayon; n > 1 tiled with GemmTileFn;
// f32/f16 matmul for attention), x86/avx2.rs, x86/avx512.rs, aarch64/neon.rs,
// aarch64/dotprod.rs.

#[cfg(target_arch = "aarch64")]
mod aarch64;
