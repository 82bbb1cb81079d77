//! Focused checks of the x86 variants this CPU supports: activation quantizers byte for byte
//! against `crate::quant` (ggml's reference), dot products against an f64 dot of the
//! dequantized rows.

use crate::GgmlType;
use crate::quant;

type DotFn = fn(usize, &[u8], &[u8]) -> f32;
type ActFn = fn(&[f32], &mut [u8]);
type TileFn = crate::kernels::GemmTileFn;

/// A deterministic xorshift generator (tests need no statistical quality).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Floats with a varying scale per 32 elements, occasional outliers and exact zeros.
fn floats(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut scale = 1.0;
    (0..n)
        .map(|i| {
            if i % 32 == 0 {
                scale = [0.01, 0.5, 3.0, 100.0][(rng.next() % 4) as usize];
            }
            match rng.next() % 50 {
                0 => 0.0,
                1 => scale * 8.0 * rng.unit(),
                _ => scale * rng.unit(),
            }
        })
        .collect()
}

struct Variant {
    name: &'static str,
    dots: [(GgmlType, DotFn); 13],
    acts: [(GgmlType, ActFn); 5],
    tiles: [(GgmlType, TileFn); 10],
    /// The packed tiles reading Q4_K×8, Q6_K×8 and Q8_0×8 groups.
    x8_tiles: [TileFn; 3],
}

macro_rules! variant {
    ($name:literal, $m:path) => {{
        use $m as v;
        Variant {
            name: $name,
            dots: [
                (GgmlType::Q4_0, v::vec_dot_q4_0_q8_0),
                (GgmlType::Q4_1, v::vec_dot_q4_1_q8_1),
                (GgmlType::Q5_0, v::vec_dot_q5_0_q8_0),
                (GgmlType::Q5_1, v::vec_dot_q5_1_q8_1),
                (GgmlType::Q8_0, v::vec_dot_q8_0_q8_0),
                (GgmlType::Q2_K, v::vec_dot_q2_k_q8_k),
                (GgmlType::Q3_K, v::vec_dot_q3_k_q8_k),
                (GgmlType::Q4_K, v::vec_dot_q4_k_q8_k),
                (GgmlType::Q5_K, v::vec_dot_q5_k_q8_k),
                (GgmlType::Q6_K, v::vec_dot_q6_k_q8_k),
                (GgmlType::F16, v::vec_dot_f16),
                (GgmlType::BF16, v::vec_dot_bf16),
                (GgmlType::F32, v::vec_dot_f32),
            ],
            acts: [
                (GgmlType::Q8_0, v::quantize_q8_0),
                (GgmlType::Q8_1, v::quantize_q8_1),
                (GgmlType::Q8_K, v::quantize_q8_k),
                (GgmlType::F16, v::convert_f16),
                (GgmlType::BF16, v::convert_bf16),
            ],
            tiles: [
                (GgmlType::Q4_0, v::gemm_q4_0_q8_0),
                (GgmlType::Q8_0, v::gemm_q8_0_q8_0),
                (GgmlType::Q4_K, v::gemm_q4_k_q8_k),
                (GgmlType::Q6_K, v::gemm_q6_k_q8_k),
                (GgmlType::Q4_0, v::packed_q4_0_q8_0),
                (GgmlType::Q5_0, v::packed_q5_0_q8_0),
                (GgmlType::Q8_0, v::packed_q8_0_q8_0),
                (GgmlType::Q4_K, v::packed_q4_k_q8_k),
                (GgmlType::Q5_K, v::packed_q5_k_q8_k),
                (GgmlType::Q6_K, v::packed_q6_k_q8_k),
            ],
            x8_tiles: [
                v::packed_q4_k_x8_q8_k,
                v::packed_q6_k_x8_q8_k,
                v::packed_q8_0_x8_q8_0,
            ],
        }
    }};
}

