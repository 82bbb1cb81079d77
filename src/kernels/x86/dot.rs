//! Dot products of one weight row with one activation row, on 256-bit vectors, generic over
//! the integer multiply-accumulate ([`Mac`]) so that one body serves AVX2, AVX-VNNI and
//! AVX-512 VNNI. Bodies are `#[inline(always)]`: they are instantiated inside each tier's
//! `#[target_feature]` wrapper (see `avx2.rs`, `avx512.rs`).
//!
//! Every body takes the number of blocks `nb` and raw pointers to `nb` weight blocks and `nb`
//! activation blocks (any alignment).
//!
//! # Safety (all bodies)
//! `w` and `a` must point to `nb` whole blocks of their types; the caller must hold AVX2, FMA,
//! F16C and `M`'s features.

use std::arch::x86_64::*;

use super::common::*;

// No software prefetch: on Zen 4 the hardware prefetchers keep the row streams ahead, and
// prefetching 2304 bytes ahead (tuned on the earlier Intel VM, where it took Q4_K from ~11 to
// ~16 GB/s) cost Q4_K ~5% and Q8_0 ~8% from DRAM (`matmul_dram_ours`, best of 50, 1 thread).

/// Integer sums of one legacy block pair, scaled and accumulated: `acc + d * sumi`.
#[inline(always)]
unsafe fn fma_block(acc: __m256, d: __m256, sumi: __m256i) -> __m256 {
    // SAFETY: register-only.
    unsafe { _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc) }
}

/// Runs `$block` (an expression of `$i` and `$acc`, giving the new `$acc`) for every block,
/// alternating two accumulators to hide FMA latency; evaluates to the horizontal sum. A macro,
/// not a closure: closures would not inherit the caller's target features, so the intrinsics
/// inside them would not inline.
macro_rules! two_acc {
    ($nb:expr, |$i:ident, $acc:ident| $block:expr) => {{
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut base = 0;
        while base + 2 <= $nb {
            {
                let ($i, $acc) = (base, acc0);
                acc0 = $block;
            }
            {
                let ($i, $acc) = (base + 1, acc1);
                acc1 = $block;
            }
            base += 2;
        }
        if base < $nb {
            let ($i, $acc) = (base, acc0);
            acc0 = $block;
        }
        hsum_ps(_mm256_add_ps(acc0, acc1))
    }};
}

/// Q4_0 · Q8_0: per block `d_w d_a Σ (q - 8) y`.
#[inline(always)]
pub(super) unsafe fn q4_0<M: Mac>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    if M::ZMM && nb >= 2 {
        // SAFETY: forwarded contract; `M::ZMM` says the caller holds AVX-512 BW and VNNI.
        return unsafe { super::dot_zmm::q4_0(nb, w, a) };
    }
    // SAFETY: see the module's contract; block i of each row is in bounds.
    unsafe {
        two_acc!(nb, |i, acc| {
            let (wb, ab) = (w.add(18 * i), a.add(34 * i));
            let x = _mm256_sub_epi8(nibbles32(wb.add(2)), _mm256_set1_epi8(8));
            let sumi = M::dot_ss(x, load256(ab.add(2)));
            fma_block(acc, f16_product_splat(wb, ab), sumi)
        })
    }
}

/// Q8_0 · Q8_0.
#[inline(always)]
pub(super) unsafe fn q8_0<M: Mac>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: see the module's contract.
    unsafe {
        two_acc!(nb, |i, acc| {
            let (wb, ab) = (w.add(34 * i), a.add(34 * i));
            let sumi = M::dot_ss(load256(wb.add(2)), load256(ab.add(2)));
            fma_block(acc, f16_product_splat(wb, ab), sumi)
        })
    }
}

/// Q5_0 · Q8_0: `q - 16` is the nibble with 0xf0 or-ed in where the fifth bit is clear.
#[inline(always)]
pub(super) unsafe fn q5_0<M: Mac>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: see the module's contract.
    unsafe {
        two_acc!(nb, |i, acc| {
            let (wb, ab) = (w.add(22 * i), a.add(34 * i));
            let high = _mm256_andnot_si256(bits_to_bytes32(wb.add(2)), _mm256_set1_epi8(-16));
            let x = _mm256_or_si256(nibbles32(wb.add(6)), high);
            let sumi = M::dot_ss(x, load256(ab.add(2)));
            fma_block(acc, f16_product_splat(wb, ab), sumi)
        })
    }
}

