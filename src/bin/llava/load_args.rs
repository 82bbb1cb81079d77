//! `--load auto|memory|mmap` (and llama.cpp's `--no-mmap`) and `--no-repack`, shared by
//! generation and bench.

use clap::Args;
use llava::llm::{LlamaModel, LoadMode, LoadOptions, Repack};

#[derive(Args)]
pub struct LoadArgs {
    /// Where the language model's weights go: auto (read into memory when the file fits in the
    /// available memory with a margin, else mapped), memory, or mmap.
    #[arg(long = "load", default_value = "auto", value_parser = parse_load_mode)]
    load: LoadMode,
    /// llama.cpp's spelling of --load memory.
    #[arg(long = "no-mmap", conflicts_with = "load")]
    no_mmap: bool,
    /// Keep the weights read into memory in ggml's layout, instead of repacking those the CPU
    /// tier decodes faster in another (Q4_K, Q6_K and Q8_0 into Q4_K×8, Q6_K×8 and Q8_0×8
    /// where the tier has their dots; mapped weights are never repacked). llama.cpp's
    /// --no-repack.
    #[arg(long = "no-repack")]
    no_repack: bool,
    /// Repack every Q4_K, Q6_K and Q8_0 matrix whose shape allows, even where the tier has no
    /// fast dot for the layout (it then runs the portable one): to measure the repacking, or
    /// test it.
    #[arg(long = "force-repack", hide = true, conflicts_with = "no_repack")]
    force_repack: bool,
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

    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            mode: self.mode(),
            repack: match (self.no_repack, self.force_repack) {
                (true, _) => Repack::Off,
                (false, true) => Repack::Force,
                (false, false) => Repack::Auto,
            },
        }
    }
}

/// Loads the model at `path` as `args` say and logs where its weights went and in what
/// layout, and why.
pub fn load_model(path: &std::path::Path, args: &LoadArgs) -> Result<LlamaModel, String> {
    let model = LlamaModel::load_with_options(path, args.options()).map_err(|e| e.to_string())?;
    match (model.load_choice(), model.repack_summary()) {
        (Some(choice), Some(repack)) => eprintln!("llava: {choice}; {repack}"),
        (Some(choice), None) => eprintln!("llava: {choice}"),
        _ => {}
    }
    Ok(model)
}
