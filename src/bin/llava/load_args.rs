//! `--load auto|memory|mmap` (and llama.cpp's `--no-mmap`), shared by generation and bench.

use clap::Args;
use llava::llm::{LlamaModel, LoadMode};

#[derive(Args)]
pub struct LoadArgs {
    /// Where the language model's weights go: auto (read into memory when the file fits in the
    /// available memory with a margin, else mapped), memory, or mmap.
    #[arg(long = "load", default_value = "auto", value_parser = parse_load_mode)]
    load: LoadMode,
    /// llama.cpp's spelling of --load memory.
    #[arg(long = "no-mmap", conflicts_with = "load")]
    no_mmap: bool,
}

fn parse_load_mode(name: &str) -> Result<LoadMode, String> {
    LoadMode::parse(name).ok_or_else(|| format!("expected one of {}", LoadMode::NAMES.join(", ")))
}

impl LoadArgs {
    pub fn mode(&self) -> LoadMode {
        if self.no_mmap {
            LoadMode::Memory
        } else {
            self.load
        }
    }
}

/// Loads the model at `path` as `args` say and logs where its weights went, and why.
pub fn load_model(path: &std::path::Path, args: &LoadArgs) -> Result<LlamaModel, String> {
    let model = LlamaModel::load_with(path, args.mode()).map_err(|e| e.to_string())?;
    if let Some(choice) = model.load_choice() {
        eprintln!("llava: {choice}");
    }
    Ok(model)
}
