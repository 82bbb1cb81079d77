//! `llava-quantize IN OUT TYPE`: quantize a GGUF model or mmproj file with llama.cpp's mixes.
//! All logic lives in the library (`llava::quantize`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use llava::quantize::{LlamaFileType, QuantizeOptions, quantize_file};

#[derive(Parser)]
#[command(
    name = "llava-quantize",
    version,
    about = "Quantize a GGUF language model or mmproj file, choosing each tensor's type as llama.cpp's llama-quantize does",
    after_help = format!("TYPE is one of: {} (case-insensitive; Q3_K, Q4_K, Q5_K mean the _M mixes)", LlamaFileType::names_list())
)]
struct Cli {
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Also convert tensors that are already quantized (dequantized first; loses quality).
    #[arg(long)]
    allow_requantize: bool,
    /// No progress bar and no closing summary.
    #[arg(long, short)]
    quiet: bool,
    /// The GGUF file to quantize (F32, F16 or BF16 weights).
    #[arg(value_name = "IN")]
    input: PathBuf,
    /// Where to write the result (replaced only once it is complete).
    #[arg(value_name = "OUT")]
    output: PathBuf,
    /// The file type to produce.
    #[arg(value_name = "TYPE", value_parser = parse_file_type)]
    file_type: LlamaFileType,
}

fn parse_file_type(name: &str) -> Result<LlamaFileType, String> {
    LlamaFileType::from_name(name).ok_or_else(|| {
        format!(
            "unknown type '{name}'; expected one of: {}",
            LlamaFileType::names_list()
        )
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let options = QuantizeOptions {
        file_type: cli.file_type,
        threads: cli.threads,
        allow_requantize: cli.allow_requantize,
        progress: !cli.quiet,
    };
    match quantize_file(&cli.input, &cli.output, &options) {
        Ok(summary) => {
            if !cli.quiet {
                println!(
                    "{} -> {}\n{summary}",
                    cli.input.display(),
                    cli.output.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints clap's message, with the usage line when clap left it out (bad values), and exits
/// with clap's status (2 for usage errors, 0 for --help and --version).
fn usage_error(e: clap::Error) -> ExitCode {
    let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    let message = e.render().to_string();
    if informational {
        println!("{}", message.trim_end());
        return ExitCode::SUCCESS;
    }
    eprint!("{message}");
    if !message.contains("Usage:") {
        eprintln!("\n{}", Cli::command().render_usage());
    }
    ExitCode::from(2)
}
