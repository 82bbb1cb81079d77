//! n = 1 group dots on the repacked Q8_0 layout "Q8_0×8" (`kernels::repack::q8_0`, byte table
//! there and in docs/kernels.md): 8 rows per 32-element block, so one 32-byte load holds the
//! same 4 quants of all 8 rows (row r in i32 lane r), dotted with 4 activations broadcast, and
//! every vector operation works for 8 rows at once with no horizontal sums.
//!
//! Per piece (4 elements of 8 rows: one load) into the block's i32 sums:
//! - AVX2: the sign trick, `vpmaddubsw(|w|, sign(y, w))` then `vpmaddwd` with ones. `|w|` is
//!   taken per load (exact for a -128 quant, 128 as unsigned) rather than `sign(w, y)` with a
//!   prepared `|y|`, which is one operation fewer but wrong for w = -128 and y < 0 (the
//!   negation of -128 wraps), a byte that GGUF files may hold;
//! - AVX-512 VNNI (256-bit): `vpdpbusd` of `w ^ 0x80` = `w + 128` (unsigned) and `y`, the
//!   sums starting from the prepared `-128 Σ y` of the block.
//!
//! Two sums per block (even and odd pieces) so that the chain of multiply-adds is half as
//! long. The integer sums are exact (at most 32 · 128 · 127 < 2^24, so also exact as f32);
//! the float part per block is the scalar dot's, `sumi · (d_w · d_y)` added to one sum per
//! row in block order, no FMA: every row's result is [`scalar::dot_q8_0`]'s bit for bit.
//!
//! The activation side (prepared once per matmul): per block the 32 quants, the scale as f32
//! and `-128 Σ y` as i32: 40 bytes.
//!
//! # Safety (all bodies)
//! `w` points to `groups` whole groups of `nb` x8 blocks and `a` to `nb` prepared activation
//! blocks (the sizes the safe entries check); `out` to `8 · groups` writable floats; the caller
//! holds the features of the entry's `#[target_feature]`.
//!
//! [`scalar::dot_q8_0`]: crate::kernels::scalar::dot_q8_0

use std::arch::x86_64::*;

use super::common::*;
use crate::kernels::GroupDot;

/// Bytes of one x8 block: 8 rows × 34.
const X8_BLOCK_BYTES: usize = crate::kernels::repack::Q8_0_X8_BLOCK_BYTES;
/// Where the quant pieces start in an x8 block (after the 8 `d`).
const PIECES_AT: usize = 16;
/// Bytes of a Q8_0 block (the paired activation type).
const Q8_0_BYTES: usize = 34;
/// Bytes of one prepared activation block and its offsets: the quants at 0, the scale, the
/// starting sum `-128 Σ y`.
const ACT_BLOCK_BYTES: usize = 40;
const ACT_D_AT: usize = 32;
const ACT_BIAS_AT: usize = 36;

/// AVX2 + FMA + F16C.
pub(crate) const AVX2: GroupDot = GroupDot {
    prepared_bytes,
    prepare,
    dot: dot_avx2,
    task_bytes: TASK_BYTES,
};

/// AVX-512 F/BW/VL + VNNI (on 256-bit registers).
pub(crate) const VNNI: GroupDot = GroupDot {
    prepared_bytes,
    prepare,
    dot: dot_vnni,
    task_bytes: TASK_BYTES,
};

fn prepared_bytes(k: usize) -> usize {
    k / 32 * ACT_BLOCK_BYTES
}