/// Q4_1 · Q8_1: per block `d_w d_a Σ q y + m_w s_a`.
#[inline(always)]
pub(super) unsafe fn q4_1<M: Mac>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut mins = 0.0f32;
    // SAFETY: see the module's contract.
    let dots = unsafe {
        two_acc!(nb, |i, acc| {
            let (wb, ab) = (w.add(20 * i), a.add(36 * i));
            mins += read_f16(wb.add(2)) * read_f16(ab.add(2));
            let sumi = M::dot_us(nibbles32(wb.add(4)), load256(ab.add(4)));
            fma_block(acc, f16_product_splat(wb, ab), sumi)
        })
    };
    dots + mins
}

/// Q5_1 · Q8_1.
#[inline(always)]
pub(super) unsafe fn q5_1<M: Mac>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut mins = 0.0f32;
    // SAFETY: see the module's contract.
    let dots = unsafe {
        two_acc!(nb, |i, acc| {
            let (wb, ab) = (w.add(24 * i), a.add(36 * i));
            mins += read_f16(wb.add(2)) * read_f16(ab.add(2));
            let high = _mm256_and_si256(bits_to_bytes32(wb.add(4)), _mm256_set1_epi8(0x10));
            let x = _mm256_or_si256(nibbles32(wb.add(8)), high);
            let sumi = M::dot_us(x, load256(ab.add(4)));
            fma_block(acc, f16_product_splat(wb, ab), sumi)
        })
    };
    dots + mins
}

/// The 8 six-bit scales and 8 mins of a Q4_K/Q5_K block, from its 12 packed bytes at `p`:
/// scales 0..4 and 4..8 (one per byte of the low 32 bits of two u64), mins 0..8 (one per
/// byte). Unpacked in 64-bit integer registers, both halves at once (on the vector ports, as
/// LLVM vectorised the 32-bit form, it cost ten operations per block).
#[inline(always)]
pub(super) unsafe fn k4_scales_mins_parts(p: *const u8) -> ([u64; 2], u64) {
    const LOW6: u64 = 0x3f3f_3f3f_3f3f_3f3f;
    const LOW4: u64 = 0x0f0f_0f0f;
    const LOW2: u64 = 0x0303_0303_0303_0303;
    // SAFETY: 12 readable bytes (caller).
    let (u01, u2) = unsafe { (read_u64(p), u64::from(read_u32(p.add(8)))) };
    // Per 32-bit half: [u0, u1] & 0x3f, and the top two bits of each byte of u0, u1 (the
    // shift moves no bit across bytes that the mask keeps).
    let low6 = u01 & LOW6;
    let top2 = (u01 >> 6) & LOW2;
    // [high parts of the scales 4..8, of the mins 4..8].
    let high = ((u2 & LOW4) | ((u2 >> 4) & LOW4) << 32) | top2 << 4;
    let mins = (low6 >> 32) | (high & 0xffff_ffff_0000_0000);
    // Kept in integer registers (`opaque_u64`, not `black_box`, which went through the
    // stack: two store-forwarding round trips per block).
    (
        [
            opaque_u64(low6 & 0xffff_ffff),
            opaque_u64(high & 0xffff_ffff),
        ],
        opaque_u64(mins),
    )
}

/// [`k4_scales_mins_parts`] in one vector: scales in bytes 0..8, mins in bytes 8..16.
#[inline(always)]
pub(super) unsafe fn k4_scales_mins(p: *const u8) -> __m128i {
    // SAFETY: forwarded contract; register-only otherwise.
    unsafe {
        let ([lo, hi], mins) = k4_scales_mins_parts(p);
        _mm_set_epi64x(mins as i64, (lo | hi << 32) as i64)
    }
}

/// Row `s` holds the six-bit scale `s` in all 16 i16 lanes: the `vpmaddwd` scale operand of
/// the AVX2 Q4_K/Q5_K dots as a memory operand (2 KiB, stays in L1), where a `vpshufb` per
/// sub-block kept the shuffle ports busy (~11% of the AVX2 Q4_K dot).
#[repr(align(32))]
struct ScaleRows([[i16; 16]; 64]);

static SCALE_ROWS: ScaleRows = {
    let mut rows = [[0i16; 16]; 64];
    let mut s = 0;
    while s < 64 {
        rows[s] = [s as i16; 16];
        s += 1;
    }
    ScaleRows(rows)
};

/// `x`, opaque to the optimiser but left in its general register: LLVM cannot move the
/// integer work that made it onto the vector ports.
#[inline(always)]
fn opaque_u64(mut x: u64) -> u64 {
    // SAFETY: an empty asm statement; it only names the register that holds `x`.
    unsafe {
        std::arch::asm!("/* {x} */", x = inout(reg) x, options(pure, nomem, nostack, preserves_flags));
    }
    x
}

