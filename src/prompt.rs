//! A prompt as segments of text and of input embeddings (images), and its evaluation: each
//! text segment tokenized (BOS first if the file asks for it), each embedding segment fed to
//! the decoder as is. This is the hook the vision side uses: render the chat text with
//! `<image>` markers, then [`Prompt::with_images`] puts each image's projected embeddings at
//! its marker.

use crate::llm::{LlmError, Output, Session};
use crate::tokenizer::Tokenizer;

/// Where images go in the prompt text.
pub const IMAGE_MARKER: &str = "<image>";

/// One part of a prompt.
#[derive(Clone, Debug, PartialEq)]
pub enum Segment {
    Text(String),
    /// `n` rows of `n_embd` values, e.g. an image's projected features.
    Embeddings {
        data: Vec<f32>,
        n: usize,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prompt {
    pub segments: Vec<Segment>,
}

impl Prompt {
    /// A text-only prompt.
    pub fn text(text: impl Into<String>) -> Prompt {
        Prompt {
            segments: vec![Segment::Text(text.into())],
        }
    }

    pub fn push_text(&mut self, text: impl Into<String>) {
        self.segments.push(Segment::Text(text.into()));
    }

    pub fn push_embeddings(&mut self, data: Vec<f32>, n: usize) {
        self.segments.push(Segment::Embeddings { data, n });
    }

    /// `text` cut at each `marker`, with the images' embeddings (each `(data, n_rows)`) placed
    /// at the markers in order. The numbers of markers and images must match.
    pub fn with_images(
        text: &str,
        marker: &str,
        images: Vec<(Vec<f32>, usize)>,
    ) -> Result<Prompt, LlmError> {
        let parts: Vec<&str> = text.split(marker).collect();
        if parts.len() - 1 != images.len() {
            return Err(LlmError::Invalid(format!(
                "the prompt has {} {marker} marker(s) but {} image(s) were given",
                parts.len() - 1,
                images.len()
            )));
        }
        let mut p = Prompt::default();
        let mut images = images.into_iter();
        for (i, part) in parts.iter().enumerate() {
            if i > 0
                && let Some((data, n)) = images.next()
            {
                p.push_embeddings(data, n);
            }
            if !part.is_empty() {
                p.push_text(*part);
            }
        }
        Ok(p)
    }
}

/// What evaluating a prompt gave.
#[derive(Clone, Debug, Default)]
pub struct PromptEval {
    /// The token ids of the text segments, in order (positions of embeddings are not tokens).
    pub tokens: Vec<u32>,
    /// Positions evaluated (tokens + embedding rows).
    pub n_positions: usize,
    /// Logits of every position [n_positions × n_vocab] if asked for, else of the last one.
    pub logits: Vec<f32>,
}

impl PromptEval {
    pub fn last_logits(&self, n_vocab: usize) -> &[f32] {
        &self.logits[self.logits.len().saturating_sub(n_vocab)..]
    }
}

/// Tokenizes the text segments of `prompt` (BOS first when `add_bos` and the file asks for it;
/// special tokens in the text are recognised), checking up front that everything fits the
/// context. `continues` means the session already holds earlier turns.
pub fn tokenize_prompt(
    tokenizer: &Tokenizer,
    prompt: &Prompt,
    add_bos: bool,
    continues: bool,
) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    let mut first = !continues;
    for seg in &prompt.segments {
        match seg {
            Segment::Text(t) => {
                let mut ids = Vec::new();
                if first && add_bos && tokenizer.add_bos() {
                    ids.extend(tokenizer.bos());
                }
                tokenizer.encode_into(t, true, first, &mut ids);
                out.push(ids);
            }
            Segment::Embeddings { .. } => out.push(Vec::new()),
        }
        first = false;
    }
    out
}

/// Evaluates `prompt` at the session's position. With `all_logits`, returns the logits of
/// every position (for `--dump`), else of the last.
pub fn eval_prompt(
    session: &mut Session<'_>,
    tokenizer: &Tokenizer,
    prompt: &Prompt,
    add_bos: bool,
    all_logits: bool,
) -> Result<PromptEval, LlmError> {
    let tokenized = tokenize_prompt(tokenizer, prompt, add_bos, session.n_past() > 0);
    let n_positions: usize = prompt
        .segments
        .iter()
        .zip(&tokenized)
        .map(|(s, t)| match s {
            Segment::Text(_) => t.len(),
            Segment::Embeddings { n, .. } => *n,
        })
        .sum();
    if n_positions == 0 {
        return Err(LlmError::Invalid("the prompt is empty (no tokens)".into()));
    }
    session.check_room(n_positions)?;
    let output = if all_logits {
        Output::All
    } else {
        Output::Last
    };
    let mut result = PromptEval {
        n_positions,
        ..PromptEval::default()
    };
    let last_nonempty = prompt
        .segments
        .iter()
        .zip(&tokenized)
        .rposition(|(s, t)| !matches!(s, Segment::Text(_)) || !t.is_empty());
    for (i, (seg, ids)) in prompt.segments.iter().zip(&tokenized).enumerate() {
        let out = if all_logits || Some(i) == last_nonempty {
            output
        } else {
            Output::None
        };
        let evaluated = match seg {
            Segment::Text(_) if ids.is_empty() => continue,
            Segment::Text(_) => session.eval_tokens(ids, out)?,
            Segment::Embeddings { data, n } => session.eval_embeddings(data, *n, out)?,
        };
        result.tokens.extend_from_slice(ids);
        result.logits.extend(evaluated.logits);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_go_at_their_markers() {
        let p = Prompt::with_images(
            "A <image>\nB<image>",
            IMAGE_MARKER,
            vec![(vec![1.0; 4], 2), (vec![2.0; 2], 1)],
        )
        .unwrap();
        assert_eq!(
            p.segments,
            [
                Segment::Text("A ".into()),
                Segment::Embeddings {
                    data: vec![1.0; 4],
                    n: 2
                },
                Segment::Text("\nB".into()),
                Segment::Embeddings {
                    data: vec![2.0; 2],
                    n: 1
                },
            ]
        );
        assert!(Prompt::with_images("no marker", IMAGE_MARKER, vec![(vec![], 0)]).is_err());
    }
}
