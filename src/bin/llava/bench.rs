//! `llava bench`: argument parsing and printing for `llava::bench` (llama-bench's flags and its
//! table / JSON shapes).

use std::path::PathBuf;

use clap::Args;
use llava::bench::{BenchOptions, BenchResult, bench_image, bench_llm, peak_rss_bytes};
use llava::llm::CacheType;
use llava::vision::ClipModel;
use serde_json::json;

#[derive(Args)]
pub struct BenchArgs {
    /// The language model GGUF file.
    #[arg(short = 'm', long = "model")]
    model: Option<PathBuf>,
    #[command(flatten)]
    load: crate::load_args::LoadArgs,
    /// The mmproj GGUF file (vision tower + connector), for --image-encode.
    #[arg(long = "mmproj")]
    mmproj: Option<PathBuf>,
    /// Prompt tokens of the pp test (0: skip).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    n_prompt: usize,
    /// Generated tokens of the tg test (0: skip).
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    n_gen: usize,
    /// Also time one image through the vision tower and connector (needs --mmproj).
    #[arg(long = "image-encode")]
    image_encode: bool,
    /// Threads (0: one per core).
    #[arg(short = 't', long = "threads", default_value_t = 0)]
    threads: usize,
    /// Timed repetitions of each test (after one warm-up run).
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    repetitions: usize,
    /// KV cache type: f16 or f32.
    #[arg(long = "cache-type", default_value = "f16")]
    cache_type: String,
    /// Print a JSON array (one object per test, llama-bench -o json's fields) instead of a table.
    #[arg(long = "json")]
    json: bool,
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .map_err(|e| format!("cannot start {} threads: {e}", args.threads))?;
    let threads = pool.current_num_threads();
    pool.install(|| run_in_pool(args, threads))
}

fn run_in_pool(args: &BenchArgs, threads: usize) -> Result<(), String> {
    if args.model.is_none() && !args.image_encode {
        return Err("give -m MODEL for pp/tg tests, or --mmproj FILE --image-encode".into());
    }
    if args.image_encode && args.mmproj.is_none() {
        return Err("--image-encode needs --mmproj FILE".into());
    }
    let cache_type = CacheType::parse(&args.cache_type)
        .ok_or_else(|| format!("--cache-type {:?}: expected f16 or f32", args.cache_type))?;
    let mut rows: Vec<(String, BenchResult)> = Vec::new();
    if let Some(path) = &args.model {
        let model = crate::load_args::load_model(path, &args.load)?;
        let opts = BenchOptions {
            n_prompt: args.n_prompt,
            n_gen: args.n_gen,
            repetitions: args.repetitions,
            cache_type,
        };
        for r in bench_llm(&model, &opts).map_err(|e| e.to_string())? {
            rows.push((path.display().to_string(), r));
        }
    }
    if args.image_encode
        && let Some(path) = &args.mmproj
    {
        let clip = ClipModel::open(path).map_err(|e| e.to_string())?;
        let r = bench_image(&clip, args.repetitions).map_err(|e| e.to_string())?;
        rows.push((path.display().to_string(), r));
    }
    let rss = peak_rss_bytes();
    if args.json {
        let objects: Vec<_> = rows
            .iter()
            .map(|(file, r)| {
                json!({
                    "model_filename": file,
                    "test": r.test,
                    "n_threads": threads,
                    "n_prompt": if r.test.starts_with("pp") { r.n_items } else { 0 },
                    "n_gen": if r.test.starts_with("tg") { r.n_items } else { 0 },
                    "repetitions": r.samples_s.len(),
                    "avg_ns": (r.avg_ms() * 1e6) as u64,
                    "avg_ts": r.avg_ts(),
                    "stddev_ts": r.stddev_ts(),
                    "samples_ts": r.samples_ts(),
                    "peak_rss_bytes": rss,
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&objects).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        println!("| model | threads | test | t/s (images/s for image) | ms per run |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        for (file, r) in &rows {
            let name = std::path::Path::new(file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.clone());
            println!(
                "| {name} | {threads} | {} | {:.2} ± {:.2} | {:.1} |",
                r.test,
                r.avg_ts(),
                r.stddev_ts(),
                r.avg_ms()
            );
        }
        if let Some(bytes) = rss {
            println!("\npeak RSS: {:.1} MiB", bytes as f64 / (1024.0 * 1024.0));
        }
    }
    Ok(())
}
