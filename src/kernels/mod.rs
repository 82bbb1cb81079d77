//! CPU kernels: activation quantizers, dot products and matmul for every weight block type,
//! in several tiers (scalar reference, AVX2+FMA, AVX-512, NEON, NEON+dotprod), chosen once at
//! start-up by CPU feature detection and overridable with `LLAVA_CPU`.
//!
//! The shape follows tract's `linalg`: a table of function pointers ([`Kernels`]) whose portable
//! entries each tier overrides with what it implements better. Every SIMD entry is tested
//! against the scalar one (`tests/kernels_tiers.rs`), and the scalar ones against ggml
//! (`tests/kernels_ggml.rs`).
//!
//! Pairing of weight and activation types (as ggml's `vec_dot_type`, see
//! [`activation_type`]): Q4_0, Q5_0, Q8_0 with Q8_0; Q4_1, Q5_1 with Q8_1; Q2_K..Q6_K with
//! Q8_K; F16 with F16; BF16 with BF16; F32 with F32. Activation rows are quantized once (per row
//! of X) into that type's bytes, then dotted with each weight row ([`matmul`]).
//!
//! Registering a tier: its module exposes `pub(crate) fn kernels(base: Kernels) -> Kernels`
//! that overrides entries of `base` (the scalar table, with `tier` already set) by struct
//! update, e.g. `Kernels { dot: DotKernels { q4_0: vec_dot_q4_0_q8_0, ..base.dot }, ..base }`,
//! and is called from [`build_table`]. SIMD entries are safe `fn`s that call a
//! `#[target_feature(enable = ...)] unsafe fn` inside `unsafe { }` with
//! `// SAFETY: only reachable through a table built after detection`. See docs/kernels.md.

#[cfg(target_arch = "aarch64")]
mod aarch64;
pub mod attend;
mod decode;
mod gemm;
pub mod matmul;
pub mod repack;
pub mod scalar;
pub mod unary;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

use std::sync::OnceLock;

use thiserror::Error;

use crate::GgmlType;
use crate::quant::QuantError;

pub use decode::{DECODE_CHUNK_BYTES, matmul_vec_many};
pub use matmul::{QuantMatrix, matmul, matmul_f16, matmul_f32, matmul_nn_f32};
pub use repack::WeightLayout;

/// A set of kernels, from the portable reference to the widest SIMD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Portable Rust, the reference every other tier is tested against.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// x86-64 with AVX-512 F/BW/DQ/VL (and the AVX2 set); uses VNNI inside when present.
    Avx512,
    /// aarch64 with Advanced SIMD.
    Neon,
    /// aarch64 with Advanced SIMD and the dot-product extension (`sdot`).
    NeonDotprod,
}

impl Tier {
    /// Every tier, from the reference to the widest.
    pub const ALL: [Tier; 5] = [
        Tier::Scalar,
        Tier::Avx2,
        Tier::Avx512,
        Tier::Neon,
        Tier::NeonDotprod,
    ];

