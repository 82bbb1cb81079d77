//! `llava bench`: throughput in the manner of llama.cpp's `llama-bench`, so the two can be put
//! side by side. Each test runs once to warm up (page in the weights, size the buffers), then
//! `repetitions` times, timed:
//! - `pp<N>`: N random tokens evaluated as one prompt in a fresh context (the batched path);
//! - `tg<N>`: N tokens decoded one at a time from an empty context (the decode path);
//! - `image`: one square image of the tower's input size (336 px for ViT-L/14-336) through
//!   preprocessing, the vision tower and the connector: one tile for LLaVA-1.5; for NeXT, the
//!   base tile plus the tiles of the grid anyres picks for it.
//!
//! Runs on the current rayon pool: the caller picks the thread count with `ThreadPool::install`.

use std::time::Instant;

use serde::Serialize;

use crate::llm::{CacheType, LlamaModel, LlmError, Output};
use crate::vision::{ClipModel, DecodedImage, VisionError};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Prompt tokens for the `pp` test (0: skip it).
    pub n_prompt: usize,
    /// Generated tokens for the `tg` test (0: skip it).
    pub n_gen: usize,
    /// Timed runs per test (after one warm-up run).
    pub repetitions: usize,
    pub cache_type: CacheType,
}

/// One test's timings.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// `pp512`, `tg128` or `image`.
    pub test: String,
    /// Tokens (or images) per run.
    pub n_items: usize,
    /// Seconds of each timed run.
    pub samples_s: Vec<f64>,
}

impl BenchResult {
    /// Tokens (images for `image`) per second of each run.
    pub fn samples_ts(&self) -> Vec<f64> {
        self.samples_s
            .iter()
            .map(|s| self.n_items as f64 / s)
            .collect()
    }

    /// Mean of the per-run rates, as llama-bench reports `avg_ts`.
    pub fn avg_ts(&self) -> f64 {
        mean(&self.samples_ts())
    }

    /// Sample standard deviation of the per-run rates (`stddev_ts`; 0 for one run).
    pub fn stddev_ts(&self) -> f64 {
        stddev(&self.samples_ts())
    }

    pub fn avg_ms(&self) -> f64 {
        mean(&self.samples_s) * 1000.0
    }
}

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Vision(#[from] VisionError),
    #[error("{0}")]
    Invalid(String),
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

fn stddev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// Deterministic pseudo-random token ids below `n_vocab` (llama-bench feeds random tokens too;
/// the values do not change the work done).
fn random_tokens(n: usize, n_vocab: usize, seed: u64) -> Vec<u32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n_vocab as u64) as u32
        })
        .collect()
}

/// Times `run` once unmeasured, then `repetitions` times.
fn timed<F>(repetitions: usize, mut run: F) -> Result<Vec<f64>, BenchError>
where
    F: FnMut() -> Result<(), BenchError>,
{
    run()?;
    let mut samples = Vec::with_capacity(repetitions);
    for _ in 0..repetitions {
        let t = Instant::now();
        run()?;
        samples.push(t.elapsed().as_secs_f64());
    }
    Ok(samples)
}

/// The `pp` and `tg` tests on `model`.
pub fn bench_llm(model: &LlamaModel, opts: &BenchOptions) -> Result<Vec<BenchResult>, BenchError> {
    if opts.repetitions == 0 {
        return Err(BenchError::Invalid("repetitions must be at least 1".into()));
    }
    let n_vocab = model.config().n_vocab;
    let n_ctx = opts.n_prompt.max(opts.n_gen).max(1);
    let mut results = Vec::new();
    if opts.n_prompt > 0 {
        let tokens = random_tokens(opts.n_prompt, n_vocab, 1);
        let mut session = model.session(n_ctx, opts.cache_type)?;
        let samples = timed(opts.repetitions, || {
            session.clear();
            session.eval_tokens(&tokens, Output::Last)?;
            Ok(())
        })?;
        results.push(BenchResult {
            test: format!("pp{}", opts.n_prompt),
            n_items: opts.n_prompt,
            samples_s: samples,
        });
    }
    if opts.n_gen > 0 {
        let tokens = random_tokens(opts.n_gen, n_vocab, 2);
        let mut session = model.session(n_ctx, opts.cache_type)?;
        let samples = timed(opts.repetitions, || {
            session.clear();
            for &t in &tokens {
                session.eval_tokens(&[t], Output::Last)?;
            }
            Ok(())
        })?;
        results.push(BenchResult {
            test: format!("tg{}", opts.n_gen),
            n_items: opts.n_gen,
            samples_s: samples,
        });
    }
    Ok(results)
}

/// A square test image of the tower's input size with a colour gradient (its content does not
/// change the work).
fn test_image(side: usize) -> Result<DecodedImage, BenchError> {
    let img = image::RgbImage::from_fn(side as u32, side as u32, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| BenchError::Invalid(format!("encoding the test image: {e}")))?;
    Ok(DecodedImage::from_bytes("bench-image.png", &png)?)
}

/// The `image` test: one image encoded (preprocessing, tower, connector, NeXT packing) per run.
pub fn bench_image(clip: &ClipModel, repetitions: usize) -> Result<BenchResult, BenchError> {
    if repetitions == 0 {
        return Err(BenchError::Invalid("repetitions must be at least 1".into()));
    }
    let image = test_image(clip.hparams().image_size)?;
    let samples = timed(repetitions, || {
        clip.encode_image(&image)?;
        Ok(())
    })?;
    Ok(BenchResult {
        test: "image".into(),
        n_items: 1,
        samples_s: samples,
    })
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_spread() {
        let r = BenchResult {
            test: "pp4".into(),
            n_items: 4,
            samples_s: vec![1.0, 2.0],
        };
        assert_eq!(r.samples_ts(), vec![4.0, 2.0]);
        assert_eq!(r.avg_ts(), 3.0);
        assert!((r.stddev_ts() - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(r.avg_ms(), 1500.0);
        assert_eq!(stddev(&[5.0]), 0.0);
    }

    #[test]
    fn random_tokens_stay_in_the_vocabulary_and_vary() {
        let t = random_tokens(1000, 37, 1);
        assert!(t.iter().all(|&id| id < 37));
        let distinct: std::collections::HashSet<_> = t.iter().collect();
        assert!(distinct.len() > 30);
        assert_eq!(t, random_tokens(1000, 37, 1));
    }
}
