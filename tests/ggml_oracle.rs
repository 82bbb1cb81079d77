//! Bit-exactness of `llava::quant` against ggml itself (the `ggml-sys-bleedingedge` oracle,
//! ggml of llama.cpp b2757, built with `-ffp-contract=off`).
//!
//! For every type with a block format: quantization must give the same bytes as
//! `ggml_quantize_chunk` (no importance matrix; for the activation types Q8_1 and Q8_K, ggml's
//! reference `from_float`), and dequantization the same f32 bits as ggml's `to_float`, both on
//! the quantized rows and on random block bytes. BF16 and Q8_1's dequantization have no ggml
//! counterpart in that version and are checked against their definitions.
//!
//! Run `cargo test --test ggml_oracle -- --nocapture` to see how many rows each check covered.

use std::ffi::c_void;
use std::sync::Once;

use ggml_sys_bleedingedge as ggml;
use half::f16;
use llava::GgmlType;
use llava::quant::{self, bf16_to_f32, f32_to_bf16};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Cauchy, Distribution, Normal, StudentT};

// ggml-quants.c functions the oracle library exports but ggml.h does not declare.
unsafe extern "C" {
    fn quantize_row_q8_K_reference(x: *const f32, y: *mut c_void, k: i64);
    fn dequantize_row_q8_K(x: *const c_void, y: *mut f32, k: i64);
}

const BLOCK_TYPES: [GgmlType; 13] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
    GgmlType::IQ4_NL,
];

/// ggml's f16 -> f32 lookup table (used by every `to_float`) is filled by the first
/// `ggml_init`.
fn init_ggml() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let params = ggml::ggml_init_params {
            mem_size: 1024,
            mem_buffer: std::ptr::null_mut(),
            no_alloc: true,
        };
        // SAFETY: plain FFI call with valid parameters; the context is freed right away, the
        // f16 table it initialised is global and stays.
        unsafe {
            let ctx = ggml::ggml_init(params);
            assert!(!ctx.is_null(), "ggml_init failed");
            ggml::ggml_free(ctx);
        }
    });
}

fn traits(ty: GgmlType) -> ggml::ggml_type_traits_t {
    // SAFETY: returns a struct by value for a valid type id.
    unsafe { ggml::ggml_internal_get_type_traits(ty.id()) }
}

/// ggml's bytes for `nrows` rows of `n_per_row` elements.
fn oracle_quantize(ty: GgmlType, src: &[f32], n_per_row: usize) -> Vec<u8> {
    init_ggml();
    let nrows = src.len() / n_per_row;
    let row_size = ty.bytes_for(n_per_row as u64).expect("whole blocks") as usize;
    // Zero-filled: ggml leaves Q8_K's bsums unwritten for an all-zero block.
    let mut dst = vec![0u8; nrows * row_size];
    let n = src.len() as i64;
    let (src_ptr, dst_ptr) = (src.as_ptr(), dst.as_mut_ptr().cast::<c_void>());
    match ty {
        GgmlType::Q8_1 => {
            let reference = traits(ty)
                .from_float_reference
                .expect("q8_1 reference quantizer");
            // SAFETY: src holds n floats, dst n/32 blocks of 36 bytes.
            unsafe { reference(src_ptr, dst_ptr, n) };
        }
        // SAFETY: src holds n floats, dst n/256 blocks of 292 bytes.
        GgmlType::Q8_K => unsafe { quantize_row_q8_K_reference(src_ptr, dst_ptr, n) },
        _ => {
            // SAFETY: src holds nrows * n_per_row floats and dst nrows rows of row_size bytes.
            let written = unsafe {
                ggml::ggml_quantize_chunk(
                    ty.id(),
                    src_ptr,
                    dst_ptr,
                    0,
                    nrows as i64,
                    n_per_row as i64,
                    std::ptr::null(),
                )
            };
            assert_eq!(written, dst.len(), "{ty}: ggml_quantize_chunk size");
        }
    }
    dst
}

/// ggml's `to_float` of `bytes`, or `None` where that ggml version has none.
fn oracle_dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Option<Vec<f32>> {
    init_ggml();
    let mut out = vec![0.0f32; n];
    let (src, dst) = (bytes.as_ptr().cast::<c_void>(), out.as_mut_ptr());
    if ty == GgmlType::Q8_K {
        // SAFETY: bytes holds n/256 Q8_K blocks, out n floats.
        unsafe { dequantize_row_q8_K(src, dst, n as i64) };
        return Some(out);
    }
    let to_float = traits(ty).to_float?;
    // SAFETY: bytes holds the n elements of type ty, out n floats.
    unsafe { to_float(src, dst, n as i64) };
    Some(out)
}

