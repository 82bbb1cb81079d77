//! Streaming detokenization: tokens in, complete UTF-8 text out.

use super::Tokenizer;

/// Turns generated tokens into text as they come. A character split over several byte
/// tokens (`<0xF0><0x9F><0xA6><0x99>`) is held back until complete, so every string returned
/// is valid UTF-8 and concatenating them gives the decoded text.
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    pending: Vec<u8>,
    render_special: bool,
    /// Drop the dummy-prefix space before the first word (a reply decoded on its own).
    strip_leading_space: bool,
}

impl<'a> StreamDecoder<'a> {
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        StreamDecoder {
            tokenizer,
            pending: Vec::new(),
            render_special: false,
            strip_leading_space: false,
        }
    }

    /// The tokenizer the text comes from.
    pub fn tokenizer(&self) -> &'a Tokenizer {
        self.tokenizer
    }

    /// When `on` (and the vocabulary adds a dummy prefix), the space before the first word is
    /// dropped, as Hugging Face's `decode` of a reply does: "A circle." rather than " A circle.".
    /// Leave it off for a continuation of the prompt's text (raw completion).
    pub fn strip_leading_space(mut self, on: bool) -> Self {
        self.strip_leading_space = on && self.tokenizer.adds_space_prefix();
        self
    }

    /// Control tokens (e.g. `</s>`) are printed as their text when `on`.
    pub fn render_special(mut self, on: bool) -> Self {
        self.render_special = on;
        self
    }

    /// The text completed by token `id` (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        self.pending
            .extend(self.tokenizer.token_bytes(id, self.render_special));
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) => match e.error_len() {
                // An incomplete sequence at the end: keep it for the next token.
                None => e.valid_up_to(),
                // Invalid bytes in the middle can never complete: emit everything lossily.
                Some(_) => self.pending.len(),
            },
        };
        let mut out: Vec<u8> = self.pending.drain(..valid).collect();
        if self.strip_leading_space && !out.is_empty() {
            if out[0] == b' ' {
                out.remove(0);
            }
            self.strip_leading_space = false;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Whatever is held back (an incomplete character at the end of the stream), lossily.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}