/// Broadcasts i16 lane `k` of each 128-bit half (as `vpshufb` control).
#[inline(always)]
pub(super) unsafe fn lane16(k: i16) -> __m256i {
    // SAFETY: register-only.
    unsafe { _mm256_set1_epi16((2 * k) | ((2 * k + 1) << 8)) }
}

/// The `vpshufb` control widening the 8 mins (bytes 8..16 of [`k4_scales_mins`], in both
/// 128-bit halves) to 16 i16, each min twice, to pair with the 16 activation block sums (two
/// per sub-block of 32): i16 `l` takes min `l / 2`.
pub(super) const MIN_PAIRS: [i8; 32] = {
    let mut out = [0i8; 32];
    let mut l = 0;
    while l < 16 {
        out[2 * l] = 8 + (l % 8 / 2) as i8 + if l < 8 { 0 } else { 4 };
        out[2 * l + 1] = -128;
        l += 1;
    }
    out
};

/// Adds one Q4_K/Q5_K super-block at `wb` (its quants already split into the 4 sub-block
/// pairs `q`) times the Q8_K block at `ab` to the accumulators: `acc += d Σ_j sc_j Σ q y`,
/// `acc_m += dmin Σ_j m_j Σ y` (8 lanes each, to be summed). d and dmin come from one
/// `vcvtph2ps` (no table: a table line per block competes with the weights in the caches).
#[inline(always)]
unsafe fn k4_accumulate<M: Mac, const TIMES4: bool>(
    wb: *const u8,
    ab: *const u8,
    q: [[__m256i; 2]; 4],
    (acc, acc_m): (__m256, __m256),
) -> (__m256, __m256) {
    // SAFETY: a whole Q4_K/Q5_K block header at `wb` and a Q8_K block at `ab` (caller); the
    // control table is read whole.
    unsafe {
        // (d, dmin) in every lane pair, times the activations' scale: one conversion from a
        // broadcast load, then one in-lane duplicate each.
        let dd = _mm256_mul_ps(
            _mm256_cvtph_ps(_mm_set1_epi32(read_u32(wb) as i32)),
            _mm256_set1_ps(read_f32(ab)),
        );
        let (scales, mins) = k4_scales_mins_parts(wb.add(4));
        // The mins in bytes 8..16 of each half; with VNNI the scales in bytes 0..8 too (the
        // AVX2 path reads its scale operands from `SCALE_ROWS`, by the scalar halves).
        let sc = if M::VNNI {
            let both = _mm_set_epi64x(mins as i64, (scales[0] | scales[1] << 32) as i64);
            _mm256_broadcastsi128_si256(both)
        } else {
            _mm256_set1_epi64x(mins as i64)
        };
        let mins = _mm256_shuffle_epi8(sc, _mm256_loadu_si256(MIN_PAIRS.as_ptr().cast()));
        let prod = _mm256_madd_epi16(mins, load256(ab.add(260)));
        let acc_m = _mm256_fmadd_ps(_mm256_movehdup_ps(dd), _mm256_cvtepi32_ps(prod), acc_m);
        let sumi = k4_dot::<M, TIMES4>(q, sc, scales, ab.add(4));
        let acc = _mm256_fmadd_ps(_mm256_moveldup_ps(dd), _mm256_cvtepi32_ps(sumi), acc);
        (acc, acc_m)
    }
}

/// Scale `k` in every i16 lane, from [`SCALE_ROWS`], given the scale halves of
/// [`k4_scales_mins_parts`] (`TIMES4`: times 4, so that each byte is the row's offset in units
/// of 8 bytes, an address scale, and an index takes one byte extract, no shift or mask).
#[inline(always)]
unsafe fn scale_row<const TIMES4: bool>(scales: [u64; 2], k: usize) -> __m256i {
    let b = usize::from((scales[k / 4] >> (8 * (k % 4))) as u8);
    let offset = if TIMES4 { 8 * b } else { 32 * b };
    // SAFETY: every byte of `scales` is a six-bit scale, times 4 with `TIMES4` (< 64 rows of
    // 32 bytes); the rows are 32-byte aligned.
    unsafe { _mm256_load_si256(SCALE_ROWS.0.as_ptr().cast::<u8>().add(offset).cast()) }
}

/// The `vpshufb` control (per 128-bit half) that makes dwords 0 and 1 the i16 pair `(a, a)`
/// of scale byte `a` and dwords 2 and 3 that of byte `b`: the `vpmaddwd` operand of
/// `vpackssdw(sums of sub-block a, sums of sub-block b)`.
const fn packed_scale_control(a: i8, b: i8) -> [i8; 32] {
    let mut out = [0i8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = if i % 2 == 1 {
            -128
        } else if i % 16 < 8 {
            a
        } else {
            b
        };
        i += 1;
    }
    out
}

