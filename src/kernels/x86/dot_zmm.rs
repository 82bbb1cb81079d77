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
