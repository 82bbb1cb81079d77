//! Times `quant::quantize_row` for each block type on 4096-element rows of gaussian data, and
//! F16 -> F32 row conversion (`dequantize_row(F16)`), so that quantizer speed can be tracked.
//!
//! Run with `cargo bench --bench quantize`; pass type names to time only those
//! (`cargo bench --bench quantize -- q4_K q6_K`). Reports the best of several repetitions.

use std::hint::black_box;
use std::time::{Duration, Instant};

use llava::GgmlType;
use llava::quant;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, Normal};

const ROW_LENGTH: usize = 4096;
const ROWS: usize = 64;
const REPETITIONS: usize = 5;

const TYPES: [GgmlType; 13] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
    GgmlType::IQ4_NL,
    GgmlType::F16,
];

/// The fastest of `REPETITIONS` runs of `f`.
fn best_time(mut f: impl FnMut()) -> Duration {
    (0..REPETITIONS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn report(label: &str, elapsed: Duration) {
    let per_row = elapsed / ROWS as u32;
    let rate = (ROWS * ROW_LENGTH) as f64 / elapsed.as_secs_f64() / 1e6;
    println!("{label:<16} {per_row:>10.2?}/row  {rate:>8.1} Melem/s");
}

fn main() {
    let selected: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| selected.is_empty() || selected.iter().any(|s| s == name);

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(4096);
    let normal = Normal::new(0.0f32, 1.0).expect("valid normal distribution");
    let data: Vec<f32> = (0..ROWS * ROW_LENGTH)
        .map(|_| normal.sample(&mut rng))
        .collect();

    println!("{ROWS} rows x {ROW_LENGTH} gaussian elements, best of {REPETITIONS}");
    for ty in TYPES {
        if !wanted(ty.name()) {
            continue;
        }
        let row_bytes = quant::row_bytes(ty, ROW_LENGTH).expect("supported type");
        let mut out = vec![0u8; ROWS * row_bytes];
        let elapsed = best_time(|| {
            for (src, dst) in data
                .chunks_exact(ROW_LENGTH)
                .zip(out.chunks_exact_mut(row_bytes))
            {
                quant::quantize_row(ty, black_box(src), dst).expect("quantize row");
            }
            black_box(&out);
        });
        report(&format!("quantize {}", ty.name()), elapsed);

        if ty == GgmlType::F16 {
            let mut back = vec![0.0f32; ROWS * ROW_LENGTH];
            let elapsed = best_time(|| {
                for (src, dst) in out
                    .chunks_exact(row_bytes)
                    .zip(back.chunks_exact_mut(ROW_LENGTH))
                {
                    quant::dequantize_row(ty, black_box(src), dst).expect("dequantize row");
                }
                black_box(&back);
            });
            report("dequantize F16", elapsed);
        }
    }
}