/// Q8_1 has no ggml `to_float`: its definition is `d * q` per weight.
fn q8_1_by_definition(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(36)
        .flat_map(|b| {
            let d = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
            b[4..].iter().map(move |&q| d * f32::from(q as i8))
        })
        .collect()
}

fn assert_same_bits(ty: GgmlType, what: &str, ours: &[f32], theirs: &[f32]) {
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{ty} {what}: element {i} is {a:e} ({:#010x}), ggml gives {b:e} ({:#010x})",
            a.to_bits(),
            b.to_bits()
        );
    }
}

fn assert_same_bytes(ty: GgmlType, what: &str, block: usize, ours: &[u8], theirs: &[u8]) {
    assert_eq!(ours.len(), theirs.len(), "{ty} {what}: length");
    if let Some(i) = ours.iter().zip(theirs).position(|(a, b)| a != b) {
        let b = i / block;
        panic!(
            "{ty} {what}: byte {i} (block {b}, offset {}) differs\n ours: {:?}\n ggml: {:?}",
            i % block,
            &ours[b * block..(b + 1) * block],
            &theirs[b * block..(b + 1) * block]
        );
    }
}

/// The input distributions, each a named generator of `n` values.
#[derive(Clone, Copy, Debug)]
enum Dist {
    Gaussian(f32),
    Uniform(f32),
    Positive,
    Negative,
    StudentT3,
    Cauchy,
    Zeros,
    Constant,
    Outlier,
    SparseZeros,
    /// Multiples of 1/2 up to `top` with one element per block at +-`top`: with `top` at a
    /// format's level count the scale is exact and many products land on rounding ties.
    HalfSteps(f32),
    Scaled(f32),
    /// Gaussian with some infinities and NaNs.
    NonFinite,
}

