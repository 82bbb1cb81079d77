//! x86-64 kernel tiers: AVX2 + FMA + F16C, and AVX-512 (F + BW + VL), each with a VNNI
//! sub-variant chosen at start-up (AVX-VNNI for the AVX2 tier, AVX-512 VNNI for the AVX-512
//! tier).
//!
//! The crate is built without `-C target-cpu=native`: every kernel is a `#[target_feature]`
//! function reached only through a safe wrapper held by a table built after runtime detection
//! ([`avx2`], [`avx512`]). The kernel bodies are written once, generic over the integer
//! multiply-accumulate (`common::Mac`), and instantiated per variant (`variant.rs`).

mod act;
mod attend;
mod common;
mod decode_dot;
mod dot;
mod dot_zmm;
mod float_packed;
mod float_tile;
mod packed;
mod q4k_x8;
mod q6k_x8;
mod q8_0_x8;
mod tile;
mod variant;

pub(crate) mod avx2;
pub(crate) mod avx512;

#[cfg(test)]
mod tests;
