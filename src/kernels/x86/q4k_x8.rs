//! n = 1 group dots on the repacked Q4_K layout "Q4_K×8" (`kernels::repack`, docs/kernels.md):
//! 8 rows interleaved per 256-element block, so one 32-byte load holds the same 4 quant bytes
//! of all 8 rows (row r in i32 lane r) and every vector operation works for 8 rows at once.
//!
//! Per x8 block of 1152 bytes (the byte table is in docs/kernels.md): the 8 `d` and 8
//! `dmin` as f16 (one `vcvtph2ps` each), the 12 packed 6-bit scale bytes transposed (byte
//! 32 + 8i + r = row r's `scales[i]`), unpacked for all 8 rows by a few byte-wise operations
//! (the per-row unpacking bound the one-row dots), and the nibbles in 4-byte pieces.
//! Each piece: low nibbles times 4 activations broadcast (elements 64j + 4g..), high nibbles
//! times the 4 at 64j + 32 + 4g, summed per row and sub-block:
//! - AVX2: `vpmaddubsw` into i16 accumulators (8 pieces of 2·15·128 each stay within an i16:
//!   ±30720), one `vpmaddwd` per sub-block with that sub-block's scales duplicated per i16 pair;
//! - AVX-512 VNNI (256-bit): `vpdpbusd` into i32, the high nibbles taken in place (`& 0xF0`, 16
//!   times their value: one operation fewer per piece, divided back exactly per block), one
//!   `vpmulld` per sub-block with its scales as i32.
//!
//! One group per pass: several groups per pass, sharing each activation broadcast, ran faster
//! in L1/L2 but read interleaved streams, and the decode loop's projections beyond the L3 then
//! took 4.4–4.7 ms one thread against 2.7–2.8 ms one group at a time.
//!
//! The mins term takes the 8 prepared sub-block sums of the activations (two Q8_K `bsums`
//! each): `vpmaddwd` of (min[2t][r], min[2t+1][r]) with (sum[2t], sum[2t+1]).
//! The float part per block: `d · y.d` and `dmin · y.d` for 8 rows, then one FMA each into two
//! accumulators per row (scaled sums and mins apart, as in the one-row dots), subtracted at
//! the end: per row `nb` terms in each, within `kernels_support::tolerance` of the scalar dot.
//! The integer sums are exact.
//!
//! The activation side is the AVX2 prepared Q4_K layout of `decode_dot.rs` (quants in element
//! order, sub-block sums, the scale as f32; 288 bytes per block).
//!
//! # Safety (all bodies)
//! `w` points to `groups` whole groups of `nb` x8 blocks and `a` to `nb` prepared activation
//! blocks (the sizes the safe entries check); `out` to `8 · groups` writable floats; the caller
//! holds the features of the entry's `#[target_feature]`.

use std::arch::x86_64::*;

use super::common::*;
use super::decode_dot::{bytes_q4_k, prepare_q4_k_in_order};
use crate::kernels::{DECODE_CHUNK_BYTES, GroupDot};

/// Bytes of one x8 block: 8 rows × 144.
const X8_BLOCK_BYTES: usize = crate::kernels::repack::Q4K_X8_BLOCK_BYTES;
/// Bytes of one prepared activation block (`decode_dot.rs`'s in-order Q4_K layout).
const ACT_BLOCK_BYTES: usize = 288;
/// Offsets in an x8 block.
const DMIN_AT: usize = 16;
const SCALES_AT: usize = 32;
const QS_AT: usize = 128;
/// Offsets in a prepared activation block: sub-block sums (8 i16) and the scale (f32).
const SUMS_AT: usize = 256;
const ACT_D_AT: usize = 272;

/// `vpshufb` controls giving, from a register with the same 16 bytes in both lanes (sub-blocks
/// s and s + 1, one byte per row), sub-block s (`[0]`) or s + 1 (`[1]`) with each row's scale
/// zero-extended into both i16 of its i32 lane: low lane rows 0..4, high lane rows 4..8.
const DUP_PAIRS: [[i8; 32]; 2] = {
    let mut out = [[0i8; 32]; 2];
    let mut t = 0;
    while t < 2 {
        let mut i = 0;
        while i < 32 {
            let (lane, p) = (i / 16, i % 16);
            out[t][i] = if p % 2 == 0 {
                (8 * t + 4 * lane + p / 4) as i8
            } else {
                -128
            };
            i += 1;
        }
        t += 1;
    }
    out
};

/// `vpshufb` control interleaving the two 8-byte halves of each lane: (s, s + 1) per row.
const INTERLEAVE_HALVES: [i8; 32] = {
    let mut out = [0i8; 32];
    let mut i = 0;
    while i < 32 {
        let p = i % 16;
        out[i] = ((p % 2) * 8 + p / 2) as i8;
        i += 1;
    }
    out
};

