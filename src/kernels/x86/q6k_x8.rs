//! n = 1 group dots on the repacked Q6_K layout "Q6_K×8" (`kernels::repack::q6_k`, byte table
//! there and in docs/kernels.md): 8 rows per 256-element block, so one 32-byte load holds the
//! same 4 quant bytes of all 8 rows (row r in i32 lane r) and every vector operation works for
//! 8 rows at once, with no horizontal sums.
//!
//! Per piece (4 elements of 4 sub-blocks, 8 rows: three loads), the four quant registers take
//! 11 operations (`A0 & 63`, `A1 & 63`, and the nibbles of `B` with the top bits of `A0`/`A1`),
//! each times 4 activations broadcast, summed per row and sub-block from `-32 Σ y` (prepared),
//! so that the unsigned levels give `Σ (q - 32) y`:
//! - AVX2: `vpmaddubsw` (2·63·128 per i16), two pieces added in i16 (within ±32256), widened
//!   by `vpmaddwd` with ones;
//! - AVX-512 VNNI (256-bit): `vpdpbusd` into the i32 sums directly.
//!
//! Then one `vpmulld` per sub-block by its 8 scales (`vpmovsxbd` of 8 transposed bytes), and
//! per block one FMA of `d · y.d` (8 rows) with the converted sums: per row `nb` terms, within
//! `kernels_support::tolerance` of the scalar dot. The integer sums are exact (per block at
//! most 16·128·16·32·128 < 2^31).
//!
//! Two groups per pass sharing the activation broadcasts ran faster in L1 with VNNI (45 against
//! 51 ns per 4096-element row) but slower from L3 (57 against 55) and from DRAM, AVX2 no faster
//! anywhere: one group per pass.
//!
//! The activation side (prepared once per matmul): per block the 256 quants, the 16 sub-block
//! terms `-32 Σ y` as i32 (from the quants, not from `bsums`) and the scale as f32: 324 bytes.
//!
//! # Safety (all bodies)
//! `w` points to `groups` whole groups of `nb` x8 blocks and `a` to `nb` prepared activation
//! blocks (the sizes the safe entries check); `out` to `8 · groups` writable floats; the caller
//! holds the features of the entry's `#[target_feature]`.

use std::arch::x86_64::*;

use super::common::*;
use crate::kernels::{DECODE_CHUNK_BYTES, GroupDot};

/// Bytes of one x8 block: 8 rows × 210.
const X8_BLOCK_BYTES: usize = 1680;
/// Offsets in an x8 block: the 8 `d` at 0, the transposed scales, the pieces.
const SCALES_AT: usize = 16;
const PIECES_AT: usize = 144;
const PIECE_BYTES: usize = 96;
/// Bytes of a Q8_K block (the paired activation type).
const Q8_K_BYTES: usize = 292;
/// Bytes of one prepared activation block and its offsets: quants at 0, the 16 i32 terms
/// `-32 Σ y` per sub-block, the scale.
const ACT_BLOCK_BYTES: usize = 324;
const ACT_BIAS_AT: usize = 256;
const ACT_D_AT: usize = 320;

/// AVX2 + FMA + F16C.
pub(crate) const AVX2: GroupDot = GroupDot {
    prepared_bytes,
    prepare,
    dot: dot_avx2,
    task_bytes: DECODE_CHUNK_BYTES,
};

/// AVX-512 F/BW/VL + VNNI (on 256-bit registers).
pub(crate) const VNNI: GroupDot = GroupDot {
    prepared_bytes,
    prepare,
    dot: dot_vnni,
    task_bytes: DECODE_CHUNK_BYTES,
};

fn prepared_bytes(k: usize) -> usize {
    k / 256 * ACT_BLOCK_BYTES
}

