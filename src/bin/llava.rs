//! `llava`: command-line front end of llava-rs. All logic lives in the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use llava::gguf::{GgufFile, inspect};

#[derive(Parser)]
#[command(
    name = "llava",
    version,
    about = "Run LLaVA vision-language models from GGUF files"
)]
// Later: a default mode with llama.cpp-style flags (-m, -p, ...) beside the subcommands.
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List a GGUF file's metadata and tensors.
    Inspect {
        /// The GGUF file.
        file: PathBuf,
        /// Print JSON (full values) instead of text.
        #[arg(long)]
        json: bool,
        /// Print arrays and long strings in full.
        #[arg(long)]
        full: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { file, json, full } => run_inspect(&file, json, full),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_inspect(path: &std::path::Path, json: bool, full: bool) -> Result<(), String> {
    let file = GgufFile::open(path).map_err(|e| match e {
        // Io errors name the path already.
        e @ llava::gguf::GgufError::Io { .. } => e.to_string(),
        e => format!("{}: {e}", path.display()),
    })?;
    let text = if json {
        let value = inspect::render_json(file.header());
        let mut s = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
        s.push('\n');
        s
    } else {
        inspect::render_text(file.header(), full)
    };
    write_stdout(&text)
}

/// Writes to stdout; a closed pipe (`llava inspect f | head`) is not an error.
fn write_stdout(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("writing to stdout: {e}")),
    }
}
