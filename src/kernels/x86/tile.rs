//! GEMM tiles: `R` weight rows × `C` activation rows per call, each weight block decoded once
//! and dotted with the `C` activation blocks while in registers. Generic over the [`Mac`] like
//! `dot.rs`, and over the tile shape; the driver ([`tile_driver`]) covers any `rows × cols`
//! with full tiles plus `R × 1`, `1 × C` and `1 × 1` remainders.
//!
//! # Safety (all bodies)
//! `w[r]` and `a[c]` must each point to `nb` whole blocks of their types; the caller must hold
//! AVX2, FMA, F16C and `M`'s features.

use std::arch::x86_64::*;

use super::common::*;

/// Per-tile results, `out[r][c]`.
pub(super) type TileOut<const R: usize, const C: usize> = [[f32; C]; R];

#[inline(always)]
unsafe fn finish<const R: usize, const C: usize>(acc: &[[__m256; C]; R]) -> TileOut<R, C> {
    let mut out = [[0.0; C]; R];
    for r in 0..R {
        for c in 0..C {
            // SAFETY: register-only.
            out[r][c] = unsafe { hsum_ps(acc[r][c]) };
        }
    }
    out
}

/// Q4_0 · Q8_0: `Σ (q - 8) y = Σ q y - 8 Σ y`, with `-8 Σ y` (once per activation block) as
/// the starting value of each pair's integer sum.
#[inline(always)]
pub(super) unsafe fn q4_0<M: Mac, const R: usize, const C: usize>(
    nb: usize,
    w: [*const u8; R],
    a: [*const u8; C],
) -> TileOut<R, C> {
    // SAFETY: see the module's contract.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let eight = _mm256_set1_epi8(8);
        for i in 0..nb {
            let mut y = [_mm256_setzero_si256(); C];
            let mut neg = [_mm256_setzero_si256(); C];
            let mut da = [_mm256_setzero_ps(); C];
            for c in 0..C {
                let ab = a[c].add(34 * i);
                y[c] = load256(ab.add(2));
                neg[c] = _mm256_sub_epi32(_mm256_setzero_si256(), M::dot_us(eight, y[c]));
                da[c] = _mm256_set1_ps(read_f16(ab));
            }
            for r in 0..R {
                let wb = w[r].add(18 * i);
                let q = nibbles32(wb.add(2));
                let dw = _mm256_set1_ps(read_f16(wb));
                for c in 0..C {
                    let sumi = M::dot_us_acc(neg[c], q, y[c]);
                    let d = _mm256_mul_ps(dw, da[c]);
                    acc[r][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[r][c]);
                }
            }
        }
        finish(&acc)
    }
}

/// Q8_0 · Q8_0.
#[inline(always)]
pub(super) unsafe fn q8_0<M: Mac, const R: usize, const C: usize>(
    nb: usize,
    w: [*const u8; R],
    a: [*const u8; C],
) -> TileOut<R, C> {
    // SAFETY: see the module's contract.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        for i in 0..nb {
            let mut y = [_mm256_setzero_si256(); C];
            let mut da = [_mm256_setzero_ps(); C];
            for c in 0..C {
                let ab = a[c].add(34 * i);
                y[c] = load256(ab.add(2));
                da[c] = _mm256_set1_ps(read_f16(ab));
            }
            for r in 0..R {
                let wb = w[r].add(34 * i);
                let x = load256(wb.add(2));
                let dw = _mm256_set1_ps(read_f16(wb));
                for c in 0..C {
                    let sumi = M::dot_ss(x, y[c]);
                    let d = _mm256_mul_ps(dw, da[c]);
                    acc[r][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[r][c]);
                }
            }
        }
        finish(&acc)
    }
}

/// Q4_K · Q8_K: as `dot::q4_k`, the decoded nibbles and scales of each weight block shared by
/// the `C` activation rows.
#[inline(always)]
pub(super) unsafe fn q4_k<M: Mac, const R: usize, const C: usize>(
    nb: usize,
    w: [*const u8; R],
    a: [*const u8; C],
) -> TileOut<R, C> {
    // SAFETY: see the module's contract.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let m4 = _mm256_set1_epi8(0x0f);
        for i in 0..nb {
            let mut da = [0f32; C];
            let mut pairs = [_mm_setzero_si128(); C];
            for c in 0..C {
                let ab = a[c].add(292 * i);
                da[c] = read_f32(ab);
                let s = load256(ab.add(260));
                pairs[c] =
                    _mm_hadd_epi16(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
            }
            for r in 0..R {
                let wb = w[r].add(144 * i);
                let (dw, dminw) = (read_f16(wb), read_f16(wb.add(2)));
                let sm = _mm256_cvtepu8_epi16(super::dot::k4_scales_mins(wb.add(4)));
                let mins = _mm256_extracti128_si256::<1>(sm);
                let scales = _mm256_permute2x128_si256::<0x00>(sm, sm);
                let mut sumi = [_mm256_setzero_si256(); C];
                for j in 0..4 {
                    let bits = load256(wb.add(16 + 32 * j));
                    let lo = _mm256_and_si256(bits, m4);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
                    let s_lo = _mm256_shuffle_epi8(scales, super::dot::lane16(2 * j as i16));
                    let s_hi = _mm256_shuffle_epi8(scales, super::dot::lane16(2 * j as i16 + 1));
                    for c in 0..C {
                        let y = a[c].add(292 * i + 4 + 64 * j);
                        let p0 = _mm256_maddubs_epi16(lo, load256(y));
                        let p1 = _mm256_maddubs_epi16(hi, load256(y.add(32)));
                        sumi[c] = M::madd_acc(sumi[c], p0, s_lo);
                        sumi[c] = M::madd_acc(sumi[c], p1, s_hi);
                    }
                }
                for c in 0..C {
                    let d = _mm256_set1_ps(dw * da[c]);
                    acc[r][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi[c]), acc[r][c]);
                    // The mins term, Σ m (bsum pairs), in lanes 0..4 (upper lanes zero).
                    let m = _mm256_zextsi128_si256(_mm_madd_epi16(mins, pairs[c]));
                    let dmin = _mm256_set1_ps(-dminw * da[c]);
                    acc[r][c] = _mm256_fmadd_ps(dmin, _mm256_cvtepi32_ps(m), acc[r][c]);
                }
            }
        }
        finish(&acc)
    }
}