/// Controls for the packed sub-block pairs (0, 1), (2, 3), (4, 5), (6, 7).
const PACKED_SCALES: [[i8; 32]; 4] = [
    packed_scale_control(0, 1),
    packed_scale_control(2, 3),
    packed_scale_control(4, 5),
    packed_scale_control(6, 7),
];

/// [`k4_dot`] with VNNI: `vpdpbusd` sums the products of a sub-block's unsigned quants 4 at a
/// time into i32 lanes (each within ±4·31·127, an i16), `vpackssdw` packs two sub-blocks'
/// sums into one register, and one `vpdpwssd` applies both scales: 12 multiplies per block
/// instead of 16, and 4 scale shuffles instead of 8.
#[inline(always)]
unsafe fn k4_dot_vnni<M: Mac>(q: [[__m256i; 2]; 4], sc: __m256i, y: *const u8) -> __m256i {
    // SAFETY: 256 readable activation bytes at `y` (caller); the controls are read whole.
    unsafe {
        let mut sumi = [_mm256_setzero_si256(); 2];
        for (j, pair) in q.iter().enumerate() {
            let s0 = M::dot_us(pair[0], load256(y.add(64 * j)));
            let s1 = M::dot_us(pair[1], load256(y.add(64 * j + 32)));
            let ctl = _mm256_loadu_si256(PACKED_SCALES[j].as_ptr().cast());
            let scales = _mm256_shuffle_epi8(sc, ctl);
            sumi[j & 1] = M::madd_acc(sumi[j & 1], _mm256_packs_epi32(s0, s1), scales);
        }
        _mm256_add_epi32(sumi[0], sumi[1])
    }
}

/// The common tail of Q4_K and Q5_K: `Σ_j sc_j Σ q y` for the 8 sub-blocks of 32, given the
/// sub-block quants of the 4 pairs (low: even sub-block, high: odd) and the scales and mins of
/// [`k4_scales_mins`]. Each `vpmaddwd` scale operand is one `vpshufb` of the scales in a
/// register (scales in memory, broadcast per sub-block, cost two store-forwarding round trips
/// on every block's critical path). Two accumulators, so a VNNI `vpdpwssd` chain is 4 deep.
#[inline(always)]
pub(super) unsafe fn k4_dot<M: Mac, const TIMES4: bool>(
    q: [[__m256i; 2]; 4],
    sc: __m256i,
    scales: [u64; 2],
    y: *const u8,
) -> __m256i {
    if M::VNNI {
        // SAFETY: forwarded contract.
        return unsafe { k4_dot_vnni::<M>(q, sc, y) };
    }
    // SAFETY: 256 readable activation bytes at `y` (caller).
    unsafe {
        // Bytes below 64, so times 4 they stay in their bytes; opaque, or LLVM folds the
        // shift back into every index. Q4_K only: 105 -> 100 instructions per block, vec_dot
        // 80.5 -> 79.8 ns, matmul_n1 4096² 362 -> 352 µs; Q5_K lost 3% (103 -> 106 ns).
        let scales = if TIMES4 {
            [opaque_u64(scales[0] << 2), opaque_u64(scales[1] << 2)]
        } else {
            scales
        };
        let mut sumi = [_mm256_setzero_si256(); 2];
        for (j, pair) in q.iter().enumerate() {
            let p0 = _mm256_maddubs_epi16(pair[0], load256(y.add(64 * j)));
            let p1 = _mm256_maddubs_epi16(pair[1], load256(y.add(64 * j + 32)));
            sumi[0] = M::madd_acc(sumi[0], p0, scale_row::<TIMES4>(scales, 2 * j));
            sumi[1] = M::madd_acc(sumi[1], p1, scale_row::<TIMES4>(scales, 2 * j + 1));
        }
        _mm256_add_epi32(sumi[0], sumi[1])
    }
}

/// The 4 sub-block pairs of a Q4_K block's 128 quant bytes at `qs`: pair j is 32 bytes, sub-block
/// 2j in the low nibbles and 2j + 1 in the high ones (`m4`: 0x0f in every byte). Shared by the
/// plain dot and the AVX2 decode dots (`decode_dot.rs`).
#[inline(always)]
pub(super) unsafe fn q4_k_sub_blocks(qs: *const u8, m4: __m256i) -> [[__m256i; 2]; 4] {
    // SAFETY: 128 readable bytes at `qs` (caller); register-only otherwise.
    unsafe {
        let mut q = [[_mm256_setzero_si256(); 2]; 4];
        for (j, pair) in q.iter_mut().enumerate() {
            let bits = load256(qs.add(32 * j));
            pair[0] = _mm256_and_si256(bits, m4);
            pair[1] = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
        }
        q
    }
}