/// The scales and mins of the 8 rows of the x8 block at `b`, one byte per row and sub-block:
/// `sc[h]` byte 8t + r (lane t / 2) = row r's scale of sub-block 4h + t; `mins` likewise.
/// ggml's `get_scale_min_k4`: sub-blocks 0..4 are the low 6 bits of `scales[s]` (`mins[s]`:
/// of `scales[s + 4]`); 4..8 take 4 bits of `scales[s + 4]` (low: scale, high: min) and the
/// top 2 bits of `scales[s - 4]` (scale) or `scales[s]` (min).
#[inline(always)]
unsafe fn scales_mins(b: *const u8) -> ([__m256i; 2], [__m256i; 2]) {
    // SAFETY: bytes 32..128 of the block are readable (caller); the rest is register-only.
    unsafe {
        let low6 = _mm256_set1_epi8(63);
        let low4 = _mm256_set1_epi8(0x0f);
        let top2 = _mm256_set1_epi8(0x30);
        let a = load256(b.add(SCALES_AT)); // scales[0..4]
        let m = load256(b.add(SCALES_AT + 32)); // scales[4..8]
        let c = load256(b.add(SCALES_AT + 64)); // scales[8..12]
        // (x >> 6) << 4 per byte, as 16-bit shifts then a mask dropping the neighbour's bits.
        let a_top = _mm256_and_si256(_mm256_srli_epi16::<2>(a), top2);
        let m_top = _mm256_and_si256(_mm256_srli_epi16::<2>(m), top2);
        let sc = [
            _mm256_and_si256(a, low6),
            _mm256_or_si256(_mm256_and_si256(c, low4), a_top),
        ];
        let mins = [
            _mm256_and_si256(m, low6),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(c), low4), m_top),
        ];
        (sc, mins)
    }
}

/// Per row (i32 lane r): Σ_s min[s][r] · (sub-block s's activation sum), from the prepared
/// sums at `sums` (8 i16).
#[inline(always)]
unsafe fn mins_dot<const VNNI: bool>(mins: [__m256i; 2], sums: *const u8) -> __m256i {
    // SAFETY: 16 readable bytes at `sums` (caller); the control is read whole.
    unsafe {
        let ctl = load256(INTERLEAVE_HALVES.as_ptr().cast());
        let mut acc = _mm256_setzero_si256();
        for (h, m) in mins.into_iter().enumerate() {
            // Lanes: (4h, 4h + 1) and (4h + 2, 4h + 3), interleaved per row.
            let pairs = _mm256_shuffle_epi8(m, ctl);
            let halves = [
                _mm256_castsi256_si128(pairs),
                _mm256_extracti128_si256::<1>(pairs),
            ];
            for (t, half) in halves.into_iter().enumerate() {
                let m16 = _mm256_cvtepu8_epi16(half);
                let s = _mm256_set1_epi32(read_u32(sums.add(8 * h + 4 * t)) as i32);
                acc = if VNNI {
                    dpwssd_ymm(acc, m16, s)
                } else {
                    _mm256_add_epi32(acc, _mm256_madd_epi16(m16, s))
                };
            }
        }
        acc
    }
}

