//! Dots on decode-prepared activation layouts ([`DecodeDot`]): for n = 1 the activation row is
//! prepared once per matmul and dotted with every weight row, so the conversions and sums that
//! depend only on the activations move out of the per-row loop.
//!
//! Q4_0 and Q8_0: two blocks per register, the activations in the matching order (see below).
//! Q4_K: the mins' activation sums per sub-block and the f32 scale prepared; on the VNNI tier
//! also one sub-block per 128-bit lane, so that two quant registers share their scales.
//! F16 has none: with the activations widened once to f32 the dot converts only the weights,
//! but reads twice the activation bytes; in L1 that was no faster (AVX-512 141 vs 146 ns per
//! 4096, AVX2 200 vs 147), and the n = 1 matmul 4096×4096 from L3/DRAM fell from 1.0× to 0.64×
//! ggml (one thread, AVX-512).
//!
//! # Safety (all bodies)
//! `w` points to the weight row and `a` to its prepared activations (the sizes the safe
//! wrappers check); the caller holds the features of the wrapper's `#[target_feature]`.
//!
//! [`DecodeDot`]: crate::kernels::DecodeDot

use std::arch::x86_64::*;

use super::common::*;

// ---- Q4_0 · Q8_0 and Q8_0 · Q8_0 ------------------------------------------------------------
//
// Per block the plain dots compute `d_w d_a Σ w y`, widening both f16 scales and making one
// operand unsigned for `vpmaddubsw`/`vpdpbusd` (Q4_0: `q - 8` then the sign trick). Here the
// activation side brings, per pair of blocks: its quants in the order one weight load gives
// two blocks, both scales as f32 and, for Q4_0, `-8 Σ y` as the integer sum's starting value,
// so the nibbles are taken unsigned as they are. The integer sums stay exact; the float part
// is the plain dots' (`d_w · d_a` rounded once, then one FMA per block and lane). On the
// AVX-512 tier the same 256-bit bodies with `vpdpbusd` (a 512-bit Q4_0 one, `vpermb` placing
// two blocks from one masked load, ran at 124 ns per 4096 against 100 for these). No f16
// lookup table: its random loads, one per block, slowed decoding from DRAM (BENCHMARKS.md,
// third decode pass).

/// Bytes of one Q8_0 block (activations, and Q8_0 weights).
const Q8_0_BYTES: usize = 34;

/// The quants, scale and sum of activation block `b` of `acts`.
fn act_block(acts: &[u8], b: usize) -> (&[u8], f32, i32) {
    let block = &acts[b * Q8_0_BYTES..(b + 1) * Q8_0_BYTES];
    let d = half::f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
    let qs = &block[2..];
    let sum = qs.iter().map(|&q| i32::from(q as i8)).sum();
    (qs, d, sum)
}

/// Checks a prepare call's lengths: `k` whole blocks of Q8_0 in, exactly `bytes` out.
fn check_prepare(what: &str, k: usize, acts: &[u8], out: &[u8], bytes: usize) {
    assert!(
        k.is_multiple_of(32) && acts.len() == k / 32 * Q8_0_BYTES && out.len() == bytes,
        "{what}: {k} activations need whole blocks, {} + {bytes} bytes (got {} + {})",
        k / 32 * Q8_0_BYTES,
        acts.len(),
        out.len()
    );
}

/// The 256-bit layouts, 80 (Q4_0) and 72 (Q8_0) bytes per pair of blocks: 64 bytes of quants,
/// the two scales as f32 and, for Q4_0, the two starting sums `-8 Σ y` as i32 (Q8_0 uses the
/// sign trick). Q4_0's quants are elements 0..16 of the first block then of the second, then
/// elements 16..32 likewise (a Q4_0 weight pair loads as its two 16-byte halves); Q8_0's are
/// in the dword order of `vpunpckldq`/`vpunpckhdq` of the two blocks (see [`q8_0_ymm`]), so
/// that i32 lanes alternate between the blocks. Compact on purpose: decoding from DRAM slowed
/// with the activation bytes read per row (the first layout, 128 bytes per pair, took Q8_0
/// from 25 to 13 GB/s of weights while faster in cache).
const YMM_PAIR_Q4_0: usize = 80;
const YMM_PAIR_Q8_0: usize = 72;

