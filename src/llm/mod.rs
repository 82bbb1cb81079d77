//! The LLaMA-family decoder (LLaMA, Vicuna, Mistral with grouped-query attention, Yi) from a
//! GGUF file: RMSNorm, rope, causal grouped-query attention over a KV cache, SwiGLU FFN.
//!
//! - [`config`]: hyper-parameters from metadata;
//! - [`weights`]: tensors located in the file (never copied);
//! - [`kv_cache`]: f16 or f32 keys/values for `n_ctx` positions;
//! - [`load`]: weights read into memory or mapped ([`LoadMode`]), and why;
//! - [`repack`]: weights read into memory rearranged for the tier's decode dots ([`Repack`]);
//! - [`forward`]: one batch of positions through every layer;
//! - [`session`]: a model plus a cache: evaluate tokens or embeddings at the current position;
//! - [`trace`]: named intermediates (llama.cpp's names) for dumps.

pub mod config;
pub mod forward;
pub mod kv_cache;
pub mod load;
pub mod repack;
pub mod session;
pub mod trace;
pub mod weights;

use std::path::Path;

pub use config::LlmConfig;
pub use kv_cache::{CacheType, KvCache};
pub use load::{LoadChoice, LoadMode, LoadOptions, WeightStorage};
pub use repack::{Repack, RepackSummary};
pub use session::{Evaluated, Output, Session};
pub use trace::{Trace, TracedTensor};
pub use weights::{LayerWeights, LlmWeights};

use crate::gguf::{GgufError, GgufFile};
use crate::kernels::{KernelError, kernels};
use crate::model_file::ModelFileError;
use crate::ops::OpError;

/// Why a model could not be loaded or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(transparent)]
    File(#[from] ModelFileError),
    #[error(transparent)]
    Op(#[from] OpError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(
        "context full: {n_new} more position(s) after the {n_past} used need {needed}, but the \
         context holds {n_ctx} (raise -c or shorten the prompt)"
    )]
    ContextFull {
        n_past: usize,
        n_new: usize,
        needed: usize,
        n_ctx: usize,
    },
    #[error(
        "the prompt is {n_prompt} positions long but the context holds {n_ctx} ({n_past} already \
         used): raise -c (--ctx-size) or shorten the prompt"
    )]
    PromptTooLong {
        n_past: usize,
        n_prompt: usize,
        n_ctx: usize,
    },
    #[error("token id {id} is outside the vocabulary of {n_vocab} tokens")]
    BadToken { id: u32, n_vocab: usize },
    #[error("a KV cache for a context of {n_ctx} positions {detail}: lower -c")]
    CacheTooLarge { n_ctx: usize, detail: String },
    #[error("{0}")]
    Invalid(String),
}

/// A loaded decoder: the file (in memory or mapped), its configuration and where its weights are.
pub struct LlamaModel {
    file: GgufFile,
    config: LlmConfig,
    weights: LlmWeights,
    load_choice: Option<LoadChoice>,
    repack: Option<RepackSummary>,
}

impl LlamaModel {
    /// Loads and checks the model at `path` with [`LoadMode::Auto`]: read into memory when it
    /// fits in the available memory with a margin (decoding streams every weight once per
    /// token, faster from anonymous memory than from the page cache), mapped otherwise.
    pub fn load(path: impl AsRef<Path>) -> Result<LlamaModel, LlmError> {
        LlamaModel::load_with(path, LoadMode::Auto)
    }

    /// Opens and checks the model at `path`, its weights left in the file's mapping (nothing
    /// copied: pages the OS can drop and read again, for a model larger than free memory).
    pub fn load_mapped(path: impl AsRef<Path>) -> Result<LlamaModel, LlmError> {
        LlamaModel::load_with(path, LoadMode::Mmap)
    }

    /// Loads and checks the model at `path`, its weights where `mode` says
    /// ([`load::choose_storage`]) and, read into memory, repacked where the tier prefers
    /// ([`Repack::Auto`]); [`LlamaModel::load_choice`] tells where they went and why.
    pub fn load_with(path: impl AsRef<Path>, mode: LoadMode) -> Result<LlamaModel, LlmError> {
        LlamaModel::load_with_options(
            path,
            LoadOptions {
                mode,
                ..LoadOptions::default()
            },
        )
    }