    /// The name `LLAVA_CPU` takes.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
            Tier::Neon => "neon",
            Tier::NeonDotprod => "neon-dotprod",
        }
    }

    /// The tier named `name` (as [`Tier::name`]; surrounding whitespace and case are ignored).
    pub fn parse(name: &str) -> Result<Tier, KernelError> {
        let wanted = name.trim().to_ascii_lowercase();
        Tier::ALL
            .into_iter()
            .find(|t| t.name() == wanted)
            .ok_or_else(|| KernelError::UnknownTier {
                value: name.to_string(),
                supported: supported_names(),
            })
    }

    /// Whether this CPU can run the tier (runtime detection).
    pub fn is_supported(self) -> bool {
        match self {
            Tier::Scalar => true,
            Tier::Avx2 => detect::avx2(),
            Tier::Avx512 => detect::avx512(),
            Tier::Neon => detect::neon(),
            Tier::NeonDotprod => detect::neon_dotprod(),
        }
    }

    /// The tiers this CPU supports, from the reference to the widest.
    pub fn supported() -> Vec<Tier> {
        Tier::ALL.into_iter().filter(|t| t.is_supported()).collect()
    }

    /// The widest tier this CPU supports.
    pub fn best_supported() -> Tier {
        Tier::ALL
            .into_iter()
            .rev()
            .find(|t| t.is_supported())
            .unwrap_or(Tier::Scalar)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn supported_names() -> String {
    Tier::supported()
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runtime CPU feature detection for each tier.
mod detect {
    #[cfg(target_arch = "x86_64")]
    pub(super) fn avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }

    #[cfg(target_arch = "x86_64")]
    pub(super) fn avx512() -> bool {
        avx2()
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn avx2() -> bool {
        false
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn avx512() -> bool {
        false
    }

    #[cfg(target_arch = "aarch64")]
    pub(super) fn neon() -> bool {
        std::arch::is_aarch64_feature_detected!("neon")
    }

    #[cfg(target_arch = "aarch64")]
    pub(super) fn neon_dotprod() -> bool {
        neon() && std::arch::is_aarch64_feature_detected!("dotprod")
    }

    #[cfg(not(target_arch = "aarch64"))]
    pub(super) fn neon() -> bool {
        false
    }

    #[cfg(not(target_arch = "aarch64"))]
    pub(super) fn neon_dotprod() -> bool {
        false
    }
}

/// Why a kernel could not be chosen or run.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KernelError {
    #[error("LLAVA_CPU={value:?} names no CPU tier; this CPU supports: {supported}")]
    UnknownTier { value: String, supported: String },
    #[error("CPU tier {tier} is not supported by this CPU; it supports: {supported}")]
    UnsupportedTier { tier: Tier, supported: String },
    #[error("no dot-product kernel for weight type {0}")]
    UnsupportedWeightType(GgmlType),
    #[error("type {0} is not an activation type (Q8_0, Q8_1, Q8_K, F16, BF16 or F32)")]
    UnsupportedActivationType(GgmlType),
    #[error("{what}: expected {expected}, got {actual}")]
    Shape {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("the {layout} weight layout holds no {ty} weights")]
    LayoutType { layout: WeightLayout, ty: GgmlType },
    #[error("the {layout} weight layout takes rows in groups of {group}; the matrix has {rows}")]
    LayoutRows {
        layout: WeightLayout,
        group: usize,
        rows: usize,
    },
    #[error(transparent)]
    Quant(#[from] QuantError),
}

/// Dot product of one weight row (`n` elements of the weight type, as stored in GGUF: any
/// alignment) with one activation row already converted to the paired activation type.
/// `n` is a whole number of blocks of both types, and `w` and `a` hold at least `n` elements
/// (an entry panics otherwise; the checked entry point is [`Kernels::dot`]).
pub type VecDotFn = fn(n: usize, w: &[u8], a: &[u8]) -> f32;

/// `out.len()` weight rows of `n` elements, the first at `w[0..]` and each `row_bytes` after
/// the previous, dotted with one (prepared) activation row: `out[r] = dot(n, row r, a)`, equal
/// bit for bit to the [`DecodeDot`]'s `dot` of each row. Panics if a slice is too short.
pub type DotRowsFn = fn(n: usize, w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32]);

/// Converts an f32 row to an activation type's bytes (Q8_0, Q8_1, Q8_K, F16, BF16, F32).
/// `x.len()` is a whole number of blocks and `out` exactly its bytes (an entry panics
/// otherwise; the checked entry point is [`Kernels::quantize_activations`]).
pub type QuantizeActFn = fn(x: &[f32], out: &mut [u8]);

/// A tile of dot products for batched inputs: for `r` in `0..rows`, `c` in `0..cols`,
/// `out[r * out_stride + c] = dot(n, &w[r * w_stride..], &a[c * a_stride..])`,
/// so each weight block is read once per tile of activation rows.
pub type GemmTileFn = fn(
    n: usize,
    w: &[u8],
    w_stride: usize,
    rows: usize,
    a: &[u8],
    a_stride: usize,
    cols: usize,
    out: &mut [f32],
    out_stride: usize,
);

/// One dot-product kernel per weight type, each paired with its [`activation_type`].
#[derive(Clone, Copy, Debug)]
pub struct DotKernels {
    pub q4_0: VecDotFn,
    pub q4_1: VecDotFn,
    pub q5_0: VecDotFn,
    pub q5_1: VecDotFn,
    pub q8_0: VecDotFn,
    pub q2_k: VecDotFn,
    pub q3_k: VecDotFn,
    pub q4_k: VecDotFn,
    pub q5_k: VecDotFn,
    pub q6_k: VecDotFn,
    pub f16: VecDotFn,
    pub bf16: VecDotFn,
    pub f32: VecDotFn,
}

/// Optional tile kernels per weight type; `None` means a tile is computed by looping the
/// tier's [`VecDotFn`] (see [`Kernels::gemm_tile`]).
#[derive(Clone, Copy, Debug)]
pub struct GemmKernels {
    pub q4_0: Option<GemmTileFn>,
    pub q4_1: Option<GemmTileFn>,
    pub q5_0: Option<GemmTileFn>,
    pub q5_1: Option<GemmTileFn>,
    pub q8_0: Option<GemmTileFn>,
    pub q2_k: Option<GemmTileFn>,
    pub q3_k: Option<GemmTileFn>,
    pub q4_k: Option<GemmTileFn>,
    pub q5_k: Option<GemmTileFn>,
    pub q6_k: Option<GemmTileFn>,
    pub f16: Option<GemmTileFn>,
    pub bf16: Option<GemmTileFn>,
    pub f32: Option<GemmTileFn>,
}

/// An n = 1 dot on a tier-specific layout of the activation row, prepared once per row (a
/// decode matmul dots one activation row with thousands of weight rows, so whatever can be
/// precomputed on the activation side is free there). `prepare` starts from the paired
/// activation type's bytes, so the activation quantizers stay shared.
#[derive(Clone, Copy, Debug)]
pub struct DecodeDot {
    /// Bytes of the prepared layout of `k` activations.
    pub prepared_bytes: fn(k: usize) -> usize,
    /// `acts` (`k` activations of the paired activation type) into `out` (exactly
    /// `prepared_bytes(k)` bytes); panics on other lengths.
    pub prepare: fn(k: usize, acts: &[u8], out: &mut [u8]),
    /// One weight row (`n` elements, as stored in GGUF) with a prepared row of `n` activations;
    /// panics if either is shorter.
    pub dot: VecDotFn,
    /// Several rows at once, sharing each activation load among them (and reading several
    /// weight streams at once from memory); `None`: n = 1 loops `dot` over the rows.
    pub rows: Option<DotRowsFn>,
}

/// Optional [`DecodeDot`]s per weight type; `None` means n = 1 uses the plain [`VecDotFn`].
/// Only the types some tier fills have a field (a prepared layout that reads more activation
/// bytes per row slows decoding from DRAM, so one is added where it measures faster there too;
/// F16's is its activation row as it is, for its several-row dot: an f32 layout did not help,
/// see `x86/decode_dot.rs`).
#[derive(Clone, Copy, Debug)]
pub struct DecodeKernels {
    pub q4_0: Option<DecodeDot>,
    pub q8_0: Option<DecodeDot>,
    pub q4_k: Option<DecodeDot>,
    pub f16: Option<DecodeDot>,
}

impl DecodeKernels {
    /// No prepared dots.
    pub const NONE: DecodeKernels = DecodeKernels {
        q4_0: None,
        q8_0: None,
        q4_k: None,
        f16: None,
    };

    /// The prepared dot for `w_type`, if the tier has one.
    pub fn get(&self, w_type: GgmlType) -> Option<DecodeDot> {
        match w_type {
            GgmlType::Q4_0 => self.q4_0,
            GgmlType::Q8_0 => self.q8_0,
            GgmlType::Q4_K => self.q4_k,
            GgmlType::F16 => self.f16,
            _ => None,
        }
    }
}

/// Groups of 8 weight rows in a repacked layout ([`repack`]) dotted with one prepared
/// activation row: `w` holds `out.len() / 8` consecutive groups of `k` elements each,
/// `out[8 * g + r]` is row `r` of group `g`. Panics if a slice is too short or `out.len()` is
/// not a multiple of 8.
pub type GroupDotFn = fn(k: usize, w: &[u8], a: &[u8], out: &mut [f32]);

/// An n = 1 dot on a repacked weight layout, with its own prepared activation layout (as
/// [`DecodeDot`]: `prepare` starts from the paired activation type's bytes).
#[derive(Clone, Copy, Debug)]
pub struct GroupDot {
    /// Bytes of the prepared layout of `k` activations.
    pub prepared_bytes: fn(k: usize) -> usize,
    /// `acts` (`k` activations of the paired activation type) into `out` (exactly
    /// `prepared_bytes(k)` bytes); panics on other lengths.
    pub prepare: fn(k: usize, acts: &[u8], out: &mut [u8]),
    pub dot: GroupDotFn,
    /// Target bytes of weights per n = 1 parallel task (whole groups, at most 256 rows): a
    /// dot that streams several parts of a task at once wants longer tasks than one that
    /// streams its groups in order ([`DECODE_CHUNK_BYTES`]).
    pub task_bytes: usize,
}

/// The repacked layouts a tier has fast dots for; `Some` also means the tier wants weights
/// repacked at load ([`repack::preferred_layout`]). A matrix repacked anyway (or used on
/// another tier) runs the portable group dot of [`repack`].
#[derive(Clone, Copy, Debug)]
pub struct RepackedKernels {
    /// Q4_K in [`WeightLayout::Q4KX8`].
    pub q4_k_x8: Option<GroupDot>,
    /// Q6_K in [`WeightLayout::Q6KX8`].
    pub q6_k_x8: Option<GroupDot>,
    /// Q8_0 in [`WeightLayout::Q8_0X8`].
    pub q8_0_x8: Option<GroupDot>,
}

impl RepackedKernels {
    /// No repacked layouts.
    pub const NONE: RepackedKernels = RepackedKernels {
        q4_k_x8: None,
        q6_k_x8: None,
        q8_0_x8: None,
    };

    /// The tier's dot for `layout`, if it has one.
    pub fn get(&self, layout: WeightLayout) -> Option<GroupDot> {
        match layout {
            WeightLayout::Ggml => None,
            WeightLayout::Q4KX8 => self.q4_k_x8,
            WeightLayout::Q6KX8 => self.q6_k_x8,
            WeightLayout::Q8_0X8 => self.q8_0_x8,
        }
    }
}

/// One activation quantizer per activation type.
#[derive(Clone, Copy, Debug)]
pub struct ActKernels {
    pub q8_0: QuantizeActFn,
    pub q8_1: QuantizeActFn,
    pub q8_k: QuantizeActFn,
    pub f16: QuantizeActFn,
    pub bf16: QuantizeActFn,
    pub f32: QuantizeActFn,
}

/// The kernels of one tier.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub tier: Tier,
    pub dot: DotKernels,
    pub gemm: GemmKernels,
    /// Tiles that repack their weight rows on every call (`x86/packed.rs`): fast only when a
    /// call brings many tokens, so [`matmul`] gives them every token of a chunk of rows at
    /// once. Preferred over `gemm` where both exist.
    pub packed: GemmKernels,
    /// Packed tiles that write their output token-major, `out[c * out_stride + r]` (the
    /// layout of `Y = X·Wᵀ`, so [`matmul`] needs no transpose after them); float types only.
    pub packed_token_major: GemmKernels,
    /// The packed Q4_K tile reading a Q4_K×8 matrix ([`WeightLayout::Q4KX8`]) as it is:
    /// `w_stride` is a row's bytes and `rows` a multiple of 8 (whole groups), results bit for
    /// bit those of `packed.q4_k` on the same rows in ggml's layout.
    pub packed_q4_k_x8: Option<GemmTileFn>,
    /// As `packed_q4_k_x8` for Q6_K in [`WeightLayout::Q6KX8`].
    pub packed_q6_k_x8: Option<GemmTileFn>,
    /// As `packed_q4_k_x8` for Q8_0 in [`WeightLayout::Q8_0X8`].
    pub packed_q8_0_x8: Option<GemmTileFn>,
    /// Tokens per panel (`C`) of the float packed tiles: [`matmul`] splits tokens among
    /// tasks in whole panels. 1 where there are none.
    pub float_panel_tokens: usize,
    /// Dots on a prepared activation layout, for n = 1 ([`matmul`], [`matmul_vec_many`]).
    pub decode: DecodeKernels,
    /// n = 1 dots on weights repacked at load ([`repack`]).
    pub repacked: RepackedKernels,
    pub act: ActKernels,
    /// Element-wise activation loops (SwiGLU, quick GELU).
    pub unary: unary::UnaryKernels,
    /// Decode attention's loops over KV-cache rows.
    pub attend: attend::AttendKernels,
}

/// The weight types with a dot-product kernel, in [`DotKernels`] field order.
pub const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];

