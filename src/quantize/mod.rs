//! The llava-quantize pipeline: a GGUF file (language model or mmproj) in, the same model with
//! each tensor converted to the type its file type's mix gives it ([`mix`]) out.
//!
//! Streaming: tensors are read from the input's memory map one at a time, converted a bounded
//! batch of rows at a time (rows in parallel) and written out, so memory use does not grow with
//! the model. The output appears only once complete (the GGUF writer's temp file + rename).
//! docs/quantize.md describes the rules and how they follow llama.cpp.

mod context;
mod convert;
mod error;
pub mod file_type;
pub mod mix;
mod summary;

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

pub use context::model_context;
pub use error::QuantizeError;
pub use file_type::LlamaFileType;
pub use summary::{QuantizeSummary, TensorSummary};

use convert::{Conversion, convert_tensor, copy_tensor};
use mix::{MixPlan, TensorDesc, plan_types};

use crate::gguf::{GgufError, GgufFile, GgufValue, GgufWriter};

/// ggml's `GGML_QNT_VERSION`, written to `general.quantization_version`.
pub const QUANTIZATION_VERSION: u32 = 2;

pub const FILE_TYPE_KEY: &str = "general.file_type";
pub const QUANTIZATION_VERSION_KEY: &str = "general.quantization_version";

/// Keys of split files, which a single output file must not carry.
const SPLIT_KEYS: [&str; 3] = ["split.no", "split.count", "split.tensors.count"];

#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub file_type: LlamaFileType,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Convert tensors that are already quantized (dequantizing them first).
    pub allow_requantize: bool,
    /// Show a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

/// Quantizes the GGUF file `input` into `output` (replaced atomically if it exists).
///
/// All metadata is copied, in order, except `general.file_type` and
/// `general.quantization_version`, which are written last with the new values (as llama.cpp
/// does). Tensors are written in llama.cpp's order (see [`MixPlan::order`]).
pub fn quantize_file(
    input: &Path,
    output: &Path,
    options: &QuantizeOptions,
) -> Result<QuantizeSummary, QuantizeError> {
    let started = Instant::now();
    let file = GgufFile::open(input).map_err(|e| match e {
        // I/O errors name the path already.
        e @ GgufError::Io { .. } => QuantizeError::Gguf(e),
        e => QuantizeError::Input {
            path: input.to_owned(),
            source: e,
        },
    })?;
    if let Some(count) = file.get("split.count").and_then(GgufValue::as_u64)
        && count > 1
    {
        return Err(QuantizeError::SplitFile { count });
    }
    let model = model_context(&file)?;
    let infos = file.tensors();
    let descs: Vec<TensorDesc> = infos
        .iter()
        .map(|t| TensorDesc {
            name: &t.name,
            dims: &t.dims,
            ty: t.ggml_type,
        })
        .collect();
    let plan = plan_types(options.file_type, &model, &descs)?;
    check_conversions(&file, &plan, options.allow_requantize)?;

    let mut writer = GgufWriter::new(output);
    for entry in file.metadata() {
        let replaced = entry.key == FILE_TYPE_KEY || entry.key == QUANTIZATION_VERSION_KEY;
        if !replaced && !SPLIT_KEYS.contains(&entry.key.as_str()) {
            writer.add_metadata(entry.key.clone(), entry.value.clone())?;
        }
    }
    writer.add_metadata(QUANTIZATION_VERSION_KEY, QUANTIZATION_VERSION)?;
    writer.add_metadata(FILE_TYPE_KEY, options.file_type.id())?;
    for &i in &plan.order {
        writer.add_tensor(infos[i].name.clone(), &infos[i].dims, plan.types[i])?;
    }
    let mut data_writer = writer.write_header()?;
    let output_infos = data_writer.tensors().to_vec();

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| QuantizeError::ThreadPool {
            threads: options.threads,
            reason: e.to_string(),
        })?;
    let progress = progress_bar(options.progress, infos.iter().map(|t| t.n_bytes).sum());
    let mut tensors = Vec::with_capacity(infos.len());
    file.advise_sequential();
    for (&i, out_info) in plan.order.iter().zip(&output_infos) {
        let info = &infos[i];
        let (from, to) = (info.ggml_type, plan.types[i]);
        progress.set_message(format!("{} {from} -> {to}", info.name));
        let data = file.tensor_data(info);
        let mut out = data_writer.begin_tensor(&info.name)?;
        if from == to {
            copy_tensor(data, &mut out, &progress)?;
        } else {
            let conversion = Conversion {
                name: &info.name,
                data,
                from,
                to,
                row_length: info.dims.first().copied().unwrap_or(1) as usize,
            };
            pool.install(|| convert_tensor(&conversion, &mut out, &progress))?;
        }
        out.finish()?;
        // Keeps resident memory at about one tensor, whatever the model size.
        file.release_tensor_pages(info);
        tensors.push(TensorSummary {
            name: info.name.clone(),
            dims: info.dims.clone(),
            input_type: from,
            output_type: to,
            input_bytes: info.n_bytes,
            output_bytes: out_info.n_bytes,
            fell_back: plan.fallbacks.contains(&i),
        });
    }
    data_writer.finish()?;
    progress.finish_and_clear();

    let output_file_bytes = std::fs::metadata(output)
        .map_err(|source| QuantizeError::Io {
            path: output.to_owned(),
            source,
        })?
        .len();
    Ok(QuantizeSummary {
        file_type: options.file_type,
        tensors,
        input_file_bytes: file.file_size(),
        output_file_bytes,
        elapsed: started.elapsed(),
    })
}

/// Refuses, before anything is written, conversions that cannot or should not happen.
fn check_conversions(
    file: &GgufFile,
    plan: &MixPlan,
    allow_requantize: bool,
) -> Result<(), QuantizeError> {
    for (info, &to) in file.tensors().iter().zip(&plan.types) {
        let from = info.ggml_type;
        if from == to {
            continue;
        }
        if from.is_quantized() && !allow_requantize {
            return Err(QuantizeError::RequantizeRefused {
                tensor: info.name.clone(),
                ty: from,
            });
        }
        for ty in [from, to] {
            if !ty.has_block_format() {
                return Err(QuantizeError::UnsupportedType {
                    tensor: info.name.clone(),
                    ty,
                });
            }
        }
    }
    Ok(())
}

fn progress_bar(wanted: bool, total_bytes: u64) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "[{elapsed_precise}] {bar:30} {binary_bytes}/{binary_total_bytes} {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(total_bytes).with_style(style)
}