fn ymm_bytes_q4_0(k: usize) -> usize {
    (k / 32).div_ceil(2) * YMM_PAIR_Q4_0
}

fn ymm_bytes_q8_0(k: usize) -> usize {
    (k / 32).div_ceil(2) * YMM_PAIR_Q8_0
}

fn prepare_q4_0_ymm(k: usize, acts: &[u8], out: &mut [u8]) {
    check_prepare("prepare_q4_0_ymm", k, acts, out, ymm_bytes_q4_0(k));
    out.fill(0);
    for b in 0..k / 32 {
        let (qs, d, sum) = act_block(acts, b);
        let (pair, half) = (&mut out[b / 2 * YMM_PAIR_Q4_0..][..YMM_PAIR_Q4_0], b % 2);
        pair[16 * half..][..16].copy_from_slice(&qs[..16]);
        pair[32 + 16 * half..][..16].copy_from_slice(&qs[16..]);
        pair[64 + 4 * half..][..4].copy_from_slice(&d.to_le_bytes());
        pair[72 + 4 * half..][..4].copy_from_slice(&(-8 * sum).to_le_bytes());
    }
}

fn prepare_q8_0_ymm(k: usize, acts: &[u8], out: &mut [u8]) {
    check_prepare("prepare_q8_0_ymm", k, acts, out, ymm_bytes_q8_0(k));
    out.fill(0);
    for b in 0..k / 32 {
        let (qs, d, _) = act_block(acts, b);
        let (pair, half) = (&mut out[b / 2 * YMM_PAIR_Q8_0..][..YMM_PAIR_Q8_0], b % 2);
        // Register r (0: unpacklo, 1: unpackhi), 128-bit lane l, step j: dword 4l + 2r + j of
        // each block, the first block's then the second's.
        for r in 0..2 {
            for l in 0..2 {
                for j in 0..2 {
                    let (to, from) = (32 * r + 16 * l + 8 * j + 4 * half, 4 * (4 * l + 2 * r + j));
                    pair[to..to + 4].copy_from_slice(&qs[from..from + 4]);
                }
            }
        }
        pair[64 + 4 * half..][..4].copy_from_slice(&d.to_le_bytes());
    }
}

/// Runs `$pair` (an expression of `$p`, the pair index, `$both`, whether the pair has its
/// second block, and `$acc`, giving the new `$acc`) over the `nb.div_ceil(2)` pairs of blocks,
/// alternating two accumulators (in registers: an indexed array went to the stack); evaluates
/// to `(acc0, acc1)`. A macro, as `dot.rs`'s `two_acc`: closures would not inherit the
/// caller's target features.
macro_rules! over_pairs {
    ($nb:expr, $zero:expr, |$p:ident, $both:ident, $acc:ident| $pair:expr) => {{
        let (mut acc0, mut acc1) = ($zero, $zero);
        let full = $nb / 2;
        let mut next = 0;
        while next + 2 <= full {
            {
                let ($p, $both, $acc) = (next, true, acc0);
                acc0 = $pair;
            }
            {
                let ($p, $both, $acc) = (next + 1, true, acc1);
                acc1 = $pair;
            }
            next += 2;
        }
        if next < full {
            let ($p, $both, $acc) = (next, true, acc0);
            acc0 = $pair;
            next += 1;
        }
        if $nb % 2 == 1 {
            let ($p, $both, $acc) = (next, false, acc1);
            acc1 = $pair;
        }
        (acc0, acc1)
    }};
}

/// The f16 scales `lo` and `hi` (in a u32) widened, alternating over 8 lanes.
#[inline(always)]
unsafe fn scale_pair_alternating(lo: u16, hi: u16) -> __m256 {
    // SAFETY: register-only.
    unsafe {
        let both = (u32::from(lo) | u32::from(hi) << 16) as i32;
        _mm256_cvtph_ps(_mm_set1_epi32(both))
    }
}

