//! `llava-convert MODEL_DIR --outdir DIR [--outtype f32|f16|bf16|q8_0] [--vision-tower CLIP_DIR]`:
//! a Hugging Face LLaVA checkpoint into an LLM GGUF and an mmproj GGUF in llama.cpp's layout.
//! All logic lives in the library (`llava::convert`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use llava::convert::{ConvertOptions, OutType, convert};

#[derive(Parser)]
#[command(
    name = "llava-convert",
    version,
    about = "Convert a Hugging Face LLaVA checkpoint (llava-hf 1.5 / NeXT, or the original LLaVA layout) into <name>-<type>.gguf and mmproj-<name>-<type>.gguf"
)]
struct Cli {
    /// The checkpoint directory (config.json, weights, tokenizer.model).
    #[arg(value_name = "MODEL_DIR")]
    model_dir: PathBuf,
    /// Where to write the two files.
    #[arg(long, value_name = "DIR")]
    outdir: PathBuf,
    /// Type of the weight matrices: f32, f16, bf16 or q8_0 (norms and biases stay f32).
    #[arg(long, default_value = "f16", value_parser = parse_outtype)]
    outtype: OutType,
    /// The CLIP checkpoint directory (original LLaVA layout only).
    #[arg(long, value_name = "CLIP_DIR")]
    vision_tower: Option<PathBuf>,
    /// Model name for the file names and general.name (default: MODEL_DIR's name).
    #[arg(long)]
    name: Option<String>,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

fn parse_outtype(s: &str) -> Result<OutType, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = ConvertOptions {
        model_dir: cli.model_dir,
        outdir: cli.outdir,
        outtype: cli.outtype,
        vision_tower: cli.vision_tower,
        name: cli.name,
        progress: !cli.quiet,
        threads: cli.threads,
    };
    match convert(&options) {
        Ok(out) => {
            println!("{}", out.llm_path.display());
            println!("{}", out.mmproj_path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