fn generate(dist: Dist, n: usize, block: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<f32> {
    let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
    let gauss = |rng: &mut Xoshiro256PlusPlus| normal.sample(rng);
    match dist {
        Dist::Gaussian(sigma) => (0..n).map(|_| sigma * gauss(rng)).collect(),
        Dist::Uniform(a) => (0..n).map(|_| rng.random_range(-a..a)).collect(),
        Dist::Positive => (0..n).map(|_| rng.random_range(0.5f32..3.0)).collect(),
        Dist::Negative => (0..n).map(|_| rng.random_range(-3.0f32..-0.5)).collect(),
        Dist::StudentT3 => {
            let t = StudentT::new(3.0f32).expect("valid student t");
            (0..n).map(|_| t.sample(rng)).collect()
        }
        Dist::Cauchy => {
            let c = Cauchy::new(0.0f32, 1.0).expect("valid cauchy");
            (0..n).map(|_| c.sample(rng)).collect()
        }
        Dist::Zeros => vec![0.0; n],
        Dist::Constant => vec![rng.random_range(-4.0f32..4.0); n],
        Dist::Outlier => {
            let mut x: Vec<f32> = (0..n).map(|_| gauss(rng)).collect();
            for chunk in x.chunks_mut(block) {
                let i = rng.random_range(0..chunk.len());
                chunk[i] *= rng.random_range(50.0f32..1000.0);
            }
            x
        }
        Dist::SparseZeros => (0..n)
            .map(|_| {
                if rng.random_range(0..4) == 0 {
                    gauss(rng)
                } else {
                    0.0
                }
            })
            .collect(),
        Dist::HalfSteps(top) => {
            let steps = (2.0 * top) as i32;
            let mut x: Vec<f32> = (0..n)
                .map(|_| rng.random_range(-steps..=steps) as f32 * 0.5)
                .collect();
            for chunk in x.chunks_mut(block) {
                let i = rng.random_range(0..chunk.len());
                chunk[i] = if rng.random() { top } else { -top };
            }
            x
        }
        Dist::Scaled(scale) => (0..n).map(|_| scale * gauss(rng)).collect(),
        Dist::NonFinite => (0..n)
            .map(|_| match rng.random_range(0..40) {
                0 => f32::INFINITY,
                1 => f32::NEG_INFINITY,
                2 => f32::NAN,
                _ => gauss(rng),
            })
            .collect(),
    }
}

/// The largest magnitude each type is checked at. Once an f16 super-scale of Q2_K/Q4_K/Q5_K
/// overflows (values beyond ~1e6), ggml feeds `inf * 0 = NaN` to `nearest_int`, whose
/// `assert(fval <= 4194303.f)` aborts when the oracle is built with assertions (any
/// non-release profile). Release builds of ggml (NDEBUG) return 0 there, as we do; so with
/// `cargo test --release` those types are checked at 1e30 too.
fn huge_scale(ty: GgmlType) -> f32 {
    let oracle_asserts = cfg!(debug_assertions);
    match ty {
        GgmlType::Q2_K | GgmlType::Q4_K | GgmlType::Q5_K if oracle_asserts => 1.0e5,
        _ => 1.0e30,
    }
}

fn distributions(ty: GgmlType) -> Vec<Dist> {
    let mut dists = vec![
        Dist::Gaussian(1.0),
        Dist::Gaussian(0.02),
        Dist::Uniform(1.0),
        Dist::Uniform(100.0),
        Dist::Positive,
        Dist::Negative,
        Dist::StudentT3,
        Dist::Cauchy,
        Dist::Zeros,
        Dist::Constant,
        Dist::Outlier,
        Dist::SparseZeros,
        Dist::HalfSteps(127.0),
        Dist::HalfSteps(8.0),
        Dist::HalfSteps(16.0),
        Dist::HalfSteps(31.0),
        Dist::HalfSteps(3.0),
        Dist::HalfSteps(32.0),
        Dist::HalfSteps(4.0),
        Dist::HalfSteps(15.0),
        Dist::Scaled(1.0e-30),
        Dist::Scaled(1.0e-6),
        Dist::Scaled(huge_scale(ty)),
    ];
    // The K-quants (and Q8_K) feed NaN to `nearest_int` for non-finite input, which a debug
    // ggml aborts on; the legacy formats and IQ4_NL have no such assertion.
    let is_k_quant = ty.block_size() == 256;
    if !is_k_quant || !cfg!(debug_assertions) {
        dists.push(Dist::NonFinite);
    }
    dists
}

/// Quantizes every distribution at several row lengths with both implementations and compares
/// the bytes, then the dequantized floats. Returns the number of rows checked.
fn check_quantize_and_dequantize(ty: GgmlType, seed: u64) -> usize {
    let block = ty.block_size();
    let block_bytes = ty.type_size();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut rows_checked = 0;
    for dist in distributions(ty) {
        for (blocks_per_row, nrows) in [(1, 96), (2, 48), (7, 16), (16, 8)] {
            let n_per_row = blocks_per_row * block;
            let src = generate(dist, n_per_row * nrows, block, &mut rng);
            let theirs = oracle_quantize(ty, &src, n_per_row);
            let row_bytes = quant::row_bytes(ty, n_per_row).expect("row size");
            let mut ours = vec![0u8; row_bytes * nrows];
            for (x, out) in src
                .chunks_exact(n_per_row)
                .zip(ours.chunks_exact_mut(row_bytes))
            {
                quant::quantize_row(ty, x, out).expect("quantize");
            }
            let what = format!("quantize {dist:?}, {n_per_row} per row");
            assert_same_bytes(ty, &what, block_bytes, &ours, &theirs);

            let mut deq = vec![0.0f32; src.len()];
            quant::dequantize_row(ty, &ours, &mut deq).expect("dequantize");
            let reference = match oracle_dequantize(ty, &theirs, src.len()) {
                Some(r) => r,
                None => q8_1_by_definition(&theirs),
            };
            assert_same_bits(ty, &format!("dequantize {dist:?}"), &deq, &reference);
            rows_checked += nrows;
        }
    }
    rows_checked
}

/// Byte offsets of a block's f16 scales (or, for Q8_K, its f32 scale).
fn scale_offsets(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::IQ4_NL => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 | GgmlType::Q4_K | GgmlType::Q5_K => {
            &[0, 2]
        }
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        GgmlType::Q8_K => &[0],
        _ => &[],
    }
}

/// Random bytes as blocks, with every scale made finite (an infinite or NaN f16/f32 exponent
/// has a bit cleared). Returns the number of blocks checked.
fn check_dequantize_random_bytes(ty: GgmlType, seed: u64) -> usize {
    let (block, size) = ty.block_geometry();
    let nblocks = 16384;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut bytes: Vec<u8> = (0..nblocks * size).map(|_| rng.random()).collect();
    for b in bytes.chunks_exact_mut(size) {
        for &at in scale_offsets(ty) {
            if ty == GgmlType::Q8_K {
                // f32 exponent: bits 23..31, i.e. byte 3 bits 0..7 and byte 2 bit 7.
                if b[at + 3] & 0x7f == 0x7f && b[at + 2] & 0x80 != 0 {
                    b[at + 3] &= !0x01;
                }
            } else if b[at + 1] & 0x7c == 0x7c {
                b[at + 1] &= !0x04;
            }
        }
    }
    let n = nblocks * block;
    let mut ours = vec![0.0f32; n];
    quant::dequantize_row(ty, &bytes, &mut ours).expect("dequantize");
    let reference = match oracle_dequantize(ty, &bytes, n) {
        Some(r) => r,
        None => q8_1_by_definition(&bytes),
    };
    assert_same_bits(ty, "dequantize random bytes", &ours, &reference);
    nblocks
}