/// The f32 pair at `p` in every pair of lanes.
#[inline(always)]
unsafe fn pair_f32_ymm(p: *const u8) -> __m256 {
    // SAFETY: 8 readable bytes (caller).
    unsafe { _mm256_castpd_ps(_mm256_set1_pd(f64::from_bits(read_u64(p)))) }
}

/// Q4_0 weights · the 256-bit layout: two blocks per register (16 quant bytes each), the low
/// nibbles against elements 0..16, the high ones against 16..32, `vpmaddubsw` on the unsigned
/// nibbles as they are, the two products added as i16 (at most 4 · 15 · 127), one
/// `vpmaddwd`; lanes 0..4 hold the first block, 4..8 the second, so the scales `d_w d_a` are
/// formed as a pair and spread by one `vpermps`.
/// With `VNNI` (the caller holds AVX-512 VNNI + VL), `vpdpbusd` replaces the
/// `vpmaddubsw`/`vpaddw`/`vpmaddwd` steps, the starting sums its accumulator.
#[inline(always)]
unsafe fn q4_0_ymm<const VNNI: bool>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: `nb` blocks at `w`, `ymm_bytes_q4_0(32 nb)` at `a` (caller).
    unsafe {
        let (m4, ones) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi16(1));
        let spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
        let (acc0, acc1) = over_pairs!(nb, _mm256_setzero_ps(), |p, both, acc| {
            let (wb, ab) = (w.add(36 * p), a.add(YMM_PAIR_Q4_0 * p));
            let (bits, dw_hi) = if both {
                let bits = _mm256_loadu2_m128i(wb.add(20).cast(), wb.add(2).cast());
                (bits, read_u16(wb.add(18)))
            } else {
                (_mm256_zextsi128_si256(load128(wb.add(2))), 0)
            };
            let lo = _mm256_and_si256(bits, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
            // The starting sums: lane 0 and lane 5 of the pair broadcast, the rest zero.
            let init = _mm256_blend_epi32::<0b0010_0001>(
                _mm256_setzero_si256(),
                _mm256_set1_epi64x(read_u64(ab.add(72)) as i64),
            );
            let sumi = if VNNI {
                let first = _mm256_dpbusd_epi32(init, lo, load256(ab));
                _mm256_dpbusd_epi32(first, hi, load256(ab.add(32)))
            } else {
                let prod = _mm256_add_epi16(
                    _mm256_maddubs_epi16(lo, load256(ab)),
                    _mm256_maddubs_epi16(hi, load256(ab.add(32))),
                );
                _mm256_add_epi32(_mm256_madd_epi16(prod, ones), init)
            };
            let both_dw = (u32::from(read_u16(wb)) | u32::from(dw_hi) << 16) as i32;
            let dw = _mm_cvtph_ps(_mm_cvtsi32_si128(both_dw));
            let da = _mm_castsi128_ps(_mm_cvtsi64_si128(read_u64(ab.add(64)) as i64));
            let d = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_mul_ps(dw, da)), spread);
            _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc)
        });
        hsum_ps(_mm256_add_ps(acc0, acc1))
    }
}

/// `Σ x y` per 4 bytes as i32, by `|x|` · `y` signed by `x` (exact when `y` holds no -128).
#[inline(always)]
unsafe fn sign_dot(x: __m256i, y: __m256i, ones: __m256i) -> __m256i {
    // SAFETY: register-only.
    unsafe {
        let p = _mm256_maddubs_epi16(_mm256_abs_epi8(x), _mm256_sign_epi8(y, x));
        _mm256_madd_epi16(p, ones)
    }
}