/// Q4_K · Q8_K: per super-block `d Σ_j sc_j Σ q y - dmin Σ_j m_j Σ y`.
#[inline(always)]
pub(super) unsafe fn q4_k<M: Mac>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // No 512-bit version: `dot_zmm`'s (maddubs + vpdpwssd, 4 shuffles per 64 elements) ran
    // 90 ns per 4096 against 78 ns for this body with `k4_dot_vnni` (Zen 4 double-pumps
    // 512-bit operations, and the shuffle ports were its bound).
    // SAFETY: see the module's contract.
    unsafe {
        // One pair of accumulators: a block is far longer than the FMA latency.
        let mut accs = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let m4 = _mm256_set1_epi8(0x0f);
        for i in 0..nb {
            // A 144-byte block spans up to three cache lines.
            let (wb, ab) = (w.add(144 * i), a.add(292 * i));
            let q = q4_k_sub_blocks(wb.add(16), m4);
            accs = k4_accumulate::<M, true>(wb, ab, q, accs);
        }
        hsum_ps(_mm256_sub_ps(accs.0, accs.1))
    }
}

/// Q5_K · Q8_K: as Q4_K with the fifth bit of sub-block `s` in bit `s` of `qh[l]`.
#[inline(always)]
pub(super) unsafe fn q5_k<M: Mac>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: see the module's contract.
    unsafe {
        // One pair of accumulators: a block is far longer than the FMA latency.
        let mut accs = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let m4 = _mm256_set1_epi8(0x0f);
        let b4 = _mm256_set1_epi8(0x10);
        for i in 0..nb {
            let (wb, ab) = (w.add(176 * i), a.add(292 * i));
            let mut hbits = load256(wb.add(16));
            let qs = wb.add(48);
            let mut q = [[_mm256_setzero_si256(); 2]; 4];
            for (j, pair) in q.iter_mut().enumerate() {
                let bits = load256(qs.add(32 * j));
                // Bits 0 and 1 of `hbits` are the fifth bits of sub-blocks 2j and 2j + 1.
                let h0 = _mm256_and_si256(_mm256_slli_epi16::<4>(hbits), b4);
                let h1 = _mm256_and_si256(_mm256_slli_epi16::<3>(hbits), b4);
                hbits = _mm256_srli_epi16::<2>(hbits);
                pair[0] = _mm256_or_si256(_mm256_and_si256(bits, m4), h0);
                pair[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4), h1);
            }
            accs = k4_accumulate::<M, false>(wb, ab, q, accs);
        }
        hsum_ps(_mm256_sub_ps(accs.0, accs.1))
    }
}

/// The `vpshufb` control (per 128-bit half, on 8 i16 scales) for `vpackssdw` of two
/// [`k16_dot_vnni`] registers holding sub-blocks `k`, `k + 1` and `k + 2`, `k + 3` (low, high
/// halves): i16 lanes 0..4 of the low half take scale `k`, lanes 4..8 scale `k + 2`; in the
/// high half `k + 1` and `k + 3`.
const fn k16_packed_scale_control(k: i8) -> [i8; 32] {
    let mut out = [0i8; 32];
    let mut i = 0;
    while i < 32 {
        let s = k + (i / 16) as i8 + if i % 16 < 8 { 0 } else { 2 };
        out[i] = 2 * s + (i % 2) as i8;
        i += 1;
    }
    out
}

/// Controls for the register pairs covering local scales 0..4 and 4..8 of a half.
const K16_PACKED_SCALES: [[i8; 32]; 2] = [k16_packed_scale_control(0), k16_packed_scale_control(4)];