fn supported_variants() -> Vec<Variant> {
    let mut out = Vec::new();
    if super::avx2::is_supported() {
        out.push(variant!("avx2", super::avx2::plain));
    }
    if super::avx2::has_vnni() {
        out.push(variant!("avx2+avxvnni", super::avx2::vnni));
    }
    if super::avx512::is_supported() {
        out.push(variant!("avx512", super::avx512::plain));
    }
    if super::avx512::has_vnni() {
        out.push(variant!("avx512+vnni", super::avx512::vnni));
    }
    out
}

fn activation_type(w: GgmlType) -> GgmlType {
    use GgmlType::*;
    match w {
        Q4_0 | Q5_0 | Q8_0 => Q8_0,
        Q4_1 | Q5_1 => Q8_1,
        F16 | BF16 | F32 => w,
        _ => Q8_K,
    }
}

fn quantized(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; quant::row_bytes(ty, x.len()).unwrap()];
    quant::quantize_row(ty, x, &mut out).unwrap();
    out
}

fn dequantized(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    quant::dequantize_row(ty, bytes, &mut out).unwrap();
    out
}

fn f16_at(b: &[u8], at: usize) -> f64 {
    f64::from(half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32())
}

/// The exact dot of the rows as the formats define it, in f64, and Σ|w·a| for the tolerance.
/// Q4_1/Q5_1 use Q8_1's stored (f16-rounded) `s` for the min term, as every kernel does.
fn reference(wt: GgmlType, w: &[u8], a: &[u8], n: usize) -> (f64, f64) {
    let at = activation_type(wt);
    let wf = dequantized(wt, w, n);
    let af = dequantized(at, a, n);
    let mut dot: f64 = wf
        .iter()
        .zip(&af)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    let mag: f64 = wf
        .iter()
        .zip(&af)
        .map(|(&x, &y)| (f64::from(x) * f64::from(y)).abs())
        .sum();
    if at == GgmlType::Q8_1 {
        let wb = wt.type_size();
        for b in 0..n / 32 {
            let m = f16_at(w, b * wb + 2);
            let (da, s) = (f16_at(a, b * 36), f16_at(a, b * 36 + 2));
            let qsum: f64 = a[b * 36 + 4..b * 36 + 36]
                .iter()
                .map(|&q| f64::from(q as i8))
                .sum();
            dot += m * (s - da * qsum);
        }
    }
    (dot, mag)
}

/// Byte offsets of the f16 scales in a weight block (random bytes there could be inf/NaN).
fn scale_offsets(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        _ => &[],
    }
}

/// A weight row: quantized floats, or random bytes with sane scales (every bit pattern of the
/// quants, scales and high bits).
fn weight_row(rng: &mut Rng, ty: GgmlType, n: usize, random_bytes: bool) -> Vec<u8> {
    if !random_bytes || !ty.is_quantized() {
        return quantized(ty, &floats(rng, n));
    }
    let mut w = rng.bytes(quant::row_bytes(ty, n).unwrap());
    for block in w.chunks_exact_mut(ty.type_size()) {
        for &off in scale_offsets(ty) {
            let h = half::f16::from_f32(0.001 + 0.01 * rng.unit().abs());
            block[off..off + 2].copy_from_slice(&h.to_bits().to_le_bytes());
        }
    }
    w
}

#[test]
fn dots_match_the_dequantized_reference() {
    let variants = supported_variants();
    assert!(!variants.is_empty() || !super::avx2::is_supported());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for v in &variants {
        for &(wt, dot) in &v.dots {
            let block = wt.block_size();
            let sizes: &[usize] = if block == 1 {
                &[1, 7, 8, 33, 96, 100, 4096]
            } else if block == 32 {
                &[32, 64, 96, 4096]
            } else {
                &[256, 512, 768, 4096]
            };
            for &n in sizes {
                for random_bytes in [false, true] {
                    let w = weight_row(&mut rng, wt, n, random_bytes);
                    let a = quantized(activation_type(wt), &floats(&mut rng, n));
                    let got = f64::from(dot(n, &w, &a));
                    let (want, mag) = reference(wt, &w, &a, n);
                    let tol = 2e-6 * mag + 1e-30;
                    assert!(
                        (got - want).abs() <= tol,
                        "{} {wt} n={n} random_bytes={random_bytes}: got {got}, want {want} (tol {tol})",
                        v.name
                    );
                }
            }
        }
    }
}