/// Q8_0 weights · the 256-bit layout: each block's 32 bytes in one load (in address order, as
/// the plain dot reads the stream), interleaved by dwords (`vpunpckldq`/`vpunpckhdq`), so that
/// i32 lanes alternate between the two blocks and the scales are two broadcast pairs; the sign
/// trick (`|w|` · `y` signed by `w`) as the plain dot.
/// With `VNNI` (the caller holds AVX-512 VNNI + VL), `vpdpbusd` on the same operands.
#[inline(always)]
unsafe fn q8_0_ymm<const VNNI: bool>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: `nb` blocks at `w`, `ymm_bytes_q8_0(32 nb)` at `a` (caller).
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let (acc0, acc1) = over_pairs!(nb, _mm256_setzero_ps(), |p, both, acc| {
            let (wb, ab) = (w.add(68 * p), a.add(YMM_PAIR_Q8_0 * p));
            let x0 = load256(wb.add(2));
            let (x1, dw_hi) = if both {
                (load256(wb.add(36)), read_u16(wb.add(34)))
            } else {
                (_mm256_setzero_si256(), 0)
            };
            let (lo, hi) = (_mm256_unpacklo_epi32(x0, x1), _mm256_unpackhi_epi32(x0, x1));
            let sumi = if VNNI {
                let (ylo, yhi) = (load256(ab), load256(ab.add(32)));
                let lo_sum = _mm256_dpbusd_epi32(
                    _mm256_setzero_si256(),
                    _mm256_abs_epi8(lo),
                    _mm256_sign_epi8(ylo, lo),
                );
                _mm256_dpbusd_epi32(lo_sum, _mm256_abs_epi8(hi), _mm256_sign_epi8(yhi, hi))
            } else {
                _mm256_add_epi32(
                    sign_dot(lo, load256(ab), ones),
                    sign_dot(hi, load256(ab.add(32)), ones),
                )
            };
            let dw = scale_pair_alternating(read_u16(wb), dw_hi);
            let d = _mm256_mul_ps(dw, pair_f32_ymm(ab.add(64)));
            _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc)
        });
        hsum_ps(_mm256_add_ps(acc0, acc1))
    }
}

// ---- Q4_K · Q8_K -----------------------------------------------------------------------------
//
// The 32 quant bytes of pair j of a Q4_K block hold sub-block 2j in their low nibbles and 2j + 1
// in their high ones, so the plain dots multiply each sub-block's 32 quants on their own and
// scale each product: per block 8 `vpmaddwd` with a scale row each (AVX2), or 4 `vpackssdw` +
// `vpdpwssd` (VNNI). Here each 128-bit lane of a quant register holds one sub-block: 16 quant
// bytes broadcast to both lanes, the high lane shifted by 4 (`vpsrlvq`), masked, so a pair is
// the registers [2j | 2j + 1] of elements 0..16 and [2j | 2j + 1] of elements 16..32, and the
// prepared activations are in that order. Both registers of a pair take the same scales, so two
// `vpdpbusd` sum a pair into one register (each i32 within 8·15·128, an i16) and one
// `vpackssdw` + `vpdpwssd` scales two pairs (2 per block; plain: 4). The mins term takes each
// sub-block's activation sum (two Q8_K `bsums`), prepared as 8 i16 (one 128-bit `vpmaddwd`).
// The AVX2 tier keeps the plain dot's body on quants in element order (the lane layout, the
// pair's i16 products added before one `vpmaddwd` with a `vpshufb` scale operand, took 86
// instructions per block against 96 but ran 82 against 79.5 ns per 4096: its 8 `vpsrlvq` and 4
// `vpshufb` per block crowd the shift/shuffle pipes where the plain body has 4 shifts); its
// gains are the mins term (128-bit, no widening shuffle) and one index for both rows.

/// Bytes of a Q8_K activation block (f32 scale, 256 quants, 16 i16 sums).
const Q8_K_BYTES: usize = 292;
/// Bytes of a prepared Q4_K activation block: the 256 quants (lane or element order), the 8
/// sub-block sums as i16 (at 256), the scale as f32 (at 272), 12 bytes of padding (blocks keep
/// the quants 32-byte aligned to each other, and 288 = 2 · 144 lets one index address both
/// rows). Less than the plain 292.
const BLOCK_Q4_K: usize = 288;