/// [`k16_dot`] with VNNI: `vpdpbusd` sums a register's products 4 at a time (sub-block 2r in
/// the low half, 2r + 1 in the high; each i32 within 4·63·128, an i16), `vpackssdw` packs
/// two registers, and one `vpdpwssd` applies their four scales: 12 multiplies per block
/// instead of 16, and 4 scale shuffles instead of 8.
#[inline(always)]
unsafe fn k16_dot_vnni<M: Mac>(q: [__m256i; 8], sc16: __m256i, y: *const u8) -> __m256i {
    // SAFETY: 256 readable activation bytes at `y` (caller); the controls are read whole.
    unsafe {
        let lo = _mm256_permute2x128_si256::<0x00>(sc16, sc16);
        let hi = _mm256_permute2x128_si256::<0x11>(sc16, sc16);
        let mut sumi = [_mm256_setzero_si256(); 2];
        for j in 0..4 {
            let s0 = M::dot_us(q[2 * j], load256(y.add(64 * j)));
            let s1 = M::dot_us(q[2 * j + 1], load256(y.add(64 * j + 32)));
            let src = if j < 2 { lo } else { hi };
            let ctl = _mm256_loadu_si256(K16_PACKED_SCALES[j % 2].as_ptr().cast());
            let scales = _mm256_shuffle_epi8(src, ctl);
            sumi[j & 1] = M::madd_acc(sumi[j & 1], _mm256_packs_epi32(s0, s1), scales);
        }
        _mm256_add_epi32(sumi[0], sumi[1])
    }
}

/// `Σ_k sc_k Σ q y` over the 16 sub-blocks of 16 of a super-block, given 8 registers of
/// unsigned quants (32 elements each, in element order) and the 16 scales as i16 in `sc16`
/// (lanes 0..8 in the low half, 8..16 in the high half).
#[inline(always)]
pub(super) unsafe fn k16_dot<M: Mac>(q: [__m256i; 8], sc16: __m256i, y: *const u8) -> __m256i {
    if M::VNNI {
        // SAFETY: forwarded contract.
        return unsafe { k16_dot_vnni::<M>(q, sc16, y) };
    }
    // SAFETY: 256 readable activation bytes at `y` (caller).
    unsafe {
        // Register r covers sub-blocks 2r (low half) and 2r + 1 (high half).
        let lo = _mm256_permute2x128_si256::<0x00>(sc16, sc16);
        let hi = _mm256_permute2x128_si256::<0x11>(sc16, sc16);
        let mut sumi = _mm256_setzero_si256();
        for (r, &qr) in q.iter().enumerate() {
            let src = if r < 4 { lo } else { hi };
            let k = 2 * (r as i16 % 4);
            let ctl = _mm256_set_m128i(
                _mm256_castsi256_si128(lane16(k + 1)),
                _mm256_castsi256_si128(lane16(k)),
            );
            let p = _mm256_maddubs_epi16(qr, load256(y.add(32 * r)));
            sumi = M::madd_acc(sumi, p, _mm256_shuffle_epi8(src, ctl));
        }
        sumi
    }
}

/// The 256 six-bit quants (0..64) of the Q6_K block at `wb`, in element order.
#[inline(always)]
pub(super) unsafe fn q6_k_quants(wb: *const u8) -> [__m256i; 8] {
    // SAFETY: a whole Q6_K block at `wb` (caller).
    unsafe {
        let m4 = _mm256_set1_epi8(0x0f);
        let m2 = _mm256_set1_epi8(0x03);
        let mut q = [_mm256_setzero_si256(); 8];
        for h in 0..2 {
            let l1 = load256(wb.add(64 * h));
            let l2 = load256(wb.add(64 * h + 32));
            let hb = load256(wb.add(128 + 32 * h));
            let hb0 = _mm256_slli_epi16::<4>(_mm256_and_si256(hb, m2));
            let hb1 = _mm256_slli_epi16::<2>(_mm256_and_si256(hb, _mm256_set1_epi8(0x0c)));
            let hb2 = _mm256_and_si256(hb, _mm256_set1_epi8(0x30));
            let hb3 = _mm256_srli_epi16::<2>(_mm256_and_si256(hb, _mm256_set1_epi8(-64)));
            q[4 * h] = _mm256_or_si256(_mm256_and_si256(l1, m4), hb0);
            q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l2, m4), hb1);
            q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(l1), m4), hb2);
            q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(l2), m4), hb3);
        }
        q
    }
}

/// Q6_K · Q8_K: per super-block `d Σ_k sc_k Σ (q - 32) y`, with the 32 folded into the
/// activation sums: `Σ sc (q - 32) y = Σ sc q y - 32 Σ sc bsum`.
#[inline(always)]
pub(super) unsafe fn q6_k<M: Mac>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: see the module's contract.
    unsafe {
        // A macro, not a closure (see `two_acc!`).
        macro_rules! block {
            ($i:expr, $acc:expr) => {{
                let (wb, ab) = (w.add(210 * $i), a.add(292 * $i));
                let d = read_f32(ab) * read_f16(wb.add(208));
                let sc16 = _mm256_cvtepi8_epi16(load128(wb.add(192)));
                let bias = _mm256_slli_epi32::<5>(_mm256_madd_epi16(load256(ab.add(260)), sc16));
                let q = q6_k_quants(wb);
                let sumi = _mm256_sub_epi32(k16_dot::<M>(q, sc16, ab.add(4)), bias);
                _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), $acc)
            }};
        }
        if M::VNNI {
            // Two accumulators, blocks interleaved in pairs: 89 -> 83 ns per 4096 (avx512).
            two_acc!(nb, |i, acc| block!(i, acc))
        } else {
            // One accumulator in a register: AVX2's body needs every vector register, and the
            // pairs of `two_acc!` spilled (111 -> 117 ns); `acc[i & 1]` lived on the stack.
            let mut acc = _mm256_setzero_ps();
            for i in 0..nb {
                acc = block!(i, acc);
            }
            hsum_ps(acc)
        }
    }
}