/// `acts` (`k` Q8_K activations) into the prepared layout.
fn prepare(k: usize, acts: &[u8], out: &mut [u8]) {
    assert!(
        k.is_multiple_of(256)
            && acts.len() == k / 256 * Q8_K_BYTES
            && out.len() == prepared_bytes(k),
        "q6_k_x8 prepare: {k} activations need whole blocks, {} + {} bytes (got {} + {})",
        k / 256 * Q8_K_BYTES,
        prepared_bytes(k),
        acts.len(),
        out.len()
    );
    for (src, dst) in acts
        .chunks_exact(Q8_K_BYTES)
        .zip(out.chunks_exact_mut(ACT_BLOCK_BYTES))
    {
        let qs = &src[4..260];
        dst[..256].copy_from_slice(qs);
        for (s, bias) in dst[ACT_BIAS_AT..ACT_D_AT].chunks_exact_mut(4).enumerate() {
            let sum: i32 = qs[16 * s..16 * (s + 1)]
                .iter()
                .map(|&q| i32::from(q as i8))
                .sum();
            bias.copy_from_slice(&(-32 * sum).to_le_bytes());
        }
        dst[ACT_D_AT..].copy_from_slice(&src[..4]);
    }
}

/// The four quant registers (levels 0..64, k = 0..4) of the piece at `p`.
#[inline(always)]
unsafe fn piece_quants(p: *const u8) -> [__m256i; 4] {
    // SAFETY: 96 readable bytes at `p` (caller); the rest is register-only.
    unsafe {
        let low4 = _mm256_set1_epi8(0x0f);
        let low6 = _mm256_set1_epi8(0x3f);
        let top2 = _mm256_set1_epi8(0x30);
        let (a0, a1, b) = (load256(p), load256(p.add(32)), load256(p.add(64)));
        // (a >> 6) << 4 per byte: a 16-bit shift, then a mask dropping the neighbour's bits.
        let high0 = _mm256_and_si256(_mm256_srli_epi16::<2>(a0), top2);
        let high1 = _mm256_and_si256(_mm256_srli_epi16::<2>(a1), top2);
        [
            _mm256_and_si256(a0, low6),
            _mm256_and_si256(a1, low6),
            _mm256_or_si256(_mm256_and_si256(b, low4), high0),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(b), low4), high1),
        ]
    }
}

/// One group of 8 rows (`nb` x8 blocks at `w`) with the prepared activations at `a`, into
/// `out[0..8]`.
#[inline(always)]
unsafe fn group<const VNNI: bool>(nb: usize, w: *const u8, a: *const u8, out: *mut f32) {
    // SAFETY: `nb` x8 blocks at `w`, `nb` prepared blocks at `a`, 8 floats at `out` (caller).
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        for i in 0..nb {
            let (x8, ab) = (w.add(X8_BLOCK_BYTES * i), a.add(ACT_BLOCK_BYTES * i));
            let mut sumi = _mm256_setzero_si256();
            // Half h, pieces g in 4 half_g.. : sub-blocks s = 8h + 2k + half_g.
            for h in 0..2 {
                for half_g in 0..2 {
                    // No closures around intrinsics: they would not inherit the target
                    // features (see `dot.rs`'s `two_acc!`).
                    let sub = |k: usize| 8 * h + 2 * k + half_g;
                    let mut sums = [_mm256_setzero_si256(); 4];
                    for (k, s) in sums.iter_mut().enumerate() {
                        *s = splat_u32(ab.add(ACT_BIAS_AT + 4 * sub(k)));
                    }
                    let piece = |g: usize| x8.add(PIECES_AT + PIECE_BYTES * (8 * h + g));
                    let y_at = |k: usize, g: usize| ab.add(128 * h + 32 * k + 4 * g);
                    for pair in 0..2 {
                        let g = 4 * half_g + 2 * pair;
                        let (q0, q1) = (piece_quants(piece(g)), piece_quants(piece(g + 1)));
                        for k in 0..4 {
                            if VNNI {
                                sums[k] =
                                    _mm256_dpbusd_epi32(sums[k], q0[k], splat_u32(y_at(k, g)));
                                sums[k] =
                                    _mm256_dpbusd_epi32(sums[k], q1[k], splat_u32(y_at(k, g + 1)));
                            } else {
                                let p = _mm256_add_epi16(
                                    _mm256_maddubs_epi16(q0[k], splat_u32(y_at(k, g))),
                                    _mm256_maddubs_epi16(q1[k], splat_u32(y_at(k, g + 1))),
                                );
                                sums[k] = _mm256_add_epi32(sums[k], _mm256_madd_epi16(p, ones));
                            }
                        }
                    }
                    for (k, s) in sums.into_iter().enumerate() {
                        let scales = load_i64(x8.add(SCALES_AT + 8 * sub(k)));
                        let scales = _mm256_cvtepi8_epi32(scales);
                        sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(s, scales));
                    }
                }
            }
            let yd = _mm256_set1_ps(read_f32(ab.add(ACT_D_AT)));
            let d = _mm256_mul_ps(_mm256_cvtph_ps(load128(x8)), yd);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
        _mm256_storeu_ps(out, acc);
    }
}