/// Inputs that probe the rounding rules: exact halves (amax 127 makes the scale 1), ties in
/// magnitude with both signs, zeros, non-finite values, subnormals.
fn tricky_rows(rng: &mut Rng, n: usize) -> Vec<Vec<f32>> {
    let halves: Vec<f32> = (0..n)
        .map(|i| {
            if i % 32 == 5 {
                127.0
            } else {
                (rng.next() % 254) as f32 - 127.0 + 0.5
            }
        })
        .collect();
    let mut ties = floats(rng, n);
    for (i, x) in ties.iter_mut().enumerate() {
        if i % 7 == 3 {
            *x = if i % 2 == 0 { 5.0 } else { -5.0 };
        }
    }
    let mut specials = floats(rng, n);
    specials[3] = f32::NAN;
    if n > 40 {
        specials[40] = f32::INFINITY;
    }
    if n > 300 {
        specials[300] = f32::NEG_INFINITY;
        specials[301] = -f32::NAN;
    }
    let mut zeros = floats(rng, n);
    zeros[..n.min(256)].iter_mut().for_each(|x| *x = 0.0);
    let tiny: Vec<f32> = (0..n).map(|_| rng.unit() * 1e-39).collect();
    let big: Vec<f32> = (0..n).map(|_| rng.unit() * 1e5).collect();
    vec![floats(rng, n), halves, ties, specials, zeros, tiny, big]
}

#[test]
fn activation_quantizers_are_byte_identical_to_the_reference() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for v in &supported_variants() {
        for &(ty, act) in &v.acts {
            for n in [256, 768, 4096] {
                for x in tricky_rows(&mut rng, n) {
                    let want = quantized(ty, &x);
                    let mut got = vec![0xa5u8; want.len()];
                    act(&x, &mut got);
                    let first = got.iter().zip(&want).position(|(g, w)| g != w);
                    if let Some(f) = first {
                        let s = f.saturating_sub(4);
                        eprintln!(
                            "x[..8] {:?}\ngot  {:?}\nwant {:?}",
                            &x[..8],
                            &got[s..(s + 40).min(got.len())],
                            &want[s..(s + 40).min(got.len())]
                        );
                    }
                    assert_eq!(first, None, "{} {ty} n={n}: first differing byte", v.name);
                }
            }
        }
        // Float conversions of lengths that are not a multiple of the vector width.
        for &(ty, act) in &v.acts[3..] {
            for n in [1, 7, 15, 17, 33] {
                let x = floats(&mut rng, n);
                let want = quantized(ty, &x);
                let mut got = vec![0u8; want.len()];
                act(&x, &mut got);
                assert_eq!(got, want, "{} {ty} n={n}", v.name);
            }
        }
    }
}

#[test]
fn gemm_tiles_match_the_reference_for_full_and_partial_tiles() {
    let mut rng = Rng(0x5151_7e57_0dd5_eed5);
    for v in &supported_variants() {
        for &(wt, tile) in &v.tiles {
            // Shapes: one and three blocks; tokens 1, 2, 3, 17; rows across the packed tiles'
            // groups of 8/16, their 2-group tiles and their 64-row packing chunks.
            let shapes = [
                (1, 1),
                (4, 4),
                (5, 3),
                (9, 6),
                (2, 8),
                (8, 9),
                (1, 17),
                (33, 2),
            ];
            for (blocks, (rows, cols)) in [1, 3]
                .into_iter()
                .flat_map(|b| shapes.map(|s| (b, s)))
                .chain([(3, (70, 17)), (1, (131, 5))])
            {
                let n = blocks * wt.block_size();
                let (w_row, a_row) = (
                    wt.type_size() * blocks,
                    activation_type(wt).type_size() * blocks,
                );
                let (w_stride, a_stride, out_stride) = (w_row + 7, a_row + 3, cols + 2);
                let mut w = vec![0u8; rows * w_stride];
                let mut a = vec![0u8; cols * a_stride];
                for r in 0..rows {
                    let row = weight_row(&mut rng, wt, n, r % 2 == 1);
                    w[r * w_stride..][..w_row].copy_from_slice(&row);
                }
                for c in 0..cols {
                    let row = quantized(activation_type(wt), &floats(&mut rng, n));
                    a[c * a_stride..][..a_row].copy_from_slice(&row);
                }
                let mut out = vec![f32::NAN; rows * out_stride];
                tile(
                    n, &w, w_stride, rows, &a, a_stride, cols, &mut out, out_stride,
                );
                for r in 0..rows {
                    for c in 0..out_stride {
                        let got = out[r * out_stride + c];
                        if c >= cols {
                            assert!(got.is_nan(), "{} {wt}: padding written", v.name);
                            continue;
                        }
                        let wr = &w[r * w_stride..][..w_row];
                        let ac = &a[c * a_stride..][..a_row];
                        let (want, mag) = reference(wt, wr, ac, n);
                        let tol = 2e-6 * mag + 1e-30;
                        assert!(
                            (f64::from(got) - want).abs() <= tol,
                            "{} {wt} {rows}x{cols} [{r},{c}]: got {got}, want {want} (tol {tol})",
                            v.name
                        );
                    }
                }
            }
        }
    }
}

