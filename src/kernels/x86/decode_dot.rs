//! Dots on decode-prepared activation layouts ([`DecodeDot`]): for n = 1 the activation row is
//! prepared once per matmul and dotted with every weight row, so the conversions and sums that
//! depend only on the activations move out of the per-row loop.
//!
//! Q4_0 and Q8_0: eight blocks per step, reduced to one lane per block, the activations in the
//! matching order (see below); one driver (`over_octets`) runs either body (`OctetBody`),
//! on one row or on `R` rows at once sharing each activation load (Q8_0's several-row dot,
//! 4 rows from 4 contiguous parts of the task, as F16's: one driver, `row_groups`, takes
//! both several-row bodies, `RowsBody`).
//! Q4_K: the mins' activation sums per sub-block and the f32 scale prepared; on the VNNI tier
//! also one sub-block per 128-bit lane, so that two quant registers share their scales.
//! F16: the activation row as it is (an f32 row saved no time, see below), dotted with
//! several weight rows at once.
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
// activation side brings its quants in the order the weight loads need, the scales as f32 and,
// where a body starts its integer sums from it, `-8 Σ y` (Q4_0) or `-128 Σ y` (Q8_0 with
// VNNI), so the weights are taken unsigned as they are or with one `vpxor`. The integer sums
// stay exact; the float part is the scalar dot's terms (`d_w · d_a` rounded once, times the
// block's sum, one lane per block). Eight blocks per step, so that the scales are widened,
// multiplied, and the sums converted and accumulated once per 8 blocks instead of once per 2
// (the former pair layouts: per 4096, AVX2 Q4_0 105 → 75 ns, Q8_0 113 → 101). On the AVX-512
// tier the same 256-bit bodies with `vpdpbusd` (a 512-bit Q4_0 pair body, `vpermb` placing
// two blocks from one masked load, ran at 124 ns per 4096 against 100 for the 256-bit pair
// body). No f16 lookup table: its random loads, one per block, slowed decoding from DRAM
// (BENCHMARKS.md, third decode pass).

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

/// `Σ x y` per 4 bytes as i32, by `|x|` · `y` signed by `x` (exact when `y` holds no -128).
#[inline(always)]
unsafe fn sign_dot(x: __m256i, y: __m256i, ones: __m256i) -> __m256i {
    // SAFETY: register-only.
    unsafe {
        let p = _mm256_maddubs_epi16(_mm256_abs_epi8(x), _mm256_sign_epi8(y, x));
        _mm256_madd_epi16(p, ones)
    }
}

/// The Q8_0 layouts, per 8 blocks: their quants in address order (256 bytes), their 8 scales
/// as f32 (32) and, for the `vpdpbusd` body (`vnni`), their starting sums `-128 Σ y` as i32
/// (32): 36 or 40 bytes per block against the plain blocks' 34. A last group of fewer blocks
/// is zero-padded.
const fn octet_q8_0(vnni: bool) -> usize {
    if vnni { 320 } else { 288 }
}

fn octet_bytes_q8_0<const VNNI: bool>(k: usize) -> usize {
    (k / 32).div_ceil(8) * octet_q8_0(VNNI)
}

fn prepare_q8_0_octets<const VNNI: bool>(k: usize, acts: &[u8], out: &mut [u8]) {
    check_prepare(
        "prepare_q8_0_octets",
        k,
        acts,
        out,
        octet_bytes_q8_0::<VNNI>(k),
    );
    out.fill(0);
    let size = octet_q8_0(VNNI);
    for b in 0..k / 32 {
        let (qs, d, sum) = act_block(acts, b);
        let (octet, j) = (&mut out[b / 8 * size..][..size], b % 8);
        octet[32 * j..][..32].copy_from_slice(qs);
        octet[256 + 4 * j..][..4].copy_from_slice(&d.to_le_bytes());
        if VNNI {
            octet[288 + 4 * j..][..4].copy_from_slice(&(-128 * sum).to_le_bytes());
        }
    }
}

/// `Σ x y` of one block per 4 bytes as i32: without `VNNI` the sign trick (`|x|` · `y` signed
/// by `x`, exact as `y` holds no -128: `vpmaddubsw`'s pair sums stay within 2 · 128 · 127;
/// `x + 128` unsigned would reach 2 · 255 · 127 and saturate); with `VNNI`, `vpdpbusd` of
/// `x ^ 0x80` = `x + 128` (0..=255) and `y`, which sums in i32 without saturating, so
/// `Σ x y + 128 Σ y`, the caller adding the prepared `-128 Σ y`.
#[inline(always)]
unsafe fn q8_0_block_sums<const VNNI: bool>(x: __m256i, y: __m256i, ones: __m256i) -> __m256i {
    // SAFETY: register-only.
    unsafe {
        if VNNI {
            let unsigned = _mm256_xor_si256(x, _mm256_set1_epi8(-128));
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), unsigned, y)
        } else {
            sign_dot(x, y, ones)
        }
    }
}

