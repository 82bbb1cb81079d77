//! IQ4_NL: 32 weights per block, 4-bit indices into a fixed non-linear grid of 16 levels.
//!
//! Quantization mirrors what ggml's `ggml_quantize_chunk` runs without an importance matrix
//! (`quantize_iq4_nl`, i.e. `quantize_row_iq4_nl_impl` with 15 trial scales and `x^2` weights),
//! operation for operation. llama-quantize falls back to this type when a row length is not a
//! multiple of 256.

use super::blocks::{BlockIq4Nl, impl_block_format};
use super::float::{f16_to_f32, f32_to_f16};
use super::rows::typed_rows;

const QK: usize = 32;

/// ggml's `kvalues_iq4nl`: the 16 levels, ascending.
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Trial scales on each side of the first guess (ggml's `ntry` for `quantize_iq4_nl`).
const NTRY: i32 = 7;

/// ggml's `best_index_int8`: the index of the level nearest to `x` (the upper one on ties),
/// by bisection.
fn best_index(x: f32) -> usize {
    let level = |i: usize| f32::from(KVALUES_IQ4NL[i]);
    if x <= level(0) {
        return 0;
    }
    if x >= level(15) {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < level(mav) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - level(mu - 1) < level(mu) - x {
        mu - 1
    } else {
        mu
    }
}

/// The weighted sums (sum w q x, sum w q^2) of the levels chosen at inverse scale `id`.
fn fit_sums(x: &[f32; QK], weight: &[f32; QK], id: f32) -> (f32, f32) {
    let mut sumqx = 0.0f32;
    let mut sumq2 = 0.0f32;
    for (&v, &w) in x.iter().zip(weight) {
        let q = f32::from(KVALUES_IQ4NL[best_index(id * v)]);
        sumqx += w * q * v;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

pub fn quantize_block_iq4_nl(x: &[f32; QK]) -> BlockIq4Nl {
    let weight: [f32; QK] = std::array::from_fn(|j| x[j] * x[j]);
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let scale = if amax == 0.0 {
        0.0
    } else {
        let first = -max / f32::from(KVALUES_IQ4NL[0]);
        let (sumqx, sumq2) = fit_sums(x, &weight, 1.0 / first);
        let mut d = sumqx / sumq2;
        let mut best = d * sumqx;
        for itry in -NTRY..=NTRY {
            // ggml adds the int8 level to the int itry before converting to float.
            let id = (itry + i32::from(KVALUES_IQ4NL[0])) as f32 / max;
            let (sumqx, sumq2) = fit_sums(x, &weight, id);
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        d
    };
    // The levels are re-chosen with the final f32 scale (not its f16 rounding), as in ggml.
    let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    let levels: [u8; QK] = std::array::from_fn(|j| best_index(id * x[j]) as u8);
    let qs = std::array::from_fn(|j| levels[j] | (levels[j + QK / 2] << 4));
    BlockIq4Nl {
        d: f32_to_f16(scale),
        qs,
    }
}

pub fn dequantize_block_iq4_nl(b: &BlockIq4Nl, y: &mut [f32; QK]) {
    let d = f16_to_f32(b.d);
    for (j, &q) in b.qs.iter().enumerate() {
        y[j] = d * f32::from(KVALUES_IQ4NL[usize::from(q & 0x0f)]);
        y[j + QK / 2] = d * f32::from(KVALUES_IQ4NL[usize::from(q >> 4)]);
    }
}

impl_block_format!(BlockIq4Nl, quantize_block_iq4_nl, dequantize_block_iq4_nl);
typed_rows!(
    BlockIq4Nl,
    quantize_row_iq4_nl,
    dequantize_row_iq4_nl,
    "IQ4_NL"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_index_picks_the_nearest_level_and_the_upper_on_ties() {
        assert_eq!(best_index(-1000.0), 0);
        assert_eq!(best_index(1000.0), 15);
        assert_eq!(best_index(0.0), 8); // -10 is 10 away, 1 is 1 away
        assert_eq!(best_index(-4.5), 8); // tie between -10 and 1: the upper one
        assert_eq!(best_index(-4.6), 7);
        for (i, &v) in KVALUES_IQ4NL.iter().enumerate() {
            assert_eq!(best_index(f32::from(v)), i);
        }
    }

    #[test]
    fn exact_grid_multiples_round_trip() {
        let x: [f32; QK] = std::array::from_fn(|j| 0.25 * f32::from(KVALUES_IQ4NL[j % 16]));
        let b = quantize_block_iq4_nl(&x);
        let mut y = [0.0f32; QK];
        dequantize_block_iq4_nl(&b, &mut y);
        assert_eq!(y, x);
    }
}