macro_rules! oracle_tests {
    ($($name:ident: $ty:ident, $seed:expr;)+) => {$(
        #[test]
        fn $name() {
            let ty = GgmlType::$ty;
            let rows = check_quantize_and_dequantize(ty, $seed);
            let blocks = check_dequantize_random_bytes(ty, $seed + 1000);
            println!("{ty}: {rows} quantized rows byte-identical, dequantized bit-identical; \
                      {blocks} random blocks dequantized bit-identical");
            assert!(rows >= 3000 && blocks >= 16384);
        }
    )+};
}

oracle_tests! {
    q4_0: Q4_0, 1;
    q4_1: Q4_1, 2;
    q5_0: Q5_0, 3;
    q5_1: Q5_1, 4;
    q8_0: Q8_0, 5;
    q8_1: Q8_1, 6;
    q2_k: Q2_K, 7;
    q3_k: Q3_K, 8;
    q4_k: Q4_K, 9;
    q5_k: Q5_K, 10;
    q6_k: Q6_K, 11;
    q8_k: Q8_K, 12;
    iq4_nl: IQ4_NL, 13;
}

#[test]
fn every_block_type_is_covered() {
    let covered: Vec<GgmlType> = BLOCK_TYPES.to_vec();
    for ty in GgmlType::ALL {
        let is_float = matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
        assert_eq!(
            ty.has_block_format() && !is_float,
            covered.contains(&ty),
            "{ty}"
        );
    }
}

/// Interesting f32 bit patterns: every NaN class, infinities, zeros, subnormals, f16 rounding
/// ties and overflow boundaries, plus random bits.
fn f32_patterns(rng: &mut Xoshiro256PlusPlus) -> Vec<f32> {
    let mut bits: Vec<u32> = vec![
        0x0000_0000,
        0x8000_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        0xffc0_0000,
        0x7f80_0001,
        0xff80_0001,
        0x7fbf_ffff,
        0x7fff_ffff,
        0x7f80_2000,
        0x7f81_0000,
        0x0000_0001,
        0x8000_0001,
        0x007f_ffff,
        0x0080_0000,
        0x477f_e000,
        0x477f_efff,
        0x477f_f000,
        0x477f_f001,
        0x3380_0000,
        0x3300_0000,
        0x3300_0001,
        0x33c0_0000,
        0x3880_0000,
        0x387f_c000,
        0x3f80_1000,
        0x3f80_3000,
        0x3f80_1001,
    ];
    // Exact f16 midpoints: every f16 value plus half an f16 ulp (ties), in both signs.
    for h in (0u16..0x7c00).step_by(7) {
        let x = f16::from_bits(h).to_f32();
        let next = f16::from_bits(h + 1).to_f32();
        let mid = ((f64::from(x) + f64::from(next)) / 2.0) as f32;
        bits.extend([
            mid.to_bits(),
            (-mid).to_bits(),
            mid.to_bits() + 1,
            mid.to_bits() - 1,
        ]);
    }
    bits.extend((0..200_000).map(|_| rng.random::<u32>()));
    // Random values in the f16 range, where the rounding is exercised most.
    bits.extend((0..200_000).map(|_| {
        let e = rng.random_range(0x3300_0000u32..0x4780_0000) & 0x7f80_0000;
        e | (rng.random::<u32>() & 0x807f_ffff)
    }));
    bits.into_iter().map(f32::from_bits).collect()
}

#[test]
fn f16_quantize_matches_ggml_including_nan_and_software_path() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(20);
    let x = f32_patterns(&mut rng);
    let theirs = oracle_quantize(GgmlType::F16, &x, x.len());
    let mut ours = vec![0u8; 2 * x.len()];
    quant::quantize_row(GgmlType::F16, &x, &mut ours).expect("quantize f16");
    assert_same_bytes(GgmlType::F16, "quantize", 2, &ours, &theirs);
    // The `half` crate's software conversion (used where F16C is missing) must agree too.
    for (v, b) in x.iter().zip(theirs.chunks_exact(2)) {
        let expected = u16::from_le_bytes([b[0], b[1]]);
        // SAFETY: plain FFI call on a float.
        assert_eq!(unsafe { ggml::ggml_fp32_to_fp16(*v) }, expected);
        assert_eq!(
            f16::from_f32_const(*v).to_bits(),
            expected,
            "{:#010x}",
            v.to_bits()
        );
    }
    println!("F16: {} values quantized byte-identical", x.len());
}