/// `a` and `b` summed by pairs of lanes and alternated: the sum of their `vpunpckldq` and
/// `vpunpckhdq` (one `vphaddd`, with its lanes in another order, ran 2 to 20% slower on Zen 4).
#[inline(always)]
unsafe fn add_unpacked_epi32(a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: register-only.
    unsafe { _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b)) }
}

/// `a` and `b` summed by pairs of 64-bit lanes and alternated (`vpunpck[lh]qdq`).
#[inline(always)]
unsafe fn add_unpacked_epi64(a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: register-only.
    unsafe { _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b)) }
}

/// The float part of an octet body: the 8 weight scales (f16 bits, lanes 0..4 in `lo` and
/// 4..8 in `hi`) widened by one `vcvtph2ps` and multiplied by the 8 prepared f32 scales at
/// `scales`, and the 8 exact integer sums `total` converted. Returns (scales, sums).
#[inline(always)]
unsafe fn octet_scales_sums(
    lo: u64,
    hi: u64,
    scales: *const u8,
    total: __m256i,
) -> (__m256, __m256) {
    // SAFETY: 32 readable bytes at `scales` (caller).
    unsafe {
        let dw = _mm256_cvtph_ps(_mm_set_epi64x(hi as i64, lo as i64));
        let d = _mm256_mul_ps(dw, _mm256_loadu_ps(scales.cast()));
        (d, _mm256_cvtepi32_ps(total))
    }
}

/// One octet layout's body: up to 8 blocks of `R` weight rows against one octet of prepared
/// activations, each activation load shared by the `R` rows; per row 8 lanes of scales and
/// exact sums (one lane per block, zero past `count`), the same whatever `R`. A trait, not a
/// closure, so that the `#[inline(always)]` body inlines under the caller's target features.
trait OctetBody: Copy {
    /// Bytes of one weight block.
    const BLOCK_BYTES: usize;
    /// Bytes of one octet of the prepared layout.
    const OCTET_BYTES: usize;

    /// # Safety
    /// `count` (≤ 8) blocks at `w + r * stride` for `r < R`, one octet at `a`; the caller
    /// holds the body's features.
    unsafe fn octet<const R: usize>(
        self,
        count: usize,
        w: *const u8,
        stride: usize,
        a: *const u8,
    ) -> [(__m256, __m256); R];
}

/// Runs `body` over `nb` blocks of `R` rows (`stride` bytes apart from `w`) and their octets at
/// `a`, into `out[r * out_stride]`: per row two accumulators taking alternate groups of 8
/// blocks, a last partial group into the second, one horizontal sum; so every row's result is
/// the one-row dot's, bit for bit, whatever `R`.
#[inline(always)]
unsafe fn over_octets<B: OctetBody, const R: usize>(
    body: B,
    nb: usize,
    w: *const u8,
    stride: usize,
    a: *const u8,
    out: *mut f32,
    out_stride: usize,
) {
    // SAFETY: `nb` blocks at every `w + r * stride`, `nb.div_ceil(8)` octets at `a`, a
    // writable float at every `out + r * out_stride` (caller).
    unsafe {
        let at = |g: usize| (w.add(8 * B::BLOCK_BYTES * g), a.add(B::OCTET_BYTES * g));
        let (mut acc0, mut acc1) = ([_mm256_setzero_ps(); R], [_mm256_setzero_ps(); R]);
        let full = nb / 8;
        let mut g = 0;
        while g + 2 <= full {
            let (wg, ag) = at(g);
            for (acc, (d, s)) in acc0.iter_mut().zip(body.octet::<R>(8, wg, stride, ag)) {
                *acc = _mm256_fmadd_ps(d, s, *acc);
            }
            let (wg, ag) = at(g + 1);
            for (acc, (d, s)) in acc1.iter_mut().zip(body.octet::<R>(8, wg, stride, ag)) {
                *acc = _mm256_fmadd_ps(d, s, *acc);
            }
            g += 2;
        }
        if g < full {
            let (wg, ag) = at(g);
            for (acc, (d, s)) in acc0.iter_mut().zip(body.octet::<R>(8, wg, stride, ag)) {
                *acc = _mm256_fmadd_ps(d, s, *acc);
            }
            g += 1;
        }
        if !nb.is_multiple_of(8) {
            let (wg, ag) = at(g);
            for (acc, (d, s)) in acc1.iter_mut().zip(body.octet::<R>(nb % 8, wg, stride, ag)) {
                *acc = _mm256_fmadd_ps(d, s, *acc);
            }
        }
        for r in 0..R {
            *out.add(r * out_stride) = hsum_ps(_mm256_add_ps(acc0[r], acc1[r]));
        }
    }
}