    /// Loads and checks the model at `path` as `options` say: its weights where
    /// `options.mode` says ([`load::choose_storage`]; [`LlamaModel::load_choice`] tells where
    /// they went and why) and, when read into memory, the matmul weights repacked as
    /// `options.repack` says ([`repack`]; [`LlamaModel::repack_summary`] tells what was). A
    /// failed load (missing, unreadable, truncated or invalid file, a tensor that cannot be
    /// repacked) is an error naming the file, and leaves nothing behind: the memory read into
    /// is freed.
    pub fn load_with_options(
        path: impl AsRef<Path>,
        options: LoadOptions,
    ) -> Result<LlamaModel, LlmError> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let io_error = |e| ModelFileError::from(GgufError::io(path, e));
        let file_bytes = std::fs::metadata(path).map_err(io_error)?.len();
        let available = match options.mode {
            LoadMode::Auto => load::available_memory(),
            LoadMode::Memory | LoadMode::Mmap => None,
        };
        let choice = load::choose_storage(options.mode, file_bytes, available);
        let kernels = kernels();
        let mut repacked = None;
        let file = match choice.storage {
            WeightStorage::Memory => GgufFile::read_into_memory_with(path, |header, bytes| {
                let done = repack::repack_tensors(header, bytes, options.repack, kernels, &label)?;
                repacked = Some(done);
                Ok::<(), ModelFileError>(())
            }),
            WeightStorage::Mapped => GgufFile::open(path).map_err(ModelFileError::from),
        };
        let file = file.map_err(|e| match e {
            // I/O errors name the path already; parse errors do not.
            ModelFileError::Gguf(e @ GgufError::Io { .. }) => ModelFileError::from(e),
            ModelFileError::Gguf(e) => ModelFileError::Invalid {
                file: label.clone(),
                what: e.to_string(),
            },
            e => e,
        })?;
        let (layouts, summary) = repacked.unwrap_or_else(|| {
            let summary = RepackSummary::none(options.repack, choice.storage, kernels);
            (repack::TensorLayouts::default(), summary)
        });
        let config = LlmConfig::from_gguf(&file)?;
        let weights = LlmWeights::from_gguf_in_layouts(&file, &config, &layouts)?;
        Ok(LlamaModel {
            file,
            config,
            weights,
            load_choice: Some(choice),
            repack: Some(summary),
        })
    }

    /// A model of `file` as it is (nothing repacked).
    pub fn from_file(file: GgufFile) -> Result<LlamaModel, LlmError> {
        let config = LlmConfig::from_gguf(&file)?;
        let weights = LlmWeights::from_gguf(&file, &config)?;
        Ok(LlamaModel {
            file,
            config,
            weights,
            load_choice: None,
            repack: None,
        })
    }

    /// Where [`LlamaModel::load_with`] put the weights and why (`None` for
    /// [`LlamaModel::from_file`]); its `Display` is the start-up log line.
    pub fn load_choice(&self) -> Option<&LoadChoice> {
        self.load_choice.as_ref()
    }

    /// What [`LlamaModel::load_with_options`] repacked, or why nothing (`None` for
    /// [`LlamaModel::from_file`]); its `Display` ends the start-up log line.
    pub fn repack_summary(&self) -> Option<&RepackSummary> {
        self.repack.as_ref()
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    pub fn weights(&self) -> &LlmWeights {
        &self.weights
    }

    /// The input embedding of token `id` (a row of `token_embd`, dequantized).
    pub fn embed_token(&self, id: u32, out: &mut [f32]) -> Result<(), LlmError> {
        let n_vocab = self.config.n_vocab;
        if id as usize >= n_vocab {
            return Err(LlmError::BadToken { id, n_vocab });
        }
        let m = self.weights.token_embd.view(&self.file)?;
        crate::model_file::dequantize_matrix_row(&m, id as usize, out)
            .map_err(|e| LlmError::Invalid(format!("token_embd.weight row {id}: {e}")))
    }

    /// A new session with a KV cache of `n_ctx` positions.
    pub fn session(&self, n_ctx: usize, cache_type: CacheType) -> Result<Session<'_>, LlmError> {
        Session::new(self, n_ctx, cache_type)
    }
}
