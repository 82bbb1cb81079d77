//! Prompts with images: where each image's embeddings go among the prompt's tokens.
//!
//! `<image>` may appear anywhere in the prompt, any number of times; the i-th marker is replaced
//! by the i-th image's embeddings (transformers' processors expand each marker into as many
//! image-token ids as the image has features, and the model scatters the features there). A
//! prompt without a marker gets its images first, right after BOS, as llama.cpp does.
//!
//! Tokenization around a marker follows the tokenizer's style for text after a special token
//! (transformers 5, `legacy = false`: no space prefix; llama.cpp: a space prefix), whether or
//! not the vocabulary has an `<image>` token (llama.cpp's LLaVA-1.5 files do not).

use crate::tokenizer::Tokenizer;

use super::error::VisionError;

/// What users write where an image goes.
pub const IMAGE_MARKER: &str = "<image>";

/// A prompt cut at its images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptPiece {
    Tokens(Vec<u32>),
    /// The embeddings of image `n` (in the order the images were given).
    Image(usize),
}

/// Tokenizes `prompt` (BOS first if the model wants it) and places `n_images` images: at the
/// markers, or all first when there is none. Special tokens written in the prompt are parsed.
pub fn split_prompt(
    tokenizer: &Tokenizer,
    prompt: &str,
    n_images: usize,
) -> Result<Vec<PromptPiece>, VisionError> {
    let n_markers = prompt.matches(IMAGE_MARKER).count();
    let owned;
    let prompt = if n_markers == 0 && n_images > 0 {
        owned = format!("{}{prompt}", IMAGE_MARKER.repeat(n_images));
        owned.as_str()
    } else {
        prompt
    };
    let n_markers = prompt.matches(IMAGE_MARKER).count();
    if n_markers != n_images {
        return Err(VisionError::Config(format!(
            "the prompt has {n_markers} {IMAGE_MARKER} placeholders but {n_images} images were given"
        )));
    }
    let mut pieces = Vec::new();
    let mut bos = Vec::new();
    if tokenizer.add_bos()
        && let Some(b) = tokenizer.bos()
    {
        bos.push(b);
    }
    for (i, text) in prompt.split(IMAGE_MARKER).enumerate() {
        let mut tokens = if i == 0 {
            std::mem::take(&mut bos)
        } else {
            Vec::new()
        };
        // Text after an image continues the prompt: the tokenizer's own rule for text after a
        // special token applies (no dummy prefix in Hugging Face style).
        tokenizer.encode_into(text, true, i == 0, &mut tokens);
        if i > 0 {
            pieces.push(PromptPiece::Image(i - 1));
        }
        if !tokens.is_empty() {
            pieces.push(PromptPiece::Tokens(tokens));
        }
    }
    Ok(pieces)
}

/// The id that stands for an image position in token lists (dumps, `tokens.npy`): the
/// vocabulary's `<image>` token, else the first id past the vocabulary (transformers' llava
/// configs use 32000 for a 32000-token LLaMA vocabulary).
pub fn image_placeholder_id(tokenizer: &Tokenizer) -> u32 {
    tokenizer
        .token_id(IMAGE_MARKER)
        .unwrap_or(tokenizer.n_vocab() as u32)
}

/// The prompt's ids with image `i` expanded to `counts[i]` copies of `placeholder`.
pub fn expand_ids(pieces: &[PromptPiece], counts: &[usize], placeholder: u32) -> Vec<u32> {
    let mut ids = Vec::new();
    for piece in pieces {
        match piece {
            PromptPiece::Tokens(t) => ids.extend_from_slice(t),
            PromptPiece::Image(i) => ids.extend(std::iter::repeat_n(
                placeholder,
                counts.get(*i).copied().unwrap_or(0),
            )),
        }
    }
    ids
}