/// One row of `body` (`over_octets` with one row).
#[inline(always)]
unsafe fn one_row<B: OctetBody>(body: B, nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut out = 0.0f32;
    // SAFETY: forwarded contract; one float at `out`.
    unsafe { over_octets::<B, 1>(body, nb, w, 0, a, &mut out, 0) };
    out
}

/// `R` rows of one layout at a time, sharing each activation load: the body [`row_groups`]
/// runs. A trait, not a closure, as [`OctetBody`].
trait RowsBody: Copy {
    /// `R` rows (`stride` bytes apart from `w`) · the prepared activations at `a`, into
    /// `out[r * out_stride]`.
    ///
    /// # Safety
    /// `R` whole rows at `w + r * stride`, the prepared row at `a`, a writable float at every
    /// `out + r * out_stride`; the caller holds the body's features.
    unsafe fn rows<const R: usize>(
        self,
        w: *const u8,
        stride: usize,
        a: *const u8,
        out: *mut f32,
        out_stride: usize,
    );
}

/// `out.len()` consecutive rows (`row_bytes` apart), `R` at a time taken from `R` equal
/// contiguous parts of them (rows `i`, `i + q`, `i + 2q`, … for `q = rows / R`), the rest one
/// by one: `R` long sequential streams, which the hardware prefetchers follow, where `R`
/// adjacent rows (a new 8 KiB stream each at k = 4096) ran slower than one row at a time.
#[inline(always)]
unsafe fn row_groups<B: RowsBody, const R: usize>(
    body: B,
    w: *const u8,
    row_bytes: usize,
    a: *const u8,
    out: &mut [f32],
) {
    let rows = out.len();
    let q = rows / R;
    let out = out.as_mut_ptr();
    // SAFETY: `rows` rows at `w` and `rows` floats at `out` (caller); rows `i + r q` for
    // `i < q`, `r < R` and the rest from `R q` are below `rows`.
    unsafe {
        for i in 0..q {
            body.rows::<R>(w.add(i * row_bytes), q * row_bytes, a, out.add(i), q);
        }
        for r in R * q..rows {
            body.rows::<1>(w.add(r * row_bytes), 0, a, out.add(r), 0);
        }
    }
}

/// An octet layout's rows of `nb` blocks ([`over_octets`]) as a [`RowsBody`].
#[derive(Clone, Copy)]
struct OctetRows<B> {
    body: B,
    nb: usize,
}

impl<B: OctetBody> RowsBody for OctetRows<B> {
    #[inline(always)]
    unsafe fn rows<const R: usize>(
        self,
        w: *const u8,
        stride: usize,
        a: *const u8,
        out: *mut f32,
        out_stride: usize,
    ) {
        // SAFETY: forwarded contract: `nb` blocks per row, their octets at `a`.
        unsafe { over_octets::<B, R>(self.body, self.nb, w, stride, a, out, out_stride) }
    }
}

/// Q8_0 weights · the octet layout, `count` (≤ 8) blocks of `R` rows: per block one 32-byte
/// activation load shared by the rows and one weight load per row ([`q8_0_block_sums`]); per
/// row the 8 blocks' i32 vectors reduced to one lane per block by two levels of unpack-and-add
/// and one exchange of 128-bit halves; then the 8 weight scales widened by one `vcvtph2ps`,
/// one multiply by the prepared f32 scales, one conversion and one FMA per 8 blocks, where the
/// former pair layout spent a widening, a multiply, a conversion and an FMA (and two
/// `vpunpck`s) per 2 (per 4096: AVX2 113 → 101 ns, AVX-512 100 → 73). The integer sums are
/// exact (below 2^20 per block); each lane is one block's `(d_w d_a) · Σ w y`, as the scalar
/// terms. Returns per row the scales and the sums as f32.
#[inline(always)]
unsafe fn q8_0_octet<const VNNI: bool, const R: usize>(
    count: usize,
    w: *const u8,
    stride: usize,
    a: *const u8,
    ones: __m256i,
) -> [(__m256, __m256); R] {
    // SAFETY: `count` (≤ 8) blocks at every `w + r * stride` and one octet at `a` (caller).
    unsafe {
        // Block j of every row: its sums, zero past `count` (a macro: closures would not
        // inherit the caller's target features).
        macro_rules! sums {
            ($j:expr) => {{
                let mut out = [_mm256_setzero_si256(); R];
                if $j < count {
                    let y = load256(a.add(32 * $j));
                    for (r, out) in out.iter_mut().enumerate() {
                        let x = load256(w.add(r * stride + 34 * $j + 2));
                        *out = q8_0_block_sums::<VNNI>(x, y, ones);
                    }
                }
                out
            }};
        }
        // Two blocks' lanes summed by pairs and alternated, [b0 b1 b0 b1 | b0 b1 b0 b1].
        macro_rules! pair {
            ($j:expr) => {{
                let (even, odd) = (sums!($j), sums!($j + 1));
                let mut out = [_mm256_setzero_si256(); R];
                for r in 0..R {
                    out[r] = add_unpacked_epi32(even[r], odd[r]);
                }
                out
            }};
        }
        // [b0 b1 b2 b3 | b0 b1 b2 b3] (each half of a block's sum), likewise b4..b8.
        let (h01, h23) = (pair!(0), pair!(2));
        let q0: [__m256i; R] = std::array::from_fn(|r| add_unpacked_epi64(h01[r], h23[r]));
        let (h45, h67) = (pair!(4), pair!(6));
        let q1: [__m256i; R] = std::array::from_fn(|r| add_unpacked_epi64(h45[r], h67[r]));
        let mut out = [(_mm256_setzero_ps(), _mm256_setzero_ps()); R];
        for (r, out) in out.iter_mut().enumerate() {
            let total = _mm256_add_epi32(
                _mm256_permute2x128_si256::<0x20>(q0[r], q1[r]),
                _mm256_permute2x128_si256::<0x31>(q0[r], q1[r]),
            );
            let total = if VNNI {
                _mm256_add_epi32(total, load256(a.add(288)))
            } else {
                total
            };
            let row = w.add(r * stride);
            let scale = |j: usize| {
                if j < count {
                    u64::from(read_u16(row.add(34 * j)))
                } else {
                    0
                }
            };
            let lo = scale(0) | scale(1) << 16 | scale(2) << 32 | scale(3) << 48;
            let hi = scale(4) | scale(5) << 16 | scale(6) << 32 | scale(7) << 48;
            *out = octet_scales_sums(lo, hi, a.add(256), total);
        }
        out
    }
}