/// The tiles reading Q4_K×8 / Q6_K×8 / Q8_0×8 groups (`packed_*_x8_*`) give, on every variant, its
/// packed tile's results on the same rows in ggml's layout bit for bit (they pack the same
/// records): one and three blocks, 1 to 3 groups of 8 rows (half and whole zmm groups), 72
/// and 136 rows (past one 64-row packing run), 1 to 17 tokens.
#[test]
fn x8_tiles_match_the_packed_tiles_on_ggml_rows() {
    use crate::kernels::{WeightLayout, repack};
    let mut rng = Rng(0x0808_7e57_0dd5_eed5);
    for v in &supported_variants() {
        for (wt, layout, x8_tile, ggml_tile) in [
            (
                GgmlType::Q4_K,
                WeightLayout::Q4KX8,
                v.x8_tiles[0],
                v.tiles[7].1,
            ),
            (
                GgmlType::Q6_K,
                WeightLayout::Q6KX8,
                v.x8_tiles[1],
                v.tiles[9].1,
            ),
            (
                GgmlType::Q8_0,
                WeightLayout::Q8_0X8,
                v.x8_tiles[2],
                v.tiles[6].1,
            ),
        ] {
            assert_eq!(v.tiles[6].0, GgmlType::Q8_0);
            assert_eq!(v.tiles[7].0, GgmlType::Q4_K);
            assert_eq!(v.tiles[9].0, GgmlType::Q6_K);
            let act = crate::kernels::activation_type(wt).expect("paired");
            for blocks in [1, 3] {
                for (rows, cols) in [(8, 1), (16, 2), (24, 5), (72, 17), (136, 3)] {
                    let n = blocks * wt.block_size();
                    let (w_row, a_row) = (wt.type_size() * blocks, act.type_size() * blocks);
                    let mut w = Vec::with_capacity(rows * w_row);
                    for r in 0..rows {
                        w.extend(weight_row(&mut rng, wt, n, r % 2 == 1));
                    }
                    let mut a = Vec::with_capacity(cols * a_row);
                    for _ in 0..cols {
                        a.extend(quantized(act, &floats(&mut rng, n)));
                    }
                    let mut x8 = w.clone();
                    repack::repack_in_place(wt, layout, rows, n, &mut x8).unwrap();
                    assert_ne!(x8, w, "{wt}: repacking changed nothing");
                    let mut want = vec![f32::NAN; rows * cols];
                    let mut got = vec![f32::NAN; rows * cols];
                    ggml_tile(n, &w, w_row, rows, &a, a_row, cols, &mut want, cols);
                    x8_tile(n, &x8, w_row, rows, &a, a_row, cols, &mut got, cols);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert!(want.iter().all(|v| v.is_finite()));
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{} {layout} {rows}×{cols} k={n}",
                        v.name
                    );
                }
            }
        }
    }
}