/// The 16 scales of a Q3_K block, six bits each minus 32, as i8.
#[inline(always)]
unsafe fn q3_k_scales(p: *const u8) -> __m128i {
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    // SAFETY: 12 readable bytes (caller).
    unsafe {
        let (a0, a1, t) = (read_u32(p), read_u32(p.add(4)), read_u32(p.add(8)));
        let s = _mm_setr_epi32(
            ((a0 & LOW4) | ((t & LOW2) << 4)) as i32,
            ((a1 & LOW4) | (((t >> 2) & LOW2) << 4)) as i32,
            (((a0 >> 4) & LOW4) | (((t >> 4) & LOW2) << 4)) as i32,
            (((a1 >> 4) & LOW4) | (((t >> 6) & LOW2) << 4)) as i32,
        );
        _mm_sub_epi8(s, _mm_set1_epi8(32))
    }
}

/// Q3_K · Q8_K: `q = low2 + 4·hbit - 4`; the -4 is folded into the activation sums.
#[inline(always)]
pub(super) unsafe fn q3_k<M: Mac>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: see the module's contract.
    unsafe {
        let m2 = _mm256_set1_epi8(0x03);
        let four = _mm256_set1_epi8(0x04);
        // A macro, not a closure (see `two_acc!`).
        macro_rules! block {
            ($i:expr, $acc:expr) => {{
                let (wb, ab) = (w.add(110 * $i), a.add(292 * $i));
                let d = read_f32(ab) * read_f16(wb.add(108));
                let sc16 = _mm256_cvtepi8_epi16(q3_k_scales(wb.add(96)));
                let bias = _mm256_slli_epi32::<2>(_mm256_madd_epi16(load256(ab.add(260)), sc16));
                let mut hm = load256(wb);
                let mut q = [_mm256_setzero_si256(); 8];
                for h in 0..2 {
                    let mut bits = load256(wb.add(32 + 32 * h));
                    for j in 0..4 {
                        let high = _mm256_and_si256(_mm256_slli_epi16::<2>(hm), four);
                        hm = _mm256_srli_epi16::<1>(hm);
                        q[4 * h + j] = _mm256_or_si256(_mm256_and_si256(bits, m2), high);
                        bits = _mm256_srli_epi16::<2>(bits);
                    }
                }
                let sumi = _mm256_sub_epi32(k16_dot::<M>(q, sc16, ab.add(4)), bias);
                _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), $acc)
            }};
        }
        // Two accumulators, blocks interleaved in pairs, in registers (an `acc[i & 1]` array
        // lived on the stack): 142 -> 137 ns per 4096 (avx2), 111 -> 107 (avx512); rotated
        // as in `q2_k` 146 and 109.
        two_acc!(nb, |i, acc| block!(i, acc))
    }
}