/// [`q8_0_octet`] as an [`OctetBody`].
#[derive(Clone, Copy)]
struct Q8_0Octet<const VNNI: bool> {
    ones: __m256i,
}

impl<const VNNI: bool> OctetBody for Q8_0Octet<VNNI> {
    const BLOCK_BYTES: usize = Q8_0_BYTES;
    const OCTET_BYTES: usize = octet_q8_0(VNNI);

    #[inline(always)]
    unsafe fn octet<const R: usize>(
        self,
        count: usize,
        w: *const u8,
        stride: usize,
        a: *const u8,
    ) -> [(__m256, __m256); R] {
        // SAFETY: forwarded contract.
        unsafe { q8_0_octet::<VNNI, R>(count, w, stride, a, self.ones) }
    }
}

/// Q8_0 weights · the octet layout, `nb` blocks.
#[inline(always)]
unsafe fn q8_0_octets<const VNNI: bool>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: `nb` blocks at `w`, `octet_bytes_q8_0(32 nb)` at `a` (caller).
    unsafe {
        let body = Q8_0Octet::<VNNI> {
            ones: _mm256_set1_epi16(1),
        };
        one_row(body, nb, w, a)
    }
}

/// Q8_0 weights · the octet layout, [`Q8_0_ROWS`] rows at a time (see [`row_groups`]).
#[inline(always)]
unsafe fn q8_0_octet_rows<const VNNI: bool>(
    nb: usize,
    w: *const u8,
    row_bytes: usize,
    a: *const u8,
    out: &mut [f32],
) {
    // SAFETY: forwarded contract.
    unsafe {
        let body = Q8_0Octet::<VNNI> {
            ones: _mm256_set1_epi16(1),
        };
        row_groups::<_, Q8_0_ROWS>(OctetRows { body, nb }, w, row_bytes, a, out)
    }
}

/// Q8_0 rows dotted at once. At n = 1, one thread, the matrices beyond L3 went from 1.0–1.34×
/// ggml to 1.26–1.53× (11008 × 4096) and from 1.15–1.54× to 1.51–2.39× (4096 × 11008), both
/// tiers, in cache unchanged (loaded machine, session 9). 2 rows gained at k = 4096 but lost
/// at k = 11008 (1.22–1.39×); Q4_0 lost with 4 rows.
const Q8_0_ROWS: usize = 4;

/// The Q4_0 layout, 320 bytes per 8 blocks: per pair of blocks 64 quant bytes, elements 0..16
/// of the first block then of the second, then elements 16..32 likewise (a Q4_0 weight pair
/// loads as its two 16-byte halves, low nibbles then high); then the 8 scales as f32 and the 8
/// starting sums `-8 Σ y` as i32, both in the lane order of [`q4_0_octet`]'s sums
/// ([`Q4_0_LANES`]). 40 bytes per block, as the former pair layout. Compact on purpose:
/// decoding from DRAM slowed with the activation bytes read per row (a first Q8_0 layout, 128
/// bytes per pair of blocks, took Q8_0 from 25 to 13 GB/s of weights while faster in cache).
const OCTET_Q4_0: usize = 320;

/// The block of each lane of [`q4_0_octet`]'s sums.
const Q4_0_LANES: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];