fn bytes_q4_k(k: usize) -> usize {
    k / 256 * BLOCK_Q4_K
}

/// The prepared Q4_K layout with the quants in the lane order (VNNI tier).
fn prepare_q4_k_lanes(k: usize, acts: &[u8], out: &mut [u8]) {
    prepare_q4_k::<true>(k, acts, out);
}

/// The prepared Q4_K layout with the quants in element order (AVX2 tier).
fn prepare_q4_k_in_order(k: usize, acts: &[u8], out: &mut [u8]) {
    prepare_q4_k::<false>(k, acts, out);
}

fn prepare_q4_k<const LANES: bool>(k: usize, acts: &[u8], out: &mut [u8]) {
    assert!(
        k.is_multiple_of(256) && acts.len() == k / 256 * Q8_K_BYTES && out.len() == bytes_q4_k(k),
        "prepare_q4_k: {k} activations need whole blocks, {} + {} bytes (got {} + {})",
        k / 256 * Q8_K_BYTES,
        bytes_q4_k(k),
        acts.len(),
        out.len()
    );
    out.fill(0);
    for (src, dst) in acts
        .chunks_exact(Q8_K_BYTES)
        .zip(out.chunks_exact_mut(BLOCK_Q4_K))
    {
        let qs = &src[4..260];
        if !LANES {
            dst[..256].copy_from_slice(qs);
        }
        for j in (0..4).filter(|_| LANES) {
            // Register r of pair j: elements 16r..16r + 16 of sub-blocks 2j, then 2j + 1.
            for r in 0..2 {
                for half in 0..2 {
                    let from = 64 * j + 32 * half + 16 * r;
                    let to = 64 * j + 32 * r + 16 * half;
                    dst[to..to + 16].copy_from_slice(&qs[from..from + 16]);
                }
            }
        }
        let bsum = |g: usize| i32::from(i16::from_le_bytes([src[260 + 2 * g], src[261 + 2 * g]]));
        for s in 0..8 {
            // Within ±4096 for any Q8_K block (32 quants of at most 128).
            let sum = (bsum(2 * s) + bsum(2 * s + 1)) as i16;
            dst[256 + 2 * s..258 + 2 * s].copy_from_slice(&sum.to_le_bytes());
        }
        dst[272..276].copy_from_slice(&src[..4]);
    }
}

/// The VNNI `vpshufb` controls for `vpackssdw` of pairs 2h and 2h + 1: in the low half i16
/// lanes 0..4 take scale byte 4h (sub-block 4h), 4..8 byte 4h + 2; in the high half 4h + 1 and
/// 4h + 3.
const Q4_K_PACKED_SCALES: [[i8; 32]; 2] = {
    let mut out = [[0i8; 32]; 2];
    let mut h = 0;
    while h < 2 {
        let mut i = 0;
        while i < 32 {
            let sub = 4 * h + i / 16 + if i % 16 < 8 { 0 } else { 2 };
            out[h][i] = if i % 2 == 1 { -128 } else { sub as i8 };
            i += 1;
        }
        h += 1;
    }
    out
};