/// The activation types, in [`ActKernels`] field order.
pub const ACTIVATION_TYPES: [GgmlType; 6] = [
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q8_K,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];

/// The type activations are converted to before a dot product with weights of `w_type`
/// (ggml's `vec_dot_type`), or `None` if there is no kernel for `w_type`.
pub fn activation_type(w_type: GgmlType) -> Option<GgmlType> {
    use GgmlType::*;
    Some(match w_type {
        Q4_0 | Q5_0 | Q8_0 => Q8_0,
        Q4_1 | Q5_1 => Q8_1,
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => Q8_K,
        F16 => F16,
        BF16 => BF16,
        F32 => F32,
        _ => return None,
    })
}

impl DotKernels {
    /// The kernel for `w_type`, if it has one.
    pub fn get(&self, w_type: GgmlType) -> Option<VecDotFn> {
        use GgmlType::*;
        Some(match w_type {
            Q4_0 => self.q4_0,
            Q4_1 => self.q4_1,
            Q5_0 => self.q5_0,
            Q5_1 => self.q5_1,
            Q8_0 => self.q8_0,
            Q2_K => self.q2_k,
            Q3_K => self.q3_k,
            Q4_K => self.q4_k,
            Q5_K => self.q5_k,
            Q6_K => self.q6_k,
            F16 => self.f16,
            BF16 => self.bf16,
            F32 => self.f32,
            _ => return None,
        })
    }
}