fn octet_bytes_q4_0(k: usize) -> usize {
    (k / 32).div_ceil(8) * OCTET_Q4_0
}

fn prepare_q4_0_octets(k: usize, acts: &[u8], out: &mut [u8]) {
    check_prepare("prepare_q4_0_octets", k, acts, out, octet_bytes_q4_0(k));
    out.fill(0);
    for b in 0..k / 32 {
        let (qs, d, sum) = act_block(acts, b);
        let (octet, j) = (&mut out[b / 8 * OCTET_Q4_0..][..OCTET_Q4_0], b % 8);
        let (pair, half) = (&mut octet[64 * (j / 2)..][..64], j % 2);
        pair[16 * half..][..16].copy_from_slice(&qs[..16]);
        pair[32 + 16 * half..][..16].copy_from_slice(&qs[16..]);
        let lane = Q4_0_LANES
            .iter()
            .position(|&l| l == j)
            .expect("every block has a lane");
        octet[256 + 4 * lane..][..4].copy_from_slice(&d.to_le_bytes());
        octet[288 + 4 * lane..][..4].copy_from_slice(&(-8 * sum).to_le_bytes());
    }
}

/// Q4_0 weights · the octet layout, `count` (≤ 8) blocks: per pair of blocks the pair body's
/// integer part (one 2 × 16-byte load, the nibbles unsigned as they are; `vpmaddubsw` twice,
/// the products added as i16, at most 4 · 15 · 127, one `vpmaddwd`; or two `vpdpbusd`), lanes
/// 0..4 the first block and 4..8 the second; the four pairs' vectors reduced to one lane per
/// block (blocks [`Q4_0_LANES`]) by two levels of unpack-and-add; then the prepared starting
/// sums added, the 8 weight scales widened by one `vcvtph2ps` and multiplied by the prepared
/// f32 scales, one conversion and one FMA per 8 blocks. Returns the scales and the sums as f32.
#[inline(always)]
unsafe fn q4_0_octet<const VNNI: bool>(
    count: usize,
    w: *const u8,
    a: *const u8,
    m4: __m256i,
    ones: __m256i,
) -> (__m256, __m256) {
    // SAFETY: `count` (≤ 8) blocks at `w` and one octet at `a` (caller).
    unsafe {
        // Macros, not closures: closures would not inherit the caller's target features.
        macro_rules! pair_sums {
            ($p:expr) => {{
                let (wb, ab) = (w.add(36 * $p), a.add(64 * $p));
                let bits = if 2 * $p + 1 < count {
                    _mm256_loadu2_m128i(wb.add(20).cast(), wb.add(2).cast())
                } else if 2 * $p < count {
                    _mm256_zextsi128_si256(load128(wb.add(2)))
                } else {
                    _mm256_setzero_si256()
                };
                let lo = _mm256_and_si256(bits, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
                if VNNI {
                    let first = _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, load256(ab));
                    _mm256_dpbusd_epi32(first, hi, load256(ab.add(32)))
                } else {
                    let prod = _mm256_add_epi16(
                        _mm256_maddubs_epi16(lo, load256(ab)),
                        _mm256_maddubs_epi16(hi, load256(ab.add(32))),
                    );
                    _mm256_madd_epi16(prod, ones)
                }
            }};
        }
        macro_rules! scale {
            ($j:expr) => {
                if $j < count {
                    u64::from(read_u16(w.add(18 * $j)))
                } else {
                    0
                }
            };
        }
        // [b0 b2 b0 b2 | b1 b3 b1 b3], [b4 b6 b4 b6 | b5 b7 b5 b7], then [b0 b2 b4 b6 | b1 b3 b5 b7].
        let h0 = add_unpacked_epi32(pair_sums!(0), pair_sums!(1));
        let h1 = add_unpacked_epi32(pair_sums!(2), pair_sums!(3));
        let total = _mm256_add_epi32(add_unpacked_epi64(h0, h1), load256(a.add(288)));
        let lo = scale!(0) | scale!(2) << 16 | scale!(4) << 32 | scale!(6) << 48;
        let hi = scale!(1) | scale!(3) << 16 | scale!(5) << 32 | scale!(7) << 48;
        octet_scales_sums(lo, hi, a.add(256), total)
    }
}

/// [`q4_0_octet`] as an [`OctetBody`].
#[derive(Clone, Copy)]
struct Q4_0Octet<const VNNI: bool> {
    m4: __m256i,
    ones: __m256i,
}

impl<const VNNI: bool> OctetBody for Q4_0Octet<VNNI> {
    const BLOCK_BYTES: usize = 18;
    const OCTET_BYTES: usize = OCTET_Q4_0;