/// The 4 bytes at `p` in every i32 lane.
#[inline(always)]
unsafe fn splat_u32(p: *const u8) -> __m256i {
    // SAFETY: 4 readable bytes at `p` (caller).
    unsafe { _mm256_set1_epi32(read_u32(p) as i32) }
}

/// 8 bytes at `p` in the low half of a register.
#[inline(always)]
unsafe fn load_i64(p: *const u8) -> __m128i {
    // SAFETY: 8 readable bytes at `p` (caller); unaligned load.
    unsafe { _mm_loadl_epi64(p.cast()) }
}

/// All `groups` groups at `w`, one after the other.
#[inline(always)]
unsafe fn all_groups<const VNNI: bool>(
    nb: usize,
    groups: usize,
    w: *const u8,
    a: *const u8,
    out: *mut f32,
) {
    // SAFETY: forwarded contract; group g is within the `groups` groups.
    unsafe {
        for g in 0..groups {
            group::<VNNI>(nb, w.add(g * nb * X8_BLOCK_BYTES), a, out.add(8 * g));
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn groups_avx2(nb: usize, groups: usize, w: *const u8, a: *const u8, out: *mut f32) {
    // SAFETY: forwarded contract; the features are enabled on this function.
    unsafe { all_groups::<false>(nb, groups, w, a, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn groups_vnni(nb: usize, groups: usize, w: *const u8, a: *const u8, out: *mut f32) {
    // SAFETY: forwarded contract; the features are enabled on this function.
    unsafe { all_groups::<true>(nb, groups, w, a, out) }
}

/// The AVX2 group dot ([`crate::kernels::GroupDotFn`]); checks the lengths.
fn dot_avx2(k: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let (nb, groups) = check_group_dot(
        "q6_k_x8 avx2",
        k,
        w,
        a,
        out,
        X8_BLOCK_BYTES,
        ACT_BLOCK_BYTES,
    );
    // SAFETY: only reachable through a kernel table built after detecting AVX2 + FMA + F16C
    // (`avx2::kernels`, `avx512::kernels`); the lengths were checked above.
    unsafe { groups_avx2(nb, groups, w.as_ptr(), a.as_ptr(), out.as_mut_ptr()) }
}

/// The AVX-512 VNNI group dot ([`crate::kernels::GroupDotFn`]); checks the lengths.
fn dot_vnni(k: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let (nb, groups) = check_group_dot(
        "q6_k_x8 vnni",
        k,
        w,
        a,
        out,
        X8_BLOCK_BYTES,
        ACT_BLOCK_BYTES,
    );
    // SAFETY: only reachable through the AVX-512 table, built after detecting AVX-512 F/BW/VL
    // and (for this entry) VNNI (`avx512::kernels`); the lengths were checked above.
    unsafe { groups_vnni(nb, groups, w.as_ptr(), a.as_ptr(), out.as_mut_ptr()) }
}
