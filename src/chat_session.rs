//! A conversation with a model: the chat template renders each user message (with `<image>`
//! markers where images go), the prompt is evaluated into the session's KV cache, and a reply
//! is generated and streamed. Turns accumulate in the cache (`llava -i`). This is the logic
//! behind the `llava` command; images come in as projected embeddings (see [`crate::prompt`]).

use std::path::Path;
use std::time::Instant;

use crate::chat::ChatTemplate;
use crate::generate::{Generated, StopReason, generate};
use crate::llm::{LlmError, Session, Trace};
use crate::npy;
use crate::prompt::{IMAGE_MARKER, Prompt, PromptEval, eval_prompt};
use crate::sampler::Sampler;
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// How turns are rendered and generated.
#[derive(Clone, Debug)]
pub struct ChatOptions {
    pub template: ChatTemplate,
    /// The system prompt (`None`: the template's default).
    pub system: Option<String>,
    /// Tokens per reply at most (0: until EOS or the context end).
    pub n_predict: usize,
    /// Extra stop strings (the template's own are added).
    pub stop: Vec<String>,
    /// Keep the logits of every prompt position (for [`Turn::write_dump`]).
    pub all_logits: bool,
    /// Intermediate tensors to capture during the prompt (llama.cpp's names, e.g. `l_out-1`;
    /// see [`crate::llm::trace`]); written by [`Turn::write_dump`] as `<name>.npy`.
    pub trace: Vec<String>,
}

/// Durations of a turn.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub n_prompt: usize,
    pub prompt_ms: f64,
    pub n_generated: usize,
    pub generation_ms: f64,
}

impl Timings {
    pub fn prompt_tokens_per_s(&self) -> f64 {
        self.n_prompt as f64 / (self.prompt_ms / 1000.0).max(1e-9)
    }

    pub fn generation_tokens_per_s(&self) -> f64 {
        self.n_generated as f64 / (self.generation_ms / 1000.0).max(1e-9)
    }
}

/// One exchange: the prompt as evaluated, the reply, timings.
#[derive(Clone, Debug)]
pub struct Turn {
    pub prompt_text: String,
    pub prompt: PromptEval,
    pub generated: Generated,
    pub timings: Timings,
    /// The intermediates captured during the prompt, if any were asked for.
    pub trace: Option<Trace>,
}

impl Turn {
    /// Writes `tokens.npy` (int32 prompt ids), `logits.npy` (f32 [positions × n_vocab], every
    /// prompt position when the options asked for all logits, else the last) and
    /// `generated.npy` (int32) into `dir` (created if missing).
    pub fn write_dump(&self, dir: &Path, n_vocab: usize) -> Result<(), LlmError> {
        let io = |e: npy::NpyError| LlmError::Invalid(format!("--dump: {e}"));
        std::fs::create_dir_all(dir)
            .map_err(|e| LlmError::Invalid(format!("--dump: creating {}: {e}", dir.display())))?;
        let tokens: Vec<i32> = self.prompt.tokens.iter().map(|&t| t as i32).collect();
        npy::write(dir.join("tokens.npy"), &[tokens.len()], &tokens).map_err(io)?;
        let rows = self.prompt.logits.len() / n_vocab.max(1);
        npy::write(
            dir.join("logits.npy"),
            &[rows, n_vocab],
            &self.prompt.logits,
        )
        .map_err(io)?;
        let generated: Vec<i32> = self.generated.tokens.iter().map(|&t| t as i32).collect();
        npy::write(dir.join("generated.npy"), &[generated.len()], &generated).map_err(io)?;
        if let Some(trace) = &self.trace {
            let mut names: Vec<&str> = trace.tensors.iter().map(|t| t.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            for name in names {
                if let Some((data, cols)) = trace.get(name) {
                    let path = dir.join(format!("{name}.npy"));
                    npy::write(path, &[data.len() / cols.max(1), cols], &data).map_err(io)?;
                }
            }
        }
        Ok(())
    }
}

/// A conversation over one session.
pub struct Chat<'m> {
    session: Session<'m>,
    tokenizer: &'m Tokenizer,
    sampler: Sampler,
    options: ChatOptions,
    n_turns: usize,
}