/// One group of 8 rows (`nb` x8 blocks at `w`) with one prepared activation row, into
/// `out[0..8]`.
#[inline(always)]
unsafe fn group<const VNNI: bool>(nb: usize, w: *const u8, a: *const u8, out: *mut f32) {
    // SAFETY: `nb` x8 blocks at `w`, `nb` prepared blocks at `a`, 8 floats at `out` (caller);
    // the controls are read whole.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0f);
        let mf0 = _mm256_set1_epi8(0xf0u8 as i8);
        let dup = [
            load256(DUP_PAIRS[0].as_ptr().cast()),
            load256(DUP_PAIRS[1].as_ptr().cast()),
        ];
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm256_setzero_ps();
        for i in 0..nb {
            let ab = a.add(ACT_BLOCK_BYTES * i);
            let b = w.add(X8_BLOCK_BYTES * i);
            let yd = _mm256_set1_ps(read_f32(ab.add(ACT_D_AT)));
            let (sc, mins) = scales_mins(b);
            let msum = mins_dot::<VNNI>(mins, ab.add(SUMS_AT));
            let mut isum = _mm256_setzero_si256();
            // VNNI: the high nibbles' sums, 16 times their value.
            let mut isum16 = _mm256_setzero_si256();
            for j in 0..4 {
                let mut lo = _mm256_setzero_si256();
                let mut hi = _mm256_setzero_si256();
                // VNNI: odd pieces into their own accumulators (chains of 4 `vpdpbusd`, whose
                // latency bound chains of 8).
                let mut lo_odd = _mm256_setzero_si256();
                let mut hi_odd = _mm256_setzero_si256();
                for p in 0..8 {
                    let yl = _mm256_set1_epi32(read_u32(ab.add(64 * j + 4 * p)) as i32);
                    let yh = _mm256_set1_epi32(read_u32(ab.add(64 * j + 32 + 4 * p)) as i32);
                    let q = load256(b.add(QS_AT + 256 * j + 32 * p));
                    if VNNI {
                        let (l, h) = if p % 2 == 0 {
                            (&mut lo, &mut hi)
                        } else {
                            (&mut lo_odd, &mut hi_odd)
                        };
                        *l = _mm256_dpbusd_epi32(*l, _mm256_and_si256(q, m4), yl);
                        *h = _mm256_dpbusd_epi32(*h, _mm256_and_si256(q, mf0), yh);
                    } else {
                        let ql = _mm256_and_si256(q, m4);
                        let qh = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
                        lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(ql, yl));
                        hi = _mm256_add_epi16(hi, _mm256_maddubs_epi16(qh, yh));
                    }
                }
                // Sub-blocks 2j (low nibbles) and 2j + 1: bytes 16 (j % 2).. of register
                // sc[j / 2]'s lanes, (j % 2) == 0 the low lane.
                let reg = sc[j / 2];
                if VNNI {
                    lo = _mm256_add_epi32(lo, lo_odd);
                    hi = _mm256_add_epi32(hi, hi_odd);
                    let lane = if j % 2 == 0 {
                        _mm256_castsi256_si128(reg)
                    } else {
                        _mm256_extracti128_si256::<1>(reg)
                    };
                    let s_lo = _mm256_cvtepu8_epi32(lane);
                    let s_hi = _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(lane, lane));
                    isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(lo, s_lo));
                    isum16 = _mm256_add_epi32(isum16, _mm256_mullo_epi32(hi, s_hi));
                } else {
                    let both = if j % 2 == 0 {
                        _mm256_permute2x128_si256::<0x00>(reg, reg)
                    } else {
                        _mm256_permute2x128_si256::<0x11>(reg, reg)
                    };
                    let s_lo = _mm256_shuffle_epi8(both, dup[0]);
                    let s_hi = _mm256_shuffle_epi8(both, dup[1]);
                    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(lo, s_lo));
                    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(hi, s_hi));
                }
            }
            if VNNI {
                // Exact: every term of isum16 is a multiple of 16.
                isum = _mm256_add_epi32(isum, _mm256_srai_epi32::<4>(isum16));
            }
            let d = _mm256_mul_ps(_mm256_cvtph_ps(load128(b)), yd);
            let dmin = _mm256_mul_ps(_mm256_cvtph_ps(load128(b.add(DMIN_AT))), yd);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), acc);
            acc_m = _mm256_fmadd_ps(dmin, _mm256_cvtepi32_ps(msum), acc_m);
        }
        _mm256_storeu_ps(out, _mm256_sub_ps(acc, acc_m));
    }
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

/// The AVX2 group dot (AVX2 + FMA + F16C); safe entry: checks the lengths.
fn dot_avx2(k: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let (nb, groups) = check_group_dot(
        "q4_k_x8 avx2",
        k,
        w,
        a,
        out,
        X8_BLOCK_BYTES,
        ACT_BLOCK_BYTES,
    );
    // SAFETY: only reachable through a kernel table built after detecting AVX2 + FMA + F16C;
    // the lengths were checked above.
    unsafe { groups_avx2(nb, groups, w.as_ptr(), a.as_ptr(), out.as_mut_ptr()) }
}

/// The AVX-512 VNNI group dot (256-bit `vpdpbusd`); safe entry: checks the lengths.
fn dot_vnni(k: usize, w: &[u8], a: &[u8], out: &mut [f32]) {
    let (nb, groups) = check_group_dot(
        "q4_k_x8 avx512 vnni",
        k,
        w,
        a,
        out,
        X8_BLOCK_BYTES,
        ACT_BLOCK_BYTES,
    );
    // SAFETY: only reachable through a kernel table built after detecting AVX-512 F/BW/VL +
    // VNNI (with AVX2 + FMA + F16C); the lengths were checked above.
    unsafe { groups_vnni(nb, groups, w.as_ptr(), a.as_ptr(), out.as_mut_ptr()) }
}

/// The AVX2 tier's Q4_K×8 group dot (also the AVX-512 tier's without VNNI).
pub(crate) const AVX2: GroupDot = GroupDot {
    prepared_bytes: bytes_q4_k,
    prepare: prepare_q4_k_in_order,
    dot: dot_avx2,
    task_bytes: DECODE_CHUNK_BYTES,
};

/// The AVX-512 tier's Q4_K×8 group dot with VNNI.
pub(crate) const AVX512_VNNI: GroupDot = GroupDot {
    prepared_bytes: bytes_q4_k,
    prepare: prepare_q4_k_in_order,
    dot: dot_vnni,
    task_bytes: DECODE_CHUNK_BYTES,
};
