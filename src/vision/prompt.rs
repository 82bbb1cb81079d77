//! Prompts with images, on top of [`crate::prompt`]: where each image's embeddings go among the
//! prompt's tokens, and the token ids with each image expanded to placeholder ids (dumps,
//! `tokens.npy`, comparisons with transformers' `input_ids`).
//!
//! `<image>` may appear anywhere in the prompt, any number of times; the i-th marker is replaced
//! by the i-th image's embeddings (transformers' processors expand each marker into as many
//! image-token ids as the image has features, and the model scatters the features there). A
//! prompt without a marker gets its images first, right after BOS, as llama.cpp does. The text
//! after an image is tokenized as continuing the prompt (the tokenizer's `starts_text = false`),
//! whether or not the vocabulary has an `<image>` token (llama.cpp's LLaVA-1.5 files do not).

use crate::prompt::{Prompt, Segment, tokenize_prompt};
use crate::tokenizer::Tokenizer;

use super::error::VisionError;
use super::model::ImageEmbeddings;

pub use crate::prompt::IMAGE_MARKER;

/// `text` with `images` at its `<image>` markers (all first if there is none).
pub fn prompt_with_images(text: &str, images: &[&ImageEmbeddings]) -> Result<Prompt, VisionError> {
    let n_markers = text.matches(IMAGE_MARKER).count();
    let text = if n_markers == 0 && !images.is_empty() {
        format!("{}{text}", IMAGE_MARKER.repeat(images.len()))
    } else {
        text.to_owned()
    };
    let n_markers = text.matches(IMAGE_MARKER).count();
    if n_markers != images.len() {
        return Err(VisionError::Config(format!(
            "the prompt has {n_markers} {IMAGE_MARKER} placeholders but {} images were given",
            images.len()
        )));
    }
    let images = images
        .iter()
        .map(|e| (e.data.clone(), e.n_tokens))
        .collect();
    Prompt::with_images(&text, IMAGE_MARKER, images).map_err(|e| VisionError::Config(e.to_string()))
}

/// The id that stands for an image position in token lists: the vocabulary's `<image>` token,
/// else the first id past the vocabulary (transformers' llava configs use 32000 for a
/// 32000-token LLaMA vocabulary).
pub fn image_placeholder_id(tokenizer: &Tokenizer) -> u32 {
    tokenizer
        .token_id(IMAGE_MARKER)
        .unwrap_or(tokenizer.n_vocab() as u32)
}

/// The prompt's ids as [`crate::prompt::eval_prompt`] evaluates them (BOS first when the file
/// asks for it), each embeddings segment as that many `placeholder` ids.
pub fn prompt_ids(tokenizer: &Tokenizer, prompt: &Prompt, placeholder: u32) -> Vec<u32> {
    let tokenized = tokenize_prompt(tokenizer, prompt, true, false);
    let mut ids = Vec::new();
    for (segment, tokens) in prompt.segments.iter().zip(tokenized) {
        match segment {
            Segment::Text(_) => ids.extend(tokens),
            Segment::Embeddings { n, .. } => ids.extend(std::iter::repeat_n(placeholder, *n)),
        }
    }
    ids
}

/// A user message with its images' markers: unchanged when it has `<image>` markers, else one
/// `<image>\n` per image before the text (the form LLaVA was trained on and the processors'
/// chat templates render; llama.cpp also puts the image first).
pub fn message_with_image_markers(message: &str, n_images: usize) -> String {
    if n_images == 0 || message.contains(IMAGE_MARKER) {
        return message.to_owned();
    }
    format!("{}{message}", format!("{IMAGE_MARKER}\n").repeat(n_images))
}

/// `--dump` for a prompt with images: `image_embeds.npy` (f32 [n_image_tokens, n_embd], all
/// images in prompt order) and `tokens.npy` (int32 prompt ids with each image expanded to its
/// placeholder ids, replacing the text-only list), in `dir`.
pub fn write_image_dump(
    dir: &std::path::Path,
    tokenizer: &Tokenizer,
    prompt_text: &str,
    images: &[&ImageEmbeddings],
) -> Result<(), VisionError> {
    let io = |e: crate::npy::NpyError| VisionError::Config(format!("--dump: {e}"));
    std::fs::create_dir_all(dir).map_err(|source| VisionError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let prompt = prompt_with_images(prompt_text, images)?;
    let ids: Vec<i32> = prompt_ids(tokenizer, &prompt, image_placeholder_id(tokenizer))
        .iter()
        .map(|&t| t as i32)
        .collect();
    crate::npy::write(dir.join("tokens.npy"), &[ids.len()], &ids).map_err(io)?;
    let n_embd = images.first().map_or(0, |e| e.n_embd);
    let mut data = Vec::new();
    for e in images {
        if e.n_embd != n_embd {
            return Err(VisionError::Config(
                "images of different embedding widths".into(),
            ));
        }
        data.extend_from_slice(&e.data);
    }
    crate::npy::write(
        dir.join("image_embeds.npy"),
        &[data.len() / n_embd.max(1), n_embd],
        &data,
    )
    .map_err(io)?;
    Ok(())
}