impl GemmKernels {
    /// No tile kernels: every tile loops the dot-product kernel.
    pub const NONE: GemmKernels = GemmKernels {
        q4_0: None,
        q4_1: None,
        q5_0: None,
        q5_1: None,
        q8_0: None,
        q2_k: None,
        q3_k: None,
        q4_k: None,
        q5_k: None,
        q6_k: None,
        f16: None,
        bf16: None,
        f32: None,
    };

    /// The tile kernel for `w_type`, if the tier has one.
    pub fn get(&self, w_type: GgmlType) -> Option<GemmTileFn> {
        use GgmlType::*;
        match w_type {
            Q4_0 => self.q4_0,
            Q4_1 => self.q4_1,
            Q5_0 => self.q5_0,
            Q5_1 => self.q5_1,
            Q8_0 => self.q8_0,
            Q2_K => self.q2_k,
            Q3_K => self.q3_k,
            Q4_K => self.q4_k,
            Q5_K => self.q5_k,
            Q6_K => self.q6_k,
            F16 => self.f16,
            BF16 => self.bf16,
            F32 => self.f32,
            _ => None,
        }
    }
}

impl ActKernels {
    /// The quantizer producing `act_type`, if it is an activation type.
    pub fn get(&self, act_type: GgmlType) -> Option<QuantizeActFn> {
        use GgmlType::*;
        Some(match act_type {
            Q8_0 => self.q8_0,
            Q8_1 => self.q8_1,
            Q8_K => self.q8_k,
            F16 => self.f16,
            BF16 => self.bf16,
            F32 => self.f32,
            _ => return None,
        })
    }
}

