//! Packed GEMM tiles for the float weight types (F16, BF16, F32), n > 1: each call widens its
//! tokens' activations to f32 once and repacks its weight rows, `R·N` at a time, to f32 with
//! one vector holding `N` rows at one position of k (`N` = 16 in zmm, 8 in ymm). A step of k
//! is then `R` weight loads and `C` activation broadcasts for `R·C` FMAs, with no widening in
//! the loop and no horizontal sums (the float tiles of `float_tile.rs` widen `R + C` vectors
//! per `R·C` FMAs and sum lanes at the end).
//!
//! Numerics: products are exact in f32; each lane sums [`KB`] consecutive products in order,
//! then adds that partial sum to the total: at most `KB + ⌈k / KB⌉` additions deep, within the
//! bound the tests allow (`⌈k / 4⌉ + 8`) for every k.
//!
//! # Safety (all bodies)
//! The caller must hold AVX2, FMA, F16C, and for [`Zmm`](super::float_tile::Zmm) AVX-512 F.

// Register tiles are indexed `[r][c]` in nested loops, which read better than zipped iterators.
#![allow(clippy::needless_range_loop)]

use std::cell::Cell;

use super::float_tile::{Elem, Lanes};

/// Steps of k summed per partial sum.
const KB: usize = 16;
/// Steps of k packed at once: a band of 32 rows × 2048 f32 is 256 KiB, which stays in L2
/// while the tokens stream past; the k-chunks' results are added in `out`.
const KC: usize = 2048;
/// Tokens widened at once (bounds the activation buffer: 512 × 11008 f32 = 22 MiB).
const TOKEN_CHUNK: usize = 512;

thread_local! {
    /// Per-thread buffer (packed weights, widened activations), reused across calls.
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `R` packed row groups × `C` tokens over `k`: `packed` holds `R` groups of `k × N` f32,
/// `acts[c]` `k` f32.
#[inline(always)]
unsafe fn micro<L: Lanes, const R: usize, const C: usize>(
    k: usize,
    packed: *const f32,
    acts: [*const f32; C],
) -> [[L::V; C]; R] {
    // SAFETY: `R·k·N` f32 at `packed`, `k` at each `acts[c]` (caller).
    unsafe {
        let mut total = [[L::zero(); C]; R];
        let mut k0 = 0;
        while k0 < k {
            let end = (k0 + KB).min(k);
            let mut part = [[L::zero(); C]; R];
            for kk in k0..end {
                let w: [L::V; R] =
                    std::array::from_fn(|r| L::f32(packed.add((r * k + kk) * L::N).cast()));
                for c in 0..C {
                    let a = L::splat(*acts[c].add(kk));
                    for r in 0..R {
                        part[r][c] = L::fma(w[r], a, part[r][c]);
                    }
                }
            }
            for r in 0..R {
                for c in 0..C {
                    total[r][c] = L::add(total[r][c], part[r][c]);
                }
            }
            k0 = end;
        }
        total
    }
}

/// The micro-tile at token `c0` of the chunk (widened rows `act_stride` apart), written to
/// `out` (the band's first `valid` rows, tokens from `col + c0`), or added to it (`add`: a
/// later k-chunk).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn run<L: Lanes, const R: usize, const C: usize>(
    k: usize,
    packed: *const f32,
    acts: *const f32,
    act_stride: usize,
    c0: usize,
    valid: usize,
    out: &mut [f32],
    out_stride: usize,
    col: usize,
    add: bool,
) {
    // SAFETY: forwarded (the packed rows and tokens c0..c0 + C exist).
    let res = unsafe {
        let ap: [*const f32; C] = std::array::from_fn(|c| acts.add((c0 + c) * act_stride));
        micro::<L, R, C>(k, packed, ap)
    };
    let mut lanes = [0f32; 16];
    for (r, row) in res.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            // SAFETY: `lanes` holds 16 ≥ N f32.
            unsafe { L::store(v, lanes.as_mut_ptr()) };
            for (i, &x) in lanes[..L::N].iter().enumerate() {
                let row_in = r * L::N + i;
                if row_in < valid {
                    let cell = &mut out[row_in * out_stride + col + c0 + c];
                    *cell = if add { *cell + x } else { x };
                }
            }
        }
    }
}

