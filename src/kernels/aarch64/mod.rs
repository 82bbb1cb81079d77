//! The aarch64 tiers: NEON (every aarch64 CPU) and NEON + dotprod (`sdot`, Armv8.2+).
//!
//! Files: `simd.rs` (loads, f16 conversion, the int8 step [`simd::Int8Dot`] that tells the two
//! tiers apart), `legacy_dots.rs` and `k_dots.rs` (the quantized dots, generic over that step),
//! `float_dots.rs` (F16/BF16/F32), `act.rs` (activation quantizers), `neon.rs` and
//! `dotprod.rs` (each tier's table entries). Cross-built and run under qemu by
//! `tools/test-aarch64.sh`.

mod act;
pub(crate) mod dotprod;
mod float_dots;
mod k_dots;
mod legacy_dots;
pub(crate) mod neon;
mod simd;

#[cfg(test)]
mod tests;