/// `acts` (`k` Q8_0 activations) into the prepared layout.
fn prepare(k: usize, acts: &[u8], out: &mut [u8]) {
    assert!(
        k.is_multiple_of(32) && acts.len() == k / 32 * Q8_0_BYTES && out.len() == prepared_bytes(k),
        "q8_0_x8 prepare: {k} activations need whole blocks, {} + {} bytes (got {} + {})",
        k / 32 * Q8_0_BYTES,
        prepared_bytes(k),
        acts.len(),
        out.len()
    );
    for (src, dst) in acts
        .chunks_exact(Q8_0_BYTES)
        .zip(out.chunks_exact_mut(ACT_BLOCK_BYTES))
    {
        let qs = &src[2..];
        dst[..32].copy_from_slice(qs);
        let d = half::f16::from_bits(u16::from_le_bytes([src[0], src[1]])).to_f32();
        dst[ACT_D_AT..ACT_BIAS_AT].copy_from_slice(&d.to_le_bytes());
        let sum: i32 = qs.iter().map(|&q| i32::from(q as i8)).sum();
        dst[ACT_BIAS_AT..].copy_from_slice(&(-128 * sum).to_le_bytes());
    }
}

/// The 4 bytes at `p` in every i32 lane.
#[inline(always)]
unsafe fn splat_u32(p: *const u8) -> __m256i {
    // SAFETY: 4 readable bytes at `p` (caller).
    unsafe { _mm256_set1_epi32(read_u32(p) as i32) }
}

/// `sum` plus, per i32 lane, the dot of the 4 quants of `w` with the 4 activations of `y`
/// (the same in every lane); `ones` is 1 in every i16.
#[inline(always)]
unsafe fn piece<const VNNI: bool>(sum: __m256i, w: __m256i, y: __m256i, ones: __m256i) -> __m256i {
    // SAFETY: register-only.
    unsafe {
        if VNNI {
            let unsigned = _mm256_xor_si256(w, _mm256_set1_epi8(-128));
            _mm256_dpbusd_epi32(sum, unsigned, y)
        } else {
            // |y| <= 127 (Q8_0 activations hold no -128): pair sums within 2 · 128 · 127.
            let p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(y, w));
            _mm256_add_epi32(sum, _mm256_madd_epi16(p, ones))
        }
    }
}

/// `P` groups of 8 rows (`nb` x8 blocks at each `w[j]`) with the prepared activations at `a`,
/// into `out[j][0..8]`: each activation broadcast shared by the `P` groups, and every row's
/// operations those of its group dotted alone (so the same bits whatever `P`).
#[inline(always)]
unsafe fn groups_at<const VNNI: bool, const P: usize>(
    nb: usize,
    w: [*const u8; P],
    a: *const u8,
    out: [*mut f32; P],
) {
    // SAFETY: `nb` x8 blocks at every `w[j]`, `nb` prepared blocks at `a`, 8 floats at every
    // `out[j]` (caller).
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); P];
        for i in 0..nb {
            let ab = a.add(ACT_BLOCK_BYTES * i);
            let start = if VNNI {
                splat_u32(ab.add(ACT_BIAS_AT))
            } else {
                _mm256_setzero_si256()
            };
            let mut even = [start; P];
            let mut odd = [_mm256_setzero_si256(); P];
            for p in (0..8).step_by(2) {
                let (y0, y1) = (splat_u32(ab.add(4 * p)), splat_u32(ab.add(4 * (p + 1))));
                for j in 0..P {
                    let x8 = w[j].add(X8_BLOCK_BYTES * i);
                    let (w0, w1) = (
                        load256(x8.add(PIECES_AT + 32 * p)),
                        load256(x8.add(PIECES_AT + 32 * (p + 1))),
                    );
                    even[j] = piece::<VNNI>(even[j], w0, y0, ones);
                    odd[j] = piece::<VNNI>(odd[j], w1, y1, ones);
                }
            }
            let yd = _mm256_set1_ps(read_f32(ab.add(ACT_D_AT)));
            for j in 0..P {
                let x8 = w[j].add(X8_BLOCK_BYTES * i);
                let sumi = _mm256_cvtepi32_ps(_mm256_add_epi32(even[j], odd[j]));
                let d = _mm256_mul_ps(_mm256_cvtph_ps(load128(x8)), yd);
                // No FMA: the scalar dot's rounding, term by term.
                acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(sumi, d));
            }
        }
        for j in 0..P {
            _mm256_storeu_ps(out[j], acc[j]);
        }
    }
}