/// The packed float tile: `out[r * out_stride + c] = dot(w row r, a row c)`, `k` elements of
/// `E` each; register tile `R` groups of `N` rows × `C` tokens.
///
/// # Safety
/// `rows` rows of `k` elements at `w` (stride `w_stride` bytes), `cols` at `a`; `out` holds
/// the tile; the caller holds the features of `L`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn gemm<L: Lanes, E: Elem, const R: usize, const C: usize>(
    k: usize,
    w: *const u8,
    w_stride: usize,
    rows: usize,
    a: *const u8,
    a_stride: usize,
    cols: usize,
    out: &mut [f32],
    out_stride: usize,
) {
    let band = R * L::N;
    let chunk = TOKEN_CHUNK.min(cols);
    // Widened rows one cache line longer than a multiple of 64 bytes: at k = 4096 the rows
    // would otherwise be 16 KiB apart, all in the same L1 sets, and `C` > 8 streams would
    // evict each other (measured: 3× slower).
    let act_stride = k.next_multiple_of(16) + 16;
    // Out of the thread-local and back after: the work must not run in a closure, which would
    // not inherit this function's target features.
    let mut scratch = SCRATCH.with(|cell| cell.take());
    let need = band * KC + chunk * act_stride;
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    let (packed, acts) = scratch.split_at_mut(band * KC);
    let mut t0 = 0;
    while t0 < cols {
        let tc = chunk.min(cols - t0);
        for c in 0..tc {
            let src = a.wrapping_add((t0 + c) * a_stride);
            let dst = &mut acts[c * act_stride..c * act_stride + k];
            let mut kk = 0;
            // SAFETY: token t0 + c has `k` elements at `src` (caller); `dst` holds `k` f32.
            unsafe {
                while kk + L::N <= k {
                    L::store(
                        E::load::<L>(src.add(kk * E::BYTES)),
                        dst.as_mut_ptr().add(kk),
                    );
                    kk += L::N;
                }
                for (i, v) in dst.iter_mut().enumerate().skip(kk) {
                    *v = E::read(src.add(i * E::BYTES));
                }
            }
        }
        let mut r0 = 0;
        while r0 < rows {
            let valid = band.min(rows - r0);
            let o = &mut out[r0 * out_stride..];
            let mut k0 = 0;
            while k0 < k {
                let klen = KC.min(k - k0);
                // Group g, position kk, lane i at packed[(g·klen + kk)·N + i]; missing rows 0.
                packed.fill(0.0);
                for row in 0..valid {
                    let (g, i) = (row / L::N, row % L::N);
                    let src = w.wrapping_add((r0 + row) * w_stride + k0 * E::BYTES);
                    for kk in 0..klen {
                        // SAFETY: row r0 + row has `k` elements at `w + (r0 + row)·w_stride`.
                        packed[(g * klen + kk) * L::N + i] =
                            unsafe { E::read(src.add(kk * E::BYTES)) };
                    }
                }
                let (pp, ap) = (packed.as_ptr(), acts[k0..].as_ptr());
                let add = k0 > 0;
                let full = tc / C * C;
                let mut c0 = 0;
                // SAFETY (both loops): the band is packed and tokens 0..tc widened above.
                while c0 < full {
                    unsafe {
                        run::<L, R, C>(klen, pp, ap, act_stride, c0, valid, o, out_stride, t0, add)
                    };
                    c0 += C;
                }
                while c0 < tc {
                    unsafe {
                        run::<L, R, 1>(klen, pp, ap, act_stride, c0, valid, o, out_stride, t0, add)
                    };
                    c0 += 1;
                }
                k0 += klen;
            }
            r0 += band;
        }
        t0 += tc;
    }
    SCRATCH.with(|cell| cell.replace(scratch));
}