/// Bytes of `n` elements of `ty`, or a shape error if `n` is not a whole number of blocks.
pub(crate) fn bytes_of(ty: GgmlType, n: usize) -> Result<usize, KernelError> {
    Ok(crate::quant::row_bytes(ty, n)?)
}

fn check_len(what: &'static str, actual: usize, expected: usize) -> Result<(), KernelError> {
    if actual != expected {
        return Err(KernelError::Shape {
            what,
            expected,
            actual,
        });
    }
    Ok(())
}

impl Kernels {
    /// The table of `tier`, or `None` if this CPU cannot run it.
    pub fn for_tier(tier: Tier) -> Option<&'static Kernels> {
        static TABLES: [OnceLock<Kernels>; 5] = [const { OnceLock::new() }; 5];
        if !tier.is_supported() {
            return None;
        }
        let slot = &TABLES[Tier::ALL.iter().position(|t| *t == tier)?];
        Some(slot.get_or_init(|| build_table(tier)))
    }

    /// The dot-product kernel for weights of `w_type`.
    pub fn vec_dot(&self, w_type: GgmlType) -> Option<VecDotFn> {
        self.dot.get(w_type)
    }

    /// The tier's dot on a prepared activation layout for weights of `w_type`, if it has one
    /// (see [`DecodeDot`]); n = 1 matmuls use it.
    pub fn decode_dot(&self, w_type: GgmlType) -> Option<DecodeDot> {
        self.decode.get(w_type)
    }

    /// The type activations are converted to for weights of `w_type` ([`activation_type`]).
    pub fn activation_type(w_type: GgmlType) -> Option<GgmlType> {
        activation_type(w_type)
    }

    /// Converts `x` to `act_type`'s bytes in `out`, which must be exactly their size.
    pub fn quantize_activations(
        &self,
        act_type: GgmlType,
        x: &[f32],
        out: &mut [u8],
    ) -> Result<(), KernelError> {
        let quantize = self
            .act
            .get(act_type)
            .ok_or(KernelError::UnsupportedActivationType(act_type))?;
        check_len("activation bytes", out.len(), bytes_of(act_type, x.len())?)?;
        quantize(x, out);
        Ok(())
    }

    /// Dot product of `n` weights of `w_type` with `n` activations of its
    /// [`activation_type`], both exactly `n` elements long.
    pub fn dot(&self, w_type: GgmlType, n: usize, w: &[u8], a: &[u8]) -> Result<f32, KernelError> {
        let kernel = self
            .vec_dot(w_type)
            .ok_or(KernelError::UnsupportedWeightType(w_type))?;
        let act_type = activation_type(w_type).ok_or(KernelError::UnsupportedWeightType(w_type))?;
        check_len("weight bytes", w.len(), bytes_of(w_type, n)?)?;
        check_len("activation bytes", a.len(), bytes_of(act_type, n)?)?;
        Ok(kernel(n, w, a))
    }

    /// The checks both tile layouts share: `w_type` has a dot product (returned, the fallback)
    /// and the weight and activation buffers hold their rows.
    #[allow(clippy::too_many_arguments)]
    fn checked_tile_inputs(
        &self,
        w_type: GgmlType,
        n: usize,
        w: &[u8],
        w_stride: usize,
        rows: usize,
        a: &[u8],
        a_stride: usize,
        cols: usize,
    ) -> Result<VecDotFn, KernelError> {
        let dot = self
            .vec_dot(w_type)
            .ok_or(KernelError::UnsupportedWeightType(w_type))?;
        let act_type = activation_type(w_type).ok_or(KernelError::UnsupportedWeightType(w_type))?;
        let (w_row, a_row) = (bytes_of(w_type, n)?, bytes_of(act_type, n)?);
        check_tile_buffer("weight tile bytes", w.len(), rows, w_stride, w_row)?;
        check_tile_buffer("activation tile bytes", a.len(), cols, a_stride, a_row)?;
        Ok(dot)
    }

    /// A tile of dot products (see [`GemmTileFn`]) with the tier's tile kernel for `w_type`,
    /// or by looping its dot-product kernel where it has none. Shapes are checked.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_tile(
        &self,
        w_type: GgmlType,
        n: usize,
        w: &[u8],
        w_stride: usize,
        rows: usize,
        a: &[u8],
        a_stride: usize,
        cols: usize,
        out: &mut [f32],
        out_stride: usize,
    ) -> Result<(), KernelError> {
        let dot = self.checked_tile_inputs(w_type, n, w, w_stride, rows, a, a_stride, cols)?;
        check_tile_buffer("output tile elements", out.len(), rows, out_stride, cols)?;
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        match self.packed.get(w_type).or(self.gemm.get(w_type)) {
            Some(tile) => tile(n, w, w_stride, rows, a, a_stride, cols, out, out_stride),
            None => scalar::gemm_tile_by_dots(
                dot, n, w, w_stride, rows, a, a_stride, cols, out, out_stride,
            ),
        }
        Ok(())
    }

    /// As [`Kernels::gemm_tile`], written token-major: `out[c * out_stride + r] = dot(w row r,
    /// a row c)`, by the tier's [`Kernels::packed_token_major`] tile, or by looping its dot
    /// where it has none. Shapes are checked.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_tile_token_major(
        &self,
        w_type: GgmlType,
        n: usize,
        w: &[u8],
        w_stride: usize,
        rows: usize,
        a: &[u8],
        a_stride: usize,
        cols: usize,
        out: &mut [f32],
        out_stride: usize,
    ) -> Result<(), KernelError> {
        let dot = self.checked_tile_inputs(w_type, n, w, w_stride, rows, a, a_stride, cols)?;
        check_tile_buffer("output tile elements", out.len(), cols, out_stride, rows)?;
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        match self.packed_token_major.get(w_type) {
            Some(tile) => tile(n, w, w_stride, rows, a, a_stride, cols, out, out_stride),
            None => {
                for (c, out_row) in out.chunks_mut(out_stride).take(cols).enumerate() {
                    let a_row = &a[c * a_stride..];
                    for (r, cell) in out_row[..rows].iter_mut().enumerate() {
                        *cell = dot(n, &w[r * w_stride..], a_row);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Checks that a buffer of `len` units holds `count` records of `record` units at `stride`.
fn check_tile_buffer(
    what: &'static str,
    len: usize,
    count: usize,
    stride: usize,
    record: usize,
) -> Result<(), KernelError> {
    if count == 0 {
        return Ok(());
    }
    if stride < record {
        return Err(KernelError::Shape {
            what: "tile stride (at least one row)",
            expected: record,
            actual: stride,
        });
    }
    let needed = (count - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(record))
        .unwrap_or(usize::MAX);
    if len < needed {
        return Err(KernelError::Shape {
            what,
            expected: needed,
            actual: len,
        });
    }
    Ok(())
}

/// Builds the table of `tier`: the scalar table, with each entry the tier implements replaced.
fn build_table(tier: Tier) -> Kernels {
    let base = Kernels {
        tier,
        ..scalar::KERNELS
    };
    // Tier modules register here; a tier is only built once `Tier::is_supported` holds.
    match tier {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => x86::avx2::kernels(base),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => x86::avx512::kernels(base),
        #[cfg(target_arch = "aarch64")]
        Tier::Neon => aarch64::neon::kernels(base),
        #[cfg(target_arch = "aarch64")]
        Tier::NeonDotprod => aarch64::dotprod::kernels(base),
        // Other architectures keep the scalar entries.
        _ => base,
    }
}

/// The kernels for this process: those of `LLAVA_CPU` (scalar, avx2, avx512, neon,
/// neon-dotprod) if it is set and not empty, else those of [`Tier::best_supported`].
/// The choice is made once; an unknown or unsupported `LLAVA_CPU` is an error.
pub fn try_kernels() -> Result<&'static Kernels, KernelError> {
    static CHOSEN: OnceLock<Result<&'static Kernels, KernelError>> = OnceLock::new();
    CHOSEN
        .get_or_init(|| {
            let requested = std::env::var("LLAVA_CPU").ok();
            kernels_for_request(requested.as_deref())
        })
        .clone()
}

/// The kernels of the tier named by `request` (a `LLAVA_CPU` value; `None` or blank means the
/// best supported tier).
pub fn kernels_for_request(request: Option<&str>) -> Result<&'static Kernels, KernelError> {
    let tier = match request.map(str::trim).filter(|s| !s.is_empty()) {
        Some(name) => Tier::parse(name)?,
        None => Tier::best_supported(),
    };
    Kernels::for_tier(tier).ok_or_else(|| KernelError::UnsupportedTier {
        tier,
        supported: supported_names(),
    })
}

/// The kernels for this process, as [`try_kernels`]; where `LLAVA_CPU` is invalid, the error
/// is printed once to stderr and the best supported tier is used.
pub fn kernels() -> &'static Kernels {
    static FALLBACK_WARNED: OnceLock<()> = OnceLock::new();
    match try_kernels() {
        Ok(k) => k,
        Err(err) => {
            FALLBACK_WARNED.get_or_init(|| eprintln!("llava: {err}; using the best CPU tier"));
            let best = Tier::best_supported();
            Kernels::for_tier(best).unwrap_or(&scalar::KERNELS)
        }
    }
}
