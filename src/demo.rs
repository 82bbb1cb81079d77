//! The demo model compiled into the library (cargo feature `demo-model`, on by default): the
//! Q4_K_M language model and mmproj of `models/demo/` (see the README there), a tiny LLaVA that
//! answers questions about pictures of simple shapes, so that `llava` runs with no model file at
//! hand. 4.9 MB of the binary.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let llm = llava::demo::load_llm()?;
//! let clip = llava::demo::load_mmproj()?;
//! # let _ = (llm, clip);
//! # Ok(())
//! # }
//! ```

use crate::gguf::{GgufError, GgufFile};
use crate::llm::{LlamaModel, LlmError};
use crate::model_file::ModelFileError;
use crate::vision::{ClipModel, VisionError};

/// Bytes placed at a multiple of 64 (a cache line, and more than the 32 our GGUF files align
/// their tensors to). `include_bytes!` gives a `&[u8; N]` of alignment 1; the same array as the
/// field of this struct is placed 64-aligned by the compiler, in the program image, with no copy
/// at run time and no `unsafe`. The tensors then sit in memory at the same alignment as in a
/// mapped file, which [`GgufFile::from_static`] checks.
#[repr(C, align(64))]
struct Aligned<Bytes: ?Sized>(Bytes);

static LLM: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/models/demo/demo-q4_k_m.gguf"
)));

static MMPROJ: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/models/demo/mmproj-demo-q4_k_m.gguf"
)));

/// How the embedded language model is named in messages.
pub const LLM_NAME: &str = "<embedded demo-q4_k_m.gguf>";
/// How the embedded mmproj is named in messages.
pub const MMPROJ_NAME: &str = "<embedded mmproj-demo-q4_k_m.gguf>";

/// The embedded language model's file (tokenizer and chat template included).
pub fn llm_file() -> Result<GgufFile, GgufError> {
    GgufFile::from_static(&LLM.0, LLM_NAME)
}

/// The embedded mmproj file.
pub fn mmproj_file() -> Result<GgufFile, GgufError> {
    GgufFile::from_static(&MMPROJ.0, MMPROJ_NAME)
}

/// The embedded language model, loaded.
pub fn load_llm() -> Result<LlamaModel, LlmError> {
    LlamaModel::from_file(llm_file().map_err(ModelFileError::from)?)
}

/// The embedded vision encoder and projector, loaded.
pub fn load_mmproj() -> Result<ClipModel, VisionError> {
    ClipModel::load(mmproj_file().map_err(ModelFileError::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_files_are_the_committed_ones_and_their_tensors_are_aligned() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/demo");
        for (file, name) in [
            (llm_file().unwrap(), "demo-q4_k_m.gguf"),
            (mmproj_file().unwrap(), "mmproj-demo-q4_k_m.gguf"),
        ] {
            assert_eq!(
                file.bytes(),
                std::fs::read(dir.join(name)).unwrap(),
                "{name}"
            );
            assert_eq!(file.bytes().as_ptr() as usize % 64, 0, "{name}");
            assert!(file.label().contains(name));
            assert!(file.path().is_none());
            for info in file.tensors() {
                let at = file.tensor_data(info).as_ptr() as usize;
                assert_eq!(at as u64 % file.alignment(), 0, "{name}: {}", info.name);
            }
        }
    }

    #[test]
    fn embedded_models_load() {
        let llm = load_llm().unwrap();
        let clip = load_mmproj().unwrap();
        assert_eq!(clip.n_embd(), llm.config().n_embd);
    }
}