/// Q6_K · Q8_K: as `dot::q6_k`, the decoded 6-bit quants of each weight block shared by the
/// `C` activation rows.
#[inline(always)]
pub(super) unsafe fn q6_k<M: Mac, const R: usize, const C: usize>(
    nb: usize,
    w: [*const u8; R],
    a: [*const u8; C],
) -> TileOut<R, C> {
    // SAFETY: see the module's contract.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        for i in 0..nb {
            for r in 0..R {
                let wb = w[r].add(210 * i);
                let dw = read_f16(wb.add(208));
                let sc16 = _mm256_cvtepi8_epi16(load128(wb.add(192)));
                let q = super::dot::q6_k_quants(wb);
                for c in 0..C {
                    let ab = a[c].add(292 * i);
                    let bias =
                        _mm256_slli_epi32::<5>(_mm256_madd_epi16(load256(ab.add(260)), sc16));
                    let sumi = _mm256_sub_epi32(super::dot::k16_dot::<M>(q, sc16, ab.add(4)), bias);
                    let d = _mm256_set1_ps(dw * read_f32(ab));
                    acc[r][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[r][c]);
                }
            }
        }
        finish(&acc)
    }
}

/// Runs a tile body over `rows × cols`: full `R × C` tiles, then the `R × 1`, `1 × C` and
/// `1 × 1` remainders. `$body` names a tile body of this module, taking `(nb, [w; R], [a; C])`.
macro_rules! tile_driver {
    ($body:ident, $mac:ty, $r:literal, $c:literal,
     $nb:expr, $w:expr, $w_stride:expr, $rows:expr, $a:expr, $a_stride:expr, $cols:expr,
     $out:expr, $out_stride:expr) => {{
        let (nb, w, a): (usize, *const u8, *const u8) = ($nb, $w, $a);
        let (w_stride, a_stride, rows, cols): (usize, usize, usize, usize) =
            ($w_stride, $a_stride, $rows, $cols);
        let out: &mut [f32] = $out;
        let out_stride: usize = $out_stride;
        let full_rows = rows / $r * $r;
        let full_cols = cols / $c * $c;
        let mut r = 0;
        while r < rows {
            let tall = r < full_rows;
            let mut c = 0;
            while c < cols {
                let wide = c < full_cols;
                // SAFETY (for the whole match): rows r.. and columns c.. of the tile exist
                // (checked by the caller), so every pointer below has `nb` blocks behind it.
                match (tall, wide) {
                    (true, true) => {
                        let wp: [*const u8; $r] =
                            std::array::from_fn(|k| w.add((r + k) * w_stride));
                        let ap: [*const u8; $c] =
                            std::array::from_fn(|k| a.add((c + k) * a_stride));
                        let t = crate::kernels::x86::tile::$body::<$mac, $r, $c>(nb, wp, ap);
                        for (k, row) in t.iter().enumerate() {
                            out[(r + k) * out_stride + c..][..$c].copy_from_slice(row);
                        }
                    }
                    (true, false) => {
                        let wp: [*const u8; $r] =
                            std::array::from_fn(|k| w.add((r + k) * w_stride));
                        let t = crate::kernels::x86::tile::$body::<$mac, $r, 1>(
                            nb,
                            wp,
                            [a.add(c * a_stride)],
                        );
                        for (k, row) in t.iter().enumerate() {
                            out[(r + k) * out_stride + c] = row[0];
                        }
                    }
                    (false, true) => {
                        let ap: [*const u8; $c] =
                            std::array::from_fn(|k| a.add((c + k) * a_stride));
                        let t = crate::kernels::x86::tile::$body::<$mac, 1, $c>(
                            nb,
                            [w.add(r * w_stride)],
                            ap,
                        );
                        out[r * out_stride + c..][..$c].copy_from_slice(&t[0]);
                    }
                    (false, false) => {
                        let t = crate::kernels::x86::tile::$body::<$mac, 1, 1>(
                            nb,
                            [w.add(r * w_stride)],
                            [a.add(c * a_stride)],
                        );
                        out[r * out_stride + c] = t[0][0];
                    }
                }
                c += if wide { $c } else { 1 };
            }
            r += if tall { $r } else { 1 };
        }
    }};
}

pub(super) use tile_driver;
