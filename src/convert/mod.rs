//! `llava-convert`: a Hugging Face LLaVA checkpoint (llava-hf 1.5 / NeXT, or the original LLaVA
//! layout with a separate CLIP) into two GGUF files in llama.cpp's layout: the language model
//! and the mmproj (CLIP + connector). See docs/convert.md.
//!
//! The pipeline ([`convert`]): read the config (with transformers' defaults), map the weights,
//! plan every output tensor of both files (name, shape, type) and check the plan against the
//! checkpoint, build the vocabulary, then stream: one tensor at a time from the maps, rows
//! converted in parallel, into two atomic GGUF writers. Either both files appear or neither.

mod config;
mod error;
mod json;
mod llm;
mod mmproj;
pub mod names;
mod outtype;
mod pickle;
mod plan;
mod safetensors;
mod sentencepiece;
mod store;
mod tokenizer;
mod torch;
mod weights;
mod write;
mod zip;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

pub use config::{Layout, ModelConfig};
pub use error::ConvertError;
pub use outtype::OutType;
pub use store::{SourceTensor, SrcDtype, TensorStore};
pub use write::permuted_source_row;

use crate::gguf::GgufWriter;
use plan::{PlannedTensor, SourceIndex};

/// What to convert and how.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// The checkpoint directory (config.json, weights, tokenizer files).
    pub model_dir: PathBuf,
    /// Where the two files go (created if missing).
    pub outdir: PathBuf,
    pub outtype: OutType,
    /// The CLIP checkpoint directory, for the original LLaVA layout.
    pub vision_tower: Option<PathBuf>,
    /// The model name in file names and `general.name` (default: the model directory's name).
    pub name: Option<String>,
    /// Show a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
}

impl ConvertOptions {
    /// Options with the defaults: F16, no vision tower, directory name, no progress bar.
    pub fn new(model_dir: impl Into<PathBuf>, outdir: impl Into<PathBuf>) -> ConvertOptions {
        ConvertOptions {
            model_dir: model_dir.into(),
            outdir: outdir.into(),
            outtype: OutType::F16,
            vision_tower: None,
            name: None,
            progress: false,
            threads: 0,
        }
    }
}

/// The files written.
#[derive(Clone, Debug)]
pub struct ConvertOutput {
    /// `<outdir>/<name>-<type>.gguf`.
    pub llm_path: PathBuf,
    /// `<outdir>/mmproj-<name>-<type>.gguf`.
    pub mmproj_path: PathBuf,
    pub llm_tensors: usize,
    pub mmproj_tensors: usize,
}

/// Reads the config of `model_dir` (and of `vision_tower` for the original layout) as the
/// converter understands it.
pub fn load_config(
    model_dir: &Path,
    vision_tower: Option<&Path>,
) -> Result<ModelConfig, ConvertError> {
    config::load(model_dir, vision_tower)
}

/// Opens the weights in `dir` (safetensors, sharded or not, or PyTorch `.bin`) without
/// converting anything: the tensors as the checkpoint names them, for tools and tests.
pub fn load_weights(dir: &Path) -> Result<TensorStore, ConvertError> {
    weights::load_dir(dir)
}

/// Converts a checkpoint; see the module documentation.
pub fn convert(options: &ConvertOptions) -> Result<ConvertOutput, ConvertError> {
    let dir = &options.model_dir;
    let cfg = config::load(dir, options.vision_tower.as_deref())?;
    let name = match &options.name {
        Some(n) => n.clone(),
        None => default_name(dir)?,
    };
    if name.is_empty() || name.contains(['/', '\\']) {
        return Err(ConvertError::Usage(format!(
            "model name {name:?} cannot be used in a file name"
        )));
    }

    let mut store = weights::load_dir(dir)?;
    if cfg.layout == Layout::Original {
        let has_vision = store
            .names()
            .any(|n| matches!(names::classify(n), names::Role::Vision(_)));
        // LLaVA-1.6 checkpoints carry the (fine-tuned) tower; 1.5 ones only the projector.
        if !has_vision && let Some(tower) = &cfg.vision_tower_dir {
            let clip = weights::load_dir(tower)?;
            store.absorb(clip, |n| Some(n.to_owned()))?;
        }
    }
    let mut index = SourceIndex::new(&store)?;
    let llm_plan = llm::plan(&cfg, &mut index, options.outtype)?;
    let mm_plan = mmproj::plan(&cfg, &mut index, options.outtype)?;
    index.check_all_used()?;
    plan::check_sources(&store, &llm_plan)?;
    plan::check_sources(&store, &mm_plan)?;

    let config_json = json::JsonObject::read(&dir.join("config.json"))?;
    let text_json = config_json.object("text_config")?;
    let mut id_sources = vec![&config_json];
    if let Some(t) = &text_json {
        id_sources.push(t);
    }
    let vocab = tokenizer::load(dir, cfg.text.vocab_size, &id_sources)?;

    std::fs::create_dir_all(&options.outdir).map_err(|e| ConvertError::io(&options.outdir, e))?;
    let llm_path = options
        .outdir
        .join(format!("{name}-{}.gguf", options.outtype.name()));
    let mmproj_path = options
        .outdir
        .join(format!("mmproj-{name}-{}.gguf", options.outtype.name()));

    let mut llm_writer = GgufWriter::new(&llm_path);
    llm::metadata(&mut llm_writer, &cfg, &vocab, &name, options.outtype)?;
    declare(&mut llm_writer, &llm_plan)?;
    let mut mm_writer = GgufWriter::new(&mmproj_path);
    mmproj::metadata(&mut mm_writer, &cfg, &name, options.outtype)?;
    declare(&mut mm_writer, &mm_plan)?;

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| {
            ConvertError::Usage(format!("cannot start {} threads: {e}", options.threads))
        })?;
    let total: u64 = llm_plan
        .iter()
        .chain(&mm_plan)
        .filter_map(|p| store.get(&p.source))
        .map(|s| s.len as u64)
        .sum();
    let progress = progress_bar(options.progress, total);
    store.advise_sequential();

    let mut llm_data = llm_writer.write_header()?;
    let mut mm_data = mm_writer.write_header()?;
    pool.install(|| -> Result<(), ConvertError> {
        for (plan, out) in [(&llm_plan, &mut llm_data), (&mm_plan, &mut mm_data)] {
            for p in plan.iter() {
                progress.set_message(p.name.clone());
                write::write_tensor(&store, p, out, &progress)?;
            }
        }
        Ok(())
    })?;
    progress.finish_and_clear();
    // Both files are complete in their temporary files; rename them, and if the second rename
    // fails, take the first away again so that no half pair is left.
    llm_data.finish()?;
    if let Err(e) = mm_data.finish() {
        let _ = std::fs::remove_file(&llm_path);
        return Err(e.into());
    }
    Ok(ConvertOutput {
        llm_path,
        mmproj_path,
        llm_tensors: llm_plan.len(),
        mmproj_tensors: mm_plan.len(),
    })
}

fn declare(w: &mut GgufWriter, plan: &[PlannedTensor]) -> Result<(), ConvertError> {
    for p in plan {
        w.add_tensor(p.name.clone(), &p.ggml_dims(), p.ty)?;
    }
    Ok(())
}

fn default_name(dir: &Path) -> Result<String, ConvertError> {
    let canonical = dir.canonicalize().map_err(|e| ConvertError::io(dir, e))?;
    canonical
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            ConvertError::Usage(format!("{}: give a model name with --name", dir.display()))
        })
}

fn progress_bar(enabled: bool, total: u64) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