    /// One row only: Q4_0 dotting 4 rows per pass (each activation load shared) ran slower
    /// than one row at a time at n = 1, every shape and tier (session 9).
    #[inline(always)]
    unsafe fn octet<const R: usize>(
        self,
        count: usize,
        w: *const u8,
        _stride: usize,
        a: *const u8,
    ) -> [(__m256, __m256); R] {
        const { assert!(R == 1, "Q4_0's octets take one row") };
        // SAFETY: forwarded contract.
        unsafe { [q4_0_octet::<VNNI>(count, w, a, self.m4, self.ones); R] }
    }
}

/// Q4_0 weights · the octet layout, `nb` blocks.
#[inline(always)]
unsafe fn q4_0_octets<const VNNI: bool>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // SAFETY: `nb` blocks at `w`, `octet_bytes_q4_0(32 nb)` at `a` (caller).
    unsafe {
        let body = Q4_0Octet::<VNNI> {
            m4: _mm256_set1_epi8(0x0f),
            ones: _mm256_set1_epi16(1),
        };
        one_row(body, nb, w, a)
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
// gains are the mins term (128-bit, no widening shuffle), one index for both rows and
// `(d, dmin)` widened in 128 bits. Two rows per pass (`DecodeDot::rows`), the scales unpacked
// with vector shuffles, and fewer `vpmaddwd` after i16 reductions all ran slower: the vector
// operations bound this body, not its integer ones (docs/kernels.md).

/// Bytes of a Q8_K activation block (f32 scale, 256 quants, 16 i16 sums).
const Q8_K_BYTES: usize = 292;
/// Bytes of a prepared Q4_K activation block: the 256 quants (lane or element order), the 8
/// sub-block sums as i16 (at 256), the scale as f32 (at 272), 12 bytes of padding (blocks keep
/// the quants 32-byte aligned to each other, and 288 = 2 · 144 lets one index address both
/// rows). Less than the plain 292.
const BLOCK_Q4_K: usize = 288;

pub(super) fn bytes_q4_k(k: usize) -> usize {
    k / 256 * BLOCK_Q4_K
}

/// The prepared Q4_K layout with the quants in the lane order (VNNI tier).
fn prepare_q4_k_lanes(k: usize, acts: &[u8], out: &mut [u8]) {
    prepare_q4_k::<true>(k, acts, out);
}

/// The prepared Q4_K layout with the quants in element order (AVX2 tier).
pub(super) fn prepare_q4_k_in_order(k: usize, acts: &[u8], out: &mut [u8]) {
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
            // (d, dmin) widened in 128 bits (one operation; the 256-bit `vcvtph2ps` is two),
            // times the activations' scale, then d broadcast: the same products as in 256 bits.
            let dd = _mm_mul_ps(
                _mm_cvtph_ps(_mm_cvtsi32_si128(read_u32(wb) as i32)),
                _mm_set1_ps(read_f32(ab.add(272))),
            );
            let (scales, mins) = super::dot::k4_scales_mins_parts(wb.add(4));
            let m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mins as i64));
            let prod_m = _mm_madd_epi16(m16, load128(ab.add(256)));
            let dmin = _mm_permute_ps::<0b01_01_01_01>(dd);
            acc_m = _mm_fmadd_ps(dmin, _mm_cvtepi32_ps(prod_m), acc_m);
            let q = super::dot::q4_k_sub_blocks(wb.add(16), m4);
            let unused = _mm256_setzero_si256();
            let sumi = super::dot::k4_dot::<Avx2Mac, true>(q, unused, scales, ab);
            let d = _mm256_broadcastss_ps(dd);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
        // One horizontal sum per row (the mins in the low lanes).
        hsum_ps(_mm256_sub_ps(acc, _mm256_zextps128_ps256(acc_m)))
    }
}

// ---- F16 · F16, several rows at once ---------------------------------------------------------
//
// One row's dot widens both operands (`vcvtph2ps`): per 8 products two conversions and two
// loads, and Zen 4 does two of each per cycle, so a single row runs at 8 products per cycle
// whatever the accumulators (ggml's loop and the plain `dot.rs` one are both there). Widening
// the activations once to f32 does not lift it: a row then still needs two loads per 8
// products (or 6 bytes per product against 64 bytes of loads per cycle), and 512-bit
// conversions run at half the 256-bit rate. What lifts it is sharing each activation load and
// conversion among `R` weight rows: `R + 1` loads and conversions per `8 R` products (R = 4:
// 12.8 per cycle, 1.6× in L2 in a throwaway benchmark), and `R` weight streams at once from
// memory, where k = 11008 rows (22 KiB, their activations beyond L1 beside the stream) ran at
// half the bandwidth probe one row at a time.

/// Bytes of the F16 "prepared" row: the activation row as it is.
fn f16_bytes(k: usize) -> usize {
    2 * k
}

fn prepare_f16(k: usize, acts: &[u8], out: &mut [u8]) {
    assert!(
        acts.len() == 2 * k && out.len() == 2 * k,
        "prepare_f16: {k} activations are {} bytes (got {} in, {} out)",
        2 * k,
        acts.len(),
        out.len()
    );
    out.copy_from_slice(acts);
}