/// Q2_K · Q8_K: `d Σ sc Σ q y - dmin Σ m bsum`, scales and mins 4 bits each.
#[inline(always)]
pub(super) unsafe fn q2_k<M: Mac>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: see the module's contract.
    unsafe {
        let mut mins_total = 0.0f32;
        let m2 = _mm256_set1_epi8(0x03);
        // A macro, not a closure (see `two_acc!`); it adds block `$i`'s mins term to
        // `mins_total`, in block order.
        macro_rules! block {
            ($i:expr, $acc:expr) => {{
                let (wb, ab) = (w.add(84 * $i), a.add(292 * $i));
                let da = read_f32(ab);
                let d = da * read_f16(wb.add(80));
                let dmin = da * read_f16(wb.add(82));
                let packed = load128(wb);
                let sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(packed, _mm_set1_epi8(0x0f)));
                let m16 = _mm256_cvtepu8_epi16(_mm_and_si128(
                    _mm_srli_epi16::<4>(packed),
                    _mm_set1_epi8(0x0f),
                ));
                let mins = hsum_epi32(_mm256_madd_epi16(load256(ab.add(260)), m16));
                mins_total += dmin * mins as f32;
                let mut q = [_mm256_setzero_si256(); 8];
                for h in 0..2 {
                    let mut bits = load256(wb.add(16 + 32 * h));
                    for j in 0..4 {
                        q[4 * h + j] = _mm256_and_si256(bits, m2);
                        bits = _mm256_srli_epi16::<2>(bits);
                    }
                }
                let sumi = k16_dot::<M>(q, sc16, ab.add(4));
                _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), $acc)
            }};
        }
        // Two accumulators taking alternate blocks (even blocks into one, odd into the other,
        // as the former `acc[i & 1]` on the stack), rotated each block rather than unrolled
        // in pairs (their final sum is the same bits in either order): 110 -> 105 ns per 4096
        // (avx2; `two_acc!` 110), 96 -> 93 (avx512; the same).
        let (mut acc_next, mut acc_after) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for i in 0..nb {
            let done = block!(i, acc_next);
            acc_next = acc_after;
            acc_after = done;
        }
        hsum_ps(_mm256_add_ps(acc_next, acc_after)) - mins_total
    }
}

/// 8 f16 at element `at` of `p`, widened.
#[inline(always)]
unsafe fn ld_f16(p: *const u8, at: usize) -> __m256 {
    // SAFETY: 16 readable bytes at element `at` (caller).
    unsafe { _mm256_cvtph_ps(load128(p.add(2 * at))) }
}

/// 8 bf16 at element `at` of `p`, widened (a bf16 is the top half of an f32).
#[inline(always)]
unsafe fn ld_bf16(p: *const u8, at: usize) -> __m256 {
    // SAFETY: 16 readable bytes at element `at` (caller).
    unsafe {
        let wide = _mm256_cvtepu16_epi32(load128(p.add(2 * at)));
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(wide))
    }
}

/// 8 f32 at element `at` of `p`.
#[inline(always)]
unsafe fn ld_f32(p: *const u8, at: usize) -> __m256 {
    // SAFETY: 32 readable bytes at element `at` (caller).
    unsafe { _mm256_loadu_ps(p.add(4 * at).cast()) }
}

/// F16 · F16 over `n` elements: widened to f32, four accumulators.
#[inline(always)]
pub(super) unsafe fn float16<M: Mac>(n: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: 2n readable bytes behind each pointer (caller).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut at = 0;
        while at + 32 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(ld_f16(w, at + 8 * k), ld_f16(a, at + 8 * k), *acc);
            }
            at += 32;
        }
        while at + 8 <= n {
            acc[0] = _mm256_fmadd_ps(ld_f16(w, at), ld_f16(a, at), acc[0]);
            at += 8;
        }
        let mut sum = hsum_ps(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ));
        while at < n {
            sum += read_f16(w.add(2 * at)) * read_f16(a.add(2 * at));
            at += 1;
        }
        sum
    }
}

/// BF16 · BF16 over `n` elements: widened to f32 (a shift), four accumulators.
#[inline(always)]
pub(super) unsafe fn bfloat16<M: Mac>(n: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: 2n readable bytes behind each pointer (caller).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut at = 0;
        while at + 32 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(ld_bf16(w, at + 8 * k), ld_bf16(a, at + 8 * k), *acc);
            }
            at += 32;
        }
        while at + 8 <= n {
            acc[0] = _mm256_fmadd_ps(ld_bf16(w, at), ld_bf16(a, at), acc[0]);
            at += 8;
        }
        let mut sum = hsum_ps(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ));
        while at < n {
            let w1 = f32::from_bits(u32::from(read_u16(w.add(2 * at))) << 16);
            let a1 = f32::from_bits(u32::from(read_u16(a.add(2 * at))) << 16);
            sum += w1 * a1;
            at += 1;
        }
        sum
    }
}

/// F32 · F32 over `n` elements, four accumulators.
#[inline(always)]
pub(super) unsafe fn float32<M: Mac>(n: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: 4n readable bytes behind each pointer (caller).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut at = 0;
        while at + 32 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(ld_f32(w, at + 8 * k), ld_f32(a, at + 8 * k), *acc);
            }
            at += 32;
        }
        while at + 8 <= n {
            acc[0] = _mm256_fmadd_ps(ld_f32(w, at), ld_f32(a, at), acc[0]);
            at += 8;
        }
        let mut sum = hsum_ps(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ));
        while at < n {
            sum += read_f32(w.add(4 * at)) * read_f32(a.add(4 * at));
            at += 1;
        }
        sum
    }
}