/// Groups per pass, one from each of as many contiguous parts of the call's groups: that many
/// sequential streams (as the ggml-layout Q8_0 dot's 4 rows from 4 parts). One thread, tasks of
/// 512 KiB, alternated with one group per pass (06:03–06:04, load 1.2–1.4): ours 1795–1835 µs
/// against 1905–1918 at 11008×4096 (avx512), 355–375 against 431–486 at 4096×4096.
const PARTS: usize = 4;

/// Target bytes of weights per n = 1 task ([`GroupDot::task_bytes`]): [`PARTS`] parts of
/// 128 KiB, each a long sequential stream (a group of 4096-element rows is 34 KiB, so tasks of
/// [`DECODE_CHUNK_BYTES`](crate::kernels::DECODE_CHUNK_BYTES) were one group each). One thread,
/// beyond the L3 (11008×4096), `--n1-paired` ggml / ours went from 1.05–1.29 to 1.28–2.60
/// (dev-2c-zen4, loaded; BENCHMARKS.md, session 11). Q4_K×8 and Q6_K×8 dot one group at a
/// time and keep the default (not measured with larger tasks).
const TASK_BYTES: usize = PARTS * 128 * 1024;

/// All `groups` groups at `w`: [`PARTS`] at a time from as many contiguous parts, the rest one
/// by one.
#[inline(always)]
unsafe fn all_groups<const VNNI: bool>(
    nb: usize,
    groups: usize,
    w: *const u8,
    a: *const u8,
    out: *mut f32,
) {
    // SAFETY: forwarded contract; groups `i + j q` (i < q, j < PARTS) and those from
    // `PARTS q` on are below `groups`.
    unsafe {
        let group_bytes = nb * X8_BLOCK_BYTES;
        let q = groups / PARTS;
        for i in 0..q {
            let w_at = std::array::from_fn(|j| w.add((i + j * q) * group_bytes));
            let out_at = std::array::from_fn(|j| out.add(8 * (i + j * q)));
            groups_at::<VNNI, PARTS>(nb, w_at, a, out_at);
        }
        for g in PARTS * q..groups {
            groups_at::<VNNI, 1>(nb, [w.add(g * group_bytes)], a, [out.add(8 * g)]);
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

/// Checks the lengths a group dot is given (32-element blocks) and returns `(nb, groups)`;
/// panics naming `what` otherwise.
fn check(what: &str, k: usize, w: &[u8], a: &[u8], out: &[f32]) -> (usize, usize) {
    let (nb, groups) = (k / 32, out.len() / 8);
    assert!(
        k.is_multiple_of(32)
            && out.len().is_multiple_of(8)
            && w.len() >= groups * nb * X8_BLOCK_BYTES
            && a.len() >= nb * ACT_BLOCK_BYTES,
        "{what}: {} rows of {k} elements need whole blocks and groups, {} + {} bytes (got {} + {})",
        out.len(),
        groups * nb * X8_BLOCK_BYTES,
        nb * ACT_BLOCK_BYTES,
        w.len(),
        a.len()
    );
    (nb, groups)
}

/// The AVX2 group dot ([`crate::kernels::GroupDotFn`]); checks the lengths.
fn dot_avx2(k: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let (nb, groups) = check("q8_0_x8 avx2", k, w, a, out);
    // SAFETY: only reachable through a kernel table built after detecting AVX2 + FMA + F16C
    // (`avx2::kernels`, `avx512::kernels`); the lengths were checked above.
    unsafe { groups_avx2(nb, groups, w.as_ptr(), a.as_ptr(), out.as_mut_ptr()) }
}

/// The AVX-512 VNNI group dot ([`crate::kernels::GroupDotFn`]); checks the lengths.
fn dot_vnni(k: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let (nb, groups) = check("q8_0_x8 vnni", k, w, a, out);
    // SAFETY: only reachable through the AVX-512 table, built after detecting AVX-512 F/BW/VL
    // and (for this entry) VNNI (`avx512::kernels`); the lengths were checked above.
    unsafe { groups_vnni(nb, groups, w.as_ptr(), a.as_ptr(), out.as_mut_ptr()) }
}