/// Q4_K weights · the prepared layout: per block `d Σ_j sc_j Σ q y - dmin Σ_j m_j Σ y`, the
/// sub-blocks paired by 128-bit lanes (see above); the caller holds AVX-512 VNNI + VL.
#[inline(always)]
unsafe fn q4_k_lanes_vnni(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: `nb` blocks at `w`, `bytes_q4_k(256 nb)` at `a` (caller); the controls are read
    // whole.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0f);
        let shifts = _mm256_setr_epi64x(0, 0, 4, 4);
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();
        for i in 0..nb {
            let (wb, ab) = (w.add(144 * i), a.add(BLOCK_Q4_K * i));
            // (d, dmin) in every lane pair, times the activations' scale.
            let dd = _mm256_mul_ps(
                _mm256_cvtph_ps(_mm_set1_epi32(read_u32(wb) as i32)),
                _mm256_set1_ps(read_f32(ab.add(272))),
            );
            let (scales, mins) = super::dot::k4_scales_mins_parts(wb.add(4));
            let sc_mins = _mm_set_epi64x(mins as i64, (scales[0] | scales[1] << 32) as i64);
            let m16 = _mm_unpackhi_epi8(sc_mins, _mm_setzero_si128());
            let prod_m = _mm_madd_epi16(m16, load128(ab.add(256)));
            let dmin = _mm_movehdup_ps(_mm256_castps256_ps128(dd));
            acc_m = _mm_fmadd_ps(dmin, _mm_cvtepi32_ps(prod_m), acc_m);
            let sc = _mm256_broadcastsi128_si256(sc_mins);
            let qs = wb.add(16);
            // Register r of pair j: 16 quant bytes, low nibbles in the low half, high ones in
            // the high half (a macro: see `over_pairs!`).
            macro_rules! quants {
                ($j:expr, $r:expr) => {{
                    let bytes = _mm256_broadcastsi128_si256(load128(qs.add(32 * $j + 16 * $r)));
                    _mm256_and_si256(_mm256_srlv_epi64(bytes, shifts), m4)
                }};
            }
            let mut pairs = [_mm256_setzero_si256(); 4];
            for (j, pair) in pairs.iter_mut().enumerate() {
                let y = ab.add(64 * j);
                let first = _mm256_dpbusd_epi32(_mm256_setzero_si256(), quants!(j, 0), load256(y));
                *pair = _mm256_dpbusd_epi32(first, quants!(j, 1), load256(y.add(32)));
            }
            let mut sumi = _mm256_setzero_si256();
            for h in 0..2 {
                let ctl = _mm256_loadu_si256(Q4_K_PACKED_SCALES[h].as_ptr().cast());
                let packed = _mm256_packs_epi32(pairs[2 * h], pairs[2 * h + 1]);
                sumi = dpwssd_ymm(sumi, packed, _mm256_shuffle_epi8(sc, ctl));
            }
            let d = _mm256_moveldup_ps(dd);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
        // One horizontal sum per row (the mins in the low lanes).
        hsum_ps(_mm256_sub_ps(acc, _mm256_zextps128_ps256(acc_m)))
    }
}

/// Q4_K weights · the prepared layout in element order, on AVX2: the plain dot's body (see
/// `dot.rs`'s `k4_dot`), the mins term from the 8 prepared sub-block sums (one 128-bit
/// `vpmaddwd` of the zero-extended mins, no `vpshufb` widening), and one index for both rows
/// (the prepared blocks are twice the weight blocks' 144 bytes).
#[inline(always)]
unsafe fn q4_k_in_order_avx2(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: `nb` blocks at `w`, `bytes_q4_k(256 nb)` at `a` (caller).
    unsafe {
        let m4 = _mm256_set1_epi8(0x0f);
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();
        for i in 0..nb {
            let (wb, ab) = (w.add(144 * i), a.add(BLOCK_Q4_K * i));
            let dd = _mm256_mul_ps(
                _mm256_cvtph_ps(_mm_set1_epi32(read_u32(wb) as i32)),
                _mm256_set1_ps(read_f32(ab.add(272))),
            );
            let (scales, mins) = super::dot::k4_scales_mins_parts(wb.add(4));
            let m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mins as i64));
            let prod_m = _mm_madd_epi16(m16, load128(ab.add(256)));
            let dmin = _mm_movehdup_ps(_mm256_castps256_ps128(dd));
            acc_m = _mm_fmadd_ps(dmin, _mm_cvtepi32_ps(prod_m), acc_m);
            let qs = wb.add(16);
            let mut q = [[_mm256_setzero_si256(); 2]; 4];
            for (j, pair) in q.iter_mut().enumerate() {
                let bits = load256(qs.add(32 * j));
                pair[0] = _mm256_and_si256(bits, m4);
                pair[1] = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
            }
            let unused = _mm256_setzero_si256();
            let sumi = super::dot::k4_dot::<Avx2Mac, true>(q, unused, scales, ab);
            acc = _mm256_fmadd_ps(_mm256_moveldup_ps(dd), _mm256_cvtepi32_ps(sumi), acc);
        }
        // One horizontal sum per row (the mins in the low lanes).
        hsum_ps(_mm256_sub_ps(acc, _mm256_zextps128_ps256(acc_m)))
    }
}

