//! Dot products on 512-bit vectors, for the AVX-512 VNNI variant (reached from the generic
//! bodies of `dot.rs` when the [`Mac`](super::common::Mac) says the caller holds AVX-512 BW and
//! VNNI). Decoding is bound by these kernels' instruction throughput as much as by memory
//! (Q4_K on 256-bit vectors ran at ~19.5 GB/s per core in cache, 2 cores read ~33 GB/s), and
//! Zen 4 executes a 512-bit operation as two 256-bit halves but decodes, schedules and retires
//! it as one, so halving the instruction count per block pays where the vector pipes are not
//! the bound.
//!
//! # Safety (all bodies)
//! `w` and `a` must point to `nb` whole blocks of their types; the caller must hold AVX-512
//! F, BW, VL and VNNI, AVX2, FMA and F16C.

use std::arch::x86_64::*;

use super::common::*;

/// The `vpshufb` control that puts, in each dword of 128-bit lanes 0 and 1, byte `lo` twice
/// as an i16 pair `(b, b)` and in lanes 2 and 3 byte `hi`: the `vpdpwssd` scale operand of a
/// pair of Q4_K sub-blocks (64 elements, the 32 low nibbles then the 32 high ones).
const fn scale_pair_control(lo: i32, hi: i32) -> [i32; 16] {
    let mut out = [0; 16];
    let mut i = 0;
    while i < 16 {
        let b = if i < 8 { lo } else { hi };
        out[i] = b | (0x80 << 8) | (b << 16) | (0x80 << 24);
        i += 1;
    }
    out
}

/// Controls for sub-block pairs 0..4: scales `2j` and `2j + 1` (bytes of
/// [`super::dot::k4_scales_mins`]).
const SCALE_PAIRS: [[i32; 16]; 4] = [
    scale_pair_control(0, 1),
    scale_pair_control(2, 3),
    scale_pair_control(4, 5),
    scale_pair_control(6, 7),
];

/// The `vpshufb` control (256-bit) widening the 8 mins (bytes 8..16) to 16 i16, each min
/// twice, to pair with the 16 activation block sums (two per sub-block of 32): i16 `l` takes
/// min `l / 2`.
const MIN_PAIRS: [i8; 32] = {
    let mut out = [0i8; 32];
    let mut l = 0;
    while l < 16 {
        out[2 * l] = 8 + (l / 2) as i8;
        out[2 * l + 1] = -128;
        l += 1;
    }
    out
};

/// Q4_K · Q8_K: per super-block `d Σ_j sc_j Σ q y - dmin Σ_j m_j Σ y`, as `dot::q4_k`.
#[inline(always)]
pub(super) unsafe fn q4_k(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: see the module's contract; block i of each row is in bounds, and the constant
    // tables are read whole (64 and 32 bytes).
    unsafe {
        let m4 = _mm512_set1_epi8(0x0f);
        let pair_ctl: [__m512i; 4] =
            std::array::from_fn(|j| _mm512_loadu_si512(SCALE_PAIRS[j].as_ptr().cast()));
        let min_ctl = _mm256_loadu_si256(MIN_PAIRS.as_ptr().cast());
        let mut acc = _mm512_setzero_ps();
        let mut acc_m = _mm256_setzero_ps();
        for i in 0..nb {
            let (wb, ab) = (w.add(144 * i), a.add(292 * i));
            // d and dmin (lanes 0 and 1) times the activations' scale, in one conversion.
            let scales = _mm_mul_ps(
                _mm_cvtph_ps(_mm_cvtsi32_si128(read_u32(wb) as i32)),
                _mm_set1_ps(read_f32(ab)),
            );
            let sm = _mm512_broadcast_i32x4(super::dot::k4_scales_mins(wb.add(4)));
            let mins = _mm256_shuffle_epi8(_mm512_castsi512_si256(sm), min_ctl);
            let prod = _mm256_madd_epi16(mins, load256(ab.add(260)));
            let dmin =
                _mm256_permutevar8x32_ps(_mm256_castps128_ps256(scales), _mm256_set1_epi32(1));
            acc_m = _mm256_fmadd_ps(dmin, _mm256_cvtepi32_ps(prod), acc_m);
            let (qs, y) = (wb.add(16), ab.add(4));
            // Two accumulators: each `vpdpwssd` chain is 2 deep.
            let mut sumi = [_mm512_setzero_si512(); 2];
            for (j, ctl) in pair_ctl.iter().enumerate() {
                let bits = load256(qs.add(32 * j));
                let both = _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(bits),
                    _mm256_srli_epi16::<4>(bits),
                );
                let q = _mm512_and_si512(both, m4);
                let p = _mm512_maddubs_epi16(q, _mm512_loadu_si512(y.add(64 * j).cast()));
                sumi[j & 1] = dpwssd_zmm(sumi[j & 1], p, _mm512_shuffle_epi8(sm, *ctl));
            }
            let sumi = _mm512_add_epi32(sumi[0], sumi[1]);
            acc = _mm512_fmadd_ps(_mm512_broadcastss_ps(scales), _mm512_cvtepi32_ps(sumi), acc);
        }
        _mm512_reduce_add_ps(acc) - hsum_ps(acc_m)
    }
}

/// Q4_0 · Q8_0, two blocks per 512-bit vector: per block `d_w d_a (Σ q y - 8 Σ y)`, the
/// nibbles unsigned so that `vpdpbusd` takes them as they are. Vector lanes (128-bit) hold the
/// low nibbles of block `i`, its high nibbles, then those of block `i + 1`: the element order of
/// the two activation blocks side by side.
#[inline(always)]
pub(super) unsafe fn q4_0(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: see the module's contract; blocks `i` and `i + 1 < nb` of each row are in bounds.
    unsafe {
        let m4 = _mm512_set1_epi8(0x0f);
        let eight = _mm512_set1_epi8(8);
        // Per 128-bit lane: low nibbles (no shift), high nibbles (4), of block i then i + 1.
        let shifts = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
        // The two block scales (lanes 0 and 2 of the products) over 8 dwords each.
        let halves = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i + 2 <= nb {
            let (wb, ab) = (w.add(18 * i), a.add(34 * i));
            // Each block's 16 bytes twice (broadcast loads), the second copy shifted by 4.
            let twice = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_broadcastsi128_si256(load128(wb.add(2)))),
                _mm256_broadcastsi128_si256(load128(wb.add(20))),
            );
            let q = _mm512_and_si512(_mm512_srlv_epi64(twice, shifts), m4);
            let y = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(load256(ab.add(2))),
                load256(ab.add(36)),
            );
            let zero = _mm512_setzero_si512();
            let sumi = _mm512_sub_epi32(
                _mm512_dpbusd_epi32(zero, q, y),
                _mm512_dpbusd_epi32(zero, eight, y),
            );
            // The four f16 scales (w_i, a_i, w_i+1, a_i+1) in one conversion.
            let packed = u64::from(read_u16(wb))
                | u64::from(read_u16(ab)) << 16
                | u64::from(read_u16(wb.add(18))) << 32
                | u64::from(read_u16(ab.add(34))) << 48;
            let f = _mm_cvtph_ps(_mm_cvtsi64_si128(packed as i64));
            let d = _mm_mul_ps(f, _mm_movehdup_ps(f));
            let d = _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(d));
            acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc);
            i += 2;
        }
        let mut sum = _mm512_reduce_add_ps(acc);
        if i < nb {
            sum +=
                super::dot::q4_0::<super::common::Avx512VnniMac>(1, w.add(18 * i), a.add(34 * i));
        }
        sum
    }
}