#[test]
fn f16_dequantize_matches_ggml_for_all_65536_values() {
    let bytes: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
    let theirs = oracle_dequantize(GgmlType::F16, &bytes, 65536).expect("f16 to_float");
    let mut ours = vec![0.0f32; 65536];
    quant::dequantize_row(GgmlType::F16, &bytes, &mut ours).expect("dequantize f16");
    assert_same_bits(GgmlType::F16, "dequantize", &ours, &theirs);
    for (h, y) in (0..=u16::MAX).zip(&theirs) {
        assert_eq!(
            f16::from_bits(h).to_f32_const().to_bits(),
            y.to_bits(),
            "{h:#06x}"
        );
    }
    println!("F16: all 65536 values dequantized bit-identical");
}

#[test]
fn f32_rows_are_copied_exactly() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(21);
    let x = f32_patterns(&mut rng);
    let theirs = oracle_quantize(GgmlType::F32, &x, x.len());
    let mut ours = vec![0u8; 4 * x.len()];
    quant::quantize_row(GgmlType::F32, &x, &mut ours).expect("quantize f32");
    assert_same_bytes(GgmlType::F32, "quantize", 4, &ours, &theirs);
    let mut back = vec![0.0f32; x.len()];
    quant::dequantize_row(GgmlType::F32, &ours, &mut back).expect("dequantize f32");
    assert_same_bits(GgmlType::F32, "dequantize", &back, &x);
}

/// bf16 by definition, independently of the bit trick: the nearer of the two bf16 neighbours
/// (exact distance in f64), ties to the even one; NaN maps to a quiet NaN of the same sign.
fn bf16_by_definition(x: f32) -> u16 {
    if x.is_nan() {
        return 0;
    }
    let bits = x.to_bits();
    let toward_zero = (bits >> 16) as u16;
    let away = toward_zero + 1; // the next magnitude (may be infinity), same sign
    let lo = f64::from(f32::from_bits(u32::from(toward_zero) << 16));
    if lo == f64::from(x) {
        return toward_zero; // exactly representable, infinities included
    }
    let hi_bits = u32::from(away) << 16;
    // Beyond the largest finite bf16, "away" is infinity: compare against 2^128, where the
    // next binade would start.
    let hi = if (hi_bits & 0x7fff_ffff) == 0x7f80_0000 {
        2f64.powi(128).copysign(f64::from(x))
    } else {
        f64::from(f32::from_bits(hi_bits))
    };
    let (dlo, dhi) = ((f64::from(x) - lo).abs(), (f64::from(x) - hi).abs());
    if dlo < dhi || (dlo == dhi && toward_zero & 1 == 0) {
        toward_zero
    } else {
        away
    }
}

#[test]
fn bf16_matches_its_definition() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(22);
    let mut x = f32_patterns(&mut rng);
    // bf16 ties: low half exactly 0x8000, both parities.
    x.extend((0..100_000).map(|_| f32::from_bits((rng.random::<u32>() & 0xffff_0000) | 0x8000)));
    let mut bytes = vec![0u8; 2 * x.len()];
    quant::quantize_row(GgmlType::BF16, &x, &mut bytes).expect("quantize bf16");
    let mut back = vec![0.0f32; x.len()];
    quant::dequantize_row(GgmlType::BF16, &bytes, &mut back).expect("dequantize bf16");
    for ((v, b), y) in x.iter().zip(bytes.chunks_exact(2)).zip(&back) {
        let h = u16::from_le_bytes([b[0], b[1]]);
        assert_eq!(h, f32_to_bf16(*v));
        assert_eq!(
            y.to_bits(),
            u32::from(h) << 16,
            "bf16 -> f32 is a 16-bit shift"
        );
        assert_eq!(bf16_to_f32(h).to_bits(), y.to_bits());
        if v.is_nan() {
            assert!(y.is_nan(), "{:#010x} must stay NaN", v.to_bits());
            assert_ne!(
                h & 0x0040,
                0,
                "{:#010x} must become a quiet NaN",
                v.to_bits()
            );
            assert_eq!(h & 0x8000, (v.to_bits() >> 16) as u16 & 0x8000, "NaN sign");
        } else {
            assert_eq!(h, bf16_by_definition(*v), "{:e} ({:#010x})", v, v.to_bits());
        }
    }
    println!("BF16: {} values checked against the definition", x.len());
}