/// 8 f16 at element `at` of `p`, widened.
#[inline(always)]
unsafe fn ld_f16(p: *const u8, at: usize) -> __m256 {
    // SAFETY: 16 readable bytes at element `at` (caller).
    unsafe { _mm256_cvtph_ps(load128(p.add(2 * at))) }
}

/// `R` F16 weight rows (`stride` bytes apart from `w`) · the F16 row `a`, into `out[r *
/// out_stride]`; each activation vector is widened once for all `R`. Per row the arithmetic of
/// `dot.rs`'s `float16` exactly (four accumulators over 32-element steps, the 8-element steps
/// into the first, the same horizontal sum, then the scalar tail in order), so every row's
/// result is that dot's, bit for bit, whatever `R` and the grouping of rows.
#[inline(always)]
unsafe fn float16_rows<const R: usize>(
    n: usize,
    w: *const u8,
    stride: usize,
    a: *const u8,
    out: *mut f32,
    out_stride: usize,
) {
    // SAFETY: `R` rows of `2n` readable bytes at `w + r * stride`, `2n` at `a`, a writable
    // float at every `out + r * out_stride` (caller).
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 4]; R];
        let mut at = 0;
        while at + 32 <= n {
            for k in 0..4 {
                let y = ld_f16(a, at + 8 * k);
                for (r, acc) in acc.iter_mut().enumerate() {
                    acc[k] = _mm256_fmadd_ps(ld_f16(w.add(r * stride), at + 8 * k), y, acc[k]);
                }
            }
            at += 32;
        }
        while at + 8 <= n {
            let y = ld_f16(a, at);
            for (r, acc) in acc.iter_mut().enumerate() {
                acc[0] = _mm256_fmadd_ps(ld_f16(w.add(r * stride), at), y, acc[0]);
            }
            at += 8;
        }
        for (r, acc) in acc.iter().enumerate() {
            let row = w.add(r * stride);
            let mut sum = hsum_ps(_mm256_add_ps(
                _mm256_add_ps(acc[0], acc[1]),
                _mm256_add_ps(acc[2], acc[3]),
            ));
            for t in at..n {
                sum += read_f16(row.add(2 * t)) * read_f16(a.add(2 * t));
            }
            *out.add(r * out_stride) = sum;
        }
    }
}

/// One F16 row ([`float16_rows`] with one row).
#[inline(always)]
unsafe fn float16_one(n: usize, w: *const u8, a: *const u8) -> f32 {
    let mut out = 0.0f32;
    // SAFETY: forwarded contract; one float at `out`.
    unsafe { float16_rows::<1>(n, w, 0, a, &mut out, 0) };
    out
}

/// F16 rows of `n` elements ([`float16_rows`]) as a [`RowsBody`].
#[derive(Clone, Copy)]
struct Float16Rows {
    n: usize,
}

impl RowsBody for Float16Rows {
    #[inline(always)]
    unsafe fn rows<const R: usize>(
        self,
        w: *const u8,
        stride: usize,
        a: *const u8,
        out: *mut f32,
        out_stride: usize,
    ) {
        // SAFETY: forwarded contract: rows of `n` f16, the activation row at `a`.
        unsafe { float16_rows::<R>(self.n, w, stride, a, out, out_stride) }
    }
}

/// Safe entries for one tier: `prepared!(name, "features", body, prepare, bytes_fn,
/// elements_per_block, weight_bytes_per_block)`, giving a [`DecodeDot`] constant `name`; with
/// `rows: rows_body` its several-row dot too.
///
/// [`DecodeDot`]: crate::kernels::DecodeDot
macro_rules! prepared {
    ($name:ident, $features:literal, $body:path, $prepare:path, $bytes:path, $elems:expr, $w_bytes:expr) => {
        prepared!(@ $name, $features, $body, $prepare, $bytes, $elems, $w_bytes, None);
    };
    ($name:ident, $features:literal, $body:path, $prepare:path, $bytes:path, $elems:expr, $w_bytes:expr, rows: $rows_body:path) => {
        prepared!(@ $name, $features, $body, $prepare, $bytes, $elems, $w_bytes, Some({
            #[target_feature(enable = $features)]
            unsafe fn groups(nb: usize, w: *const u8, row_bytes: usize, a: *const u8, out: &mut [f32]) {
                // SAFETY: forwarded contract; the features are enabled on this function.
                unsafe { $rows_body(nb, w, row_bytes, a, out) }
            }

            /// Safe entry: checks the lengths.
            fn rows(n: usize, w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32]) {
                let nb = n / $elems;
                let needed = match out.len() {
                    0 => 0,
                    rows => (rows - 1) * row_bytes + nb * $w_bytes,
                };
                assert!(
                    n.is_multiple_of($elems)
                        && row_bytes >= nb * $w_bytes
                        && w.len() >= needed
                        && a.len() >= $bytes(n),
                    "{} (rows): {} rows of {n} elements {row_bytes} bytes apart need whole blocks \
                     and {needed} + {} bytes (got {} + {})",
                    stringify!($name),
                    out.len(),
                    $bytes(n),
                    w.len(),
                    a.len()
                );
                // SAFETY: only reachable through a kernel table built after detecting this
                // tier's features; every row is in bounds (checked above).
                unsafe { groups(nb, w.as_ptr(), row_bytes, a.as_ptr(), out) }
            }
            rows as crate::kernels::DotRowsFn
        }));
    };
    (@ $name:ident, $features:literal, $body:path, $prepare:path, $bytes:path, $elems:expr, $w_bytes:expr, $rows:expr) => {
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
                rows: $rows,
            }
        };
    };
}