/// Safe entries for one tier: `prepared!(name, "features", body, prepare, bytes_fn,
/// elements_per_block, weight_bytes_per_block)`, giving a [`DecodeDot`] constant `name`.
///
/// [`DecodeDot`]: crate::kernels::DecodeDot
macro_rules! prepared {
    ($name:ident, $features:literal, $body:path, $prepare:path, $bytes:path, $elems:expr, $w_bytes:expr) => {
        pub(crate) const $name: crate::kernels::DecodeDot = {
            #[target_feature(enable = $features)]
            unsafe fn body(nb: usize, w: *const u8, a: *const u8) -> f32 {
                // SAFETY: forwarded contract; the features are enabled on this function.
                unsafe { $body(nb, w, a) }
            }

            /// Safe entry: checks the lengths.
            fn dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
                let nb = n / $elems;
                assert!(
                    n.is_multiple_of($elems) && w.len() >= nb * $w_bytes && a.len() >= $bytes(n),
                    "{} (prepared): {n} elements need whole blocks and {} + {} bytes (got {} + {})",
                    stringify!($name),
                    nb * $w_bytes,
                    $bytes(n),
                    w.len(),
                    a.len()
                );
                // SAFETY: only reachable through a kernel table built after detecting this
                // tier's features; the lengths were checked above.
                unsafe { body(nb, w.as_ptr(), a.as_ptr()) }
            }

            crate::kernels::DecodeDot {
                prepared_bytes: $bytes,
                prepare: $prepare,
                dot,
            }
        };
    };
}

/// One tier's prepared dots and its [`DecodeKernels`](crate::kernels::DecodeKernels) table:
/// the same 256-bit bodies, with `vpdpbusd` where `$vnni`; `q4_k` is the tier's Q4_K entry
/// (defined beside the tier: the two tiers' bodies and quant orders differ).
macro_rules! tier {
    ($features:literal, $vnni:literal, q4_k: $q4_k:expr) => {
        use crate::kernels::DecodeKernels;

        prepared!(
            Q4_0,
            $features,
            super::q4_0_ymm::<$vnni>,
            super::prepare_q4_0_ymm,
            super::ymm_bytes_q4_0,
            32,
            18
        );
        prepared!(
            Q8_0,
            $features,
            super::q8_0_ymm::<$vnni>,
            super::prepare_q8_0_ymm,
            super::ymm_bytes_q8_0,
            32,
            34
        );

        pub(crate) const DECODE: DecodeKernels = DecodeKernels {
            q4_0: Some(Q4_0),
            q8_0: Some(Q8_0),
            q4_k: $q4_k,
        };
    };
}

/// The AVX2 tier's prepared dots (AVX2 + FMA + F16C).
pub(crate) mod avx2 {
    tier!("avx2,fma,f16c", false, q4_k: Some(Q4_K));
    prepared!(
        Q4_K,
        "avx2,fma,f16c",
        super::q4_k_in_order_avx2,
        super::prepare_q4_k_in_order,
        super::bytes_q4_k,
        256,
        144
    );
}

/// The AVX-512 tier's prepared dots (F + BW + VL + VNNI, with AVX2 + FMA + F16C).
pub(crate) mod avx512 {
    tier!(
        "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
        true,
        q4_k: Some(Q4_K)
    );
    prepared!(
        Q4_K,
        "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
        super::q4_k_lanes_vnni,
        super::prepare_q4_k_lanes,
        super::bytes_q4_k,
        256,
        144
    );
}
