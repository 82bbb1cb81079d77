//! Dot products of float rows with NEON: F16·F16, BF16·BF16, F32·F32, accumulated in f32 lanes
//! with fused multiply-adds (products of two f16 or two bf16 are exact in f32, so only the
//! additions round; the scalar reference's order and precision differ slightly).

use std::arch::aarch64::*;

use super::simd::{f16x8_to_f32, load_f32_bytes, load_u16};
use crate::quant::{bf16_to_f32, f16_to_f32};

/// The first `n` elements of two rows of `element_bytes`-byte elements; panics if either is
/// shorter.
fn rows<'a>(n: usize, element_bytes: usize, w: &'a [u8], a: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    (&w[..n * element_bytes], &a[..n * element_bytes])
}

/// Sums four accumulators and a scalar tail. The accumulators start at -0.0, the identity of
/// addition (as Rust's float `sum`), so that a sum of -0.0 products keeps its sign.
#[target_feature(enable = "neon")]
#[inline]
fn finish(acc: [float32x4_t; 4], tail: f32) -> f32 {
    let sum = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    vaddvq_f32(sum) + tail
}

#[target_feature(enable = "neon")]
fn f16_dot_neon(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = rows(n, 2, w, a);
    let mut acc = [vdupq_n_f32(-0.0); 4];
    let (w_chunks, w_tail) = w.as_chunks::<32>();
    let (a_chunks, a_tail) = a.as_chunks::<32>();
    for (wc, ac) in w_chunks.iter().zip(a_chunks) {
        for half in 0..2 {
            let (w0, w1) = f16x8_to_f32(load_u16(wc, 16 * half));
            let (a0, a1) = f16x8_to_f32(load_u16(ac, 16 * half));
            acc[2 * half] = vfmaq_f32(acc[2 * half], w0, a0);
            acc[2 * half + 1] = vfmaq_f32(acc[2 * half + 1], w1, a1);
        }
    }
    let tail = w_tail
        .chunks_exact(2)
        .zip(a_tail.chunks_exact(2))
        .map(|(x, y)| {
            let x = f16_to_f32(half::f16::from_le_bytes([x[0], x[1]]));
            let y = f16_to_f32(half::f16::from_le_bytes([y[0], y[1]]));
            x * y
        })
        .sum();
    finish(acc, tail)
}

#[target_feature(enable = "neon")]
fn bf16_dot_neon(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = rows(n, 2, w, a);
    let mut acc = [vdupq_n_f32(-0.0); 4];
    let (w_chunks, w_tail) = w.as_chunks::<32>();
    let (a_chunks, a_tail) = a.as_chunks::<32>();
    // bf16 is the top half of an f32: widen by shifting left 16.
    let widen = |h: uint16x8_t| {
        (
            vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h))),
            vreinterpretq_f32_u32(vshll_high_n_u16::<16>(h)),
        )
    };
    for (wc, ac) in w_chunks.iter().zip(a_chunks) {
        for half in 0..2 {
            let (w0, w1) = widen(load_u16(wc, 16 * half));
            let (a0, a1) = widen(load_u16(ac, 16 * half));
            acc[2 * half] = vfmaq_f32(acc[2 * half], w0, a0);
            acc[2 * half + 1] = vfmaq_f32(acc[2 * half + 1], w1, a1);
        }
    }
    let tail = w_tail
        .chunks_exact(2)
        .zip(a_tail.chunks_exact(2))
        .map(|(x, y)| {
            bf16_to_f32(u16::from_le_bytes([x[0], x[1]]))
                * bf16_to_f32(u16::from_le_bytes([y[0], y[1]]))
        })
        .sum();
    finish(acc, tail)
}

#[target_feature(enable = "neon")]
fn f32_dot_neon(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = rows(n, 4, w, a);
    let mut acc = [vdupq_n_f32(-0.0); 4];
    let (w_chunks, w_tail) = w.as_chunks::<64>();
    let (a_chunks, a_tail) = a.as_chunks::<64>();
    for (wc, ac) in w_chunks.iter().zip(a_chunks) {
        for (j, lane) in acc.iter_mut().enumerate() {
            *lane = vfmaq_f32(
                *lane,
                load_f32_bytes(wc, 16 * j),
                load_f32_bytes(ac, 16 * j),
            );
        }
    }
    let tail = w_tail
        .chunks_exact(4)
        .zip(a_tail.chunks_exact(4))
        .map(|(x, y)| {
            f32::from_le_bytes([x[0], x[1], x[2], x[3]])
                * f32::from_le_bytes([y[0], y[1], y[2], y[3]])
        })
        .sum();
    finish(acc, tail)
}

/// F16 · F16 over `n` elements (rows of 2n bytes, any alignment).
pub(super) fn f16_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { f16_dot_neon(n, w, a) }
}

/// BF16 · BF16 over `n` elements (rows of 2n bytes, any alignment).
pub(super) fn bf16_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { bf16_dot_neon(n, w, a) }
}

/// F32 · F32 over `n` elements (rows of 4n bytes, any alignment).
pub(super) fn f32_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: NEON is in the aarch64 baseline.
    unsafe { f32_dot_neon(n, w, a) }
}