/// F16 rows dotted at once: four streams. On AVX2 its 16 accumulators exceed the 16 vector
/// registers (a few go through the stack) but from DRAM 4 rows measured faster than 2 or 3
/// (k = 11008, one thread: 3.2 ms against 5.4 and 4.2).
const F16_ROWS: usize = 4;

/// The F16 entry of one tier: `prepared_f16!(name, "features")`.
macro_rules! prepared_f16 {
    ($name:ident, $features:literal) => {
        pub(crate) const $name: crate::kernels::DecodeDot = {
            #[target_feature(enable = $features)]
            unsafe fn one(n: usize, w: *const u8, a: *const u8) -> f32 {
                // SAFETY: forwarded contract; the features are enabled on this function.
                unsafe { super::float16_one(n, w, a) }
            }

            #[target_feature(enable = $features)]
            unsafe fn groups(n: usize, w: *const u8, stride: usize, a: *const u8, out: &mut [f32]) {
                // SAFETY: forwarded contract; the features are enabled on this function.
                unsafe {
                    super::row_groups::<_, { super::F16_ROWS }>(
                        super::Float16Rows { n },
                        w,
                        stride,
                        a,
                        out,
                    )
                }
            }

            /// Safe entry: checks the lengths.
            fn dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
                assert!(
                    w.len() >= 2 * n && a.len() >= 2 * n,
                    "{} (prepared): {n} elements need {} + {} bytes (got {} + {})",
                    stringify!($name),
                    2 * n,
                    2 * n,
                    w.len(),
                    a.len()
                );
                // SAFETY: only reachable through a kernel table built after detecting this
                // tier's features; the lengths were checked above.
                unsafe { one(n, w.as_ptr(), a.as_ptr()) }
            }

            /// Safe entry: checks the lengths.
            fn rows(n: usize, w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32]) {
                let needed = match out.len() {
                    0 => 0,
                    rows => (rows - 1) * row_bytes + 2 * n,
                };
                assert!(
                    row_bytes >= 2 * n && w.len() >= needed && a.len() >= 2 * n,
                    "{} (rows): {} rows of {n} elements {row_bytes} bytes apart need {needed} + {} \
                     bytes (got {} + {})",
                    stringify!($name),
                    out.len(),
                    2 * n,
                    w.len(),
                    a.len()
                );
                // SAFETY: as `dot`; every row is in bounds (checked above).
                unsafe { groups(n, w.as_ptr(), row_bytes, a.as_ptr(), out) }
            }

            crate::kernels::DecodeDot {
                prepared_bytes: super::f16_bytes,
                prepare: super::prepare_f16,
                dot,
                rows: Some(rows),
            }
        };
    };
}

/// One tier's prepared dots and its [`DecodeKernels`](crate::kernels::DecodeKernels) table:
/// the same 256-bit bodies, with `vpdpbusd` where `$vnni`; `q4_k` is the tier's Q4_K entry
/// (defined beside the tier: the two tiers' bodies and quant orders differ); F16
/// [`F16_ROWS`] rows at a time.
macro_rules! tier {
    ($features:literal, $vnni:literal, q4_k: $q4_k:expr) => {
        use crate::kernels::DecodeKernels;

        prepared!(
            Q4_0,
            $features,
            super::q4_0_octets::<$vnni>,
            super::prepare_q4_0_octets,
            super::octet_bytes_q4_0,
            32,
            18
        );
        prepared!(
            Q8_0,
            $features,
            super::q8_0_octets::<$vnni>,
            super::prepare_q8_0_octets::<$vnni>,
            super::octet_bytes_q8_0::<$vnni>,
            32,
            34,
            rows: super::q8_0_octet_rows::<$vnni>
        );

        prepared_f16!(F16, $features);

        pub(crate) const DECODE: DecodeKernels = DecodeKernels {
            q4_0: Some(Q4_0),
            q8_0: Some(Q8_0),
            q4_k: $q4_k,
            f16: Some(F16),
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
