//! Generation: sample, stream the text, evaluate, until EOS, a stop string, the token limit
//! or the end of the context.

use crate::llm::{LlmError, Output, Session};
use crate::sampler::Sampler;
use crate::tokenizer::{StreamDecoder, TokenType};

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced EOS (or an end-of-turn token).
    EndOfGeneration,
    /// The text reached one of the stop strings (not printed).
    StopString,
    /// `n_predict` tokens were generated.
    Length,
    /// The context is full: no position is left for the next token.
    ContextFull,
}

/// The tokens generated (including a final EOS) and the text printed.
#[derive(Clone, Debug)]
pub struct Generated {
    pub tokens: Vec<u32>,
    pub text: String,
    pub reason: StopReason,
}

/// Holds back text that might be the start of a stop string.
#[derive(Clone, Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
        }
    }

    /// Adds `text`; returns the text now safe to print and whether a stop string was reached
    /// (the text before it is returned, the stop string and anything after are dropped).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            let out = self.pending[..at].to_owned();
            self.pending.clear();
            return (out, true);
        }
        // Keep the longest suffix that is a proper prefix of a stop string.
        let mut keep = 0;
        for s in &self.stops {
            for (i, _) in s.char_indices().skip(1) {
                if i > keep && self.pending.ends_with(&s[..i]) {
                    keep = i;
                }
            }
        }
        let cut = self.pending.len() - keep;
        let out = self.pending[..cut].to_owned();
        self.pending.drain(..cut);
        (out, false)
    }

    /// Whatever is held back, at the end of generation.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// Generates from `logits` (the last prompt position's), at most `n_predict` tokens (0: no
/// limit but the context), calling `on_text` with each piece of text as `decoder` completes it.
pub fn generate(
    session: &mut Session<'_>,
    mut decoder: StreamDecoder<'_>,
    sampler: &mut Sampler,
    logits: &[f32],
    n_predict: usize,
    stop: &[String],
    on_text: &mut dyn FnMut(&str),
) -> Result<Generated, LlmError> {
    let mut logits = logits.to_vec();
    let tokenizer = decoder.tokenizer();
    let mut stops = StopMatcher::new(stop.to_vec());
    let mut out = Generated {
        tokens: Vec::new(),
        text: String::new(),
        reason: StopReason::Length,
    };
    let mut emit = |s: &str, text: &mut String| {
        if !s.is_empty() {
            on_text(s);
            text.push_str(s);
        }
    };
    loop {
        if n_predict > 0 && out.tokens.len() >= n_predict {
            out.reason = StopReason::Length;
            break;
        }
        let t = sampler.sample(&logits);
        out.tokens.push(t);
        if tokenizer.is_end_of_generation(t) {
            out.reason = StopReason::EndOfGeneration;
            break;
        }
        sampler.accept(t);
        // A control token (e.g. ChatML's `<|im_end|>`) prints nothing, so it can only match a
        // stop string whole.
        if tokenizer.token_type(t) == Some(TokenType::Control)
            && tokenizer
                .piece(t)
                .is_some_and(|p| stop.iter().any(|s| s == p))
        {
            out.reason = StopReason::StopString;
            break;
        }
        let (text, stopped) = stops.push(&decoder.push(t));
        emit(&text, &mut out.text);
        if stopped {
            out.reason = StopReason::StopString;
            return Ok(out);
        }
        if session.n_past() >= session.n_ctx() {
            out.reason = StopReason::ContextFull;
            break;
        }
        logits = session.eval_tokens(&[t], Output::Last)?.logits;
    }
    let (text, _) = stops.push(&decoder.finish());
    emit(&text, &mut out.text);
    let rest = stops.finish();
    emit(&rest, &mut out.text);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_are_held_back_and_cut() {
        let mut m = StopMatcher::new(vec!["<|im_end|>".into(), "\n\n".into()]);
        assert_eq!(m.push("Hello <|im"), ("Hello ".into(), false));
        assert_eq!(m.push("_e"), (String::new(), false));
        assert_eq!(m.push("nd|> more"), (String::new(), true));
        let mut m = StopMatcher::new(vec!["STOP".into()]);
        assert_eq!(m.push("a ST"), ("a ".into(), false));
        assert_eq!(m.push("ay"), ("STay".into(), false));
        assert_eq!(m.push("S"), (String::new(), false));
        assert_eq!(m.finish(), "S");
        let mut none = StopMatcher::new(vec![]);
        assert_eq!(none.push("x"), ("x".into(), false));
    }
}