impl<'m> Chat<'m> {
    pub fn new(
        session: Session<'m>,
        tokenizer: &'m Tokenizer,
        sampler: Sampler,
        options: ChatOptions,
    ) -> Self {
        Chat {
            session,
            tokenizer,
            sampler,
            options,
            n_turns: 0,
        }
    }

    pub fn session(&self) -> &Session<'m> {
        &self.session
    }

    pub fn options(&self) -> &ChatOptions {
        &self.options
    }

    /// The text of the next turn for `message` (the template applied).
    pub fn render(&self, message: &str) -> String {
        let system = match &self.options.system {
            Some(s) => Some(s.as_str()),
            None => self.options.template.default_system(),
        };
        self.options
            .template
            .user_turn(system, message, self.n_turns == 0)
    }

    /// One exchange: `message` rendered, its `<image>` markers replaced by `images` (projected
    /// embeddings, `(data, n_rows)` each, in order), evaluated, and a reply generated with each
    /// piece of text passed to `on_text`.
    pub fn turn(
        &mut self,
        message: &str,
        images: Vec<(Vec<f32>, usize)>,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Turn, LlmError> {
        let text = self.render(message);
        let prompt = if images.is_empty() {
            Prompt::text(text.clone())
        } else {
            Prompt::with_images(&text, IMAGE_MARKER, images)?
        };
        if !self.options.trace.is_empty() {
            self.session
                .set_trace(Some(Trace::new(self.options.trace.clone())));
        }
        let started = Instant::now();
        let evaluated = eval_prompt(
            &mut self.session,
            self.tokenizer,
            &prompt,
            true,
            self.options.all_logits,
        )
        .map_err(|e| match e {
            LlmError::ContextFull {
                n_past,
                n_new,
                n_ctx,
                ..
            } => LlmError::PromptTooLong {
                n_past,
                n_prompt: n_new,
                n_ctx,
            },
            e => e,
        })?;
        let prompt_ms = started.elapsed().as_secs_f64() * 1000.0;
        // Its image embeddings are in the cache now: free them before generating.
        drop(prompt);
        let trace = self.session.take_trace();
        for &t in &evaluated.tokens {
            self.sampler.accept(t);
        }
        let mut stop = self.options.stop.clone();
        stop.extend(
            self.options
                .template
                .stop_strings()
                .iter()
                .map(|s| s.to_string()),
        );
        let n_vocab = self.session.model().config().n_vocab;
        let started = Instant::now();
        // A reply is decoded on its own (no dummy-prefix space before its first word); a raw
        // completion continues the prompt's text, so it keeps that space.
        let decoder = StreamDecoder::new(self.tokenizer)
            .strip_leading_space(self.options.template != ChatTemplate::Raw);
        let generated = generate(
            &mut self.session,
            decoder,
            &mut self.sampler,
            evaluated.last_logits(n_vocab),
            self.options.n_predict,
            &stop,
            on_text,
        )?;
        let generation_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.n_turns += 1;
        let n_generated = generated.tokens.len();
        Ok(Turn {
            prompt_text: text,
            timings: Timings {
                n_prompt: evaluated.n_positions,
                prompt_ms,
                n_generated,
                generation_ms,
            },
            prompt: evaluated,
            generated,
            trace,
        })
    }

    /// Whether another turn can start (the last reply did not fill the context).
    pub fn has_room(&self) -> bool {
        self.session.n_past() < self.session.n_ctx()
    }
}

/// A one-line description of why a reply ended, for the CLI.
pub fn stop_message(reason: StopReason, n_ctx: usize) -> Option<String> {
    match reason {
        StopReason::ContextFull => Some(format!(
            "generation stopped: the context of {n_ctx} positions is full (raise -c)"
        )),
        _ => None,
    }
}
