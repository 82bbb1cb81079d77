//! The tokenizer of a GGUF file, from its `tokenizer.ggml.*` metadata alone (no
//! tokenizer.json): the `llama` model, SentencePiece BPE with byte fallback.
//!
//! Encoding: the text is cut around special tokens written in it (control, user-defined and
//! unknown tokens such as `<s>`, `</s>`, `<image>`; longest first), each remaining fragment gets
//! its spaces replaced by `▁` and, where the style says so, a leading `▁` (the "dummy
//! prefix"), and is then merged by [`bpe`]. The two [`SpaceStyle`]s reproduce Hugging Face
//! (transformers 5, `legacy = false`) and llama.cpp exactly; docs/tokenizer.md lists where and
//! why they differ.
//!
//! Decoding: [`Tokenizer::token_bytes`] gives a token's bytes (`▁` → space, `<0xXX>` → the
//! byte, control tokens → nothing); [`StreamDecoder`] turns a stream of tokens into text,
//! holding back an incomplete UTF-8 sequence until its last byte arrives.

mod bpe;
mod decode;
mod special;

use std::collections::HashMap;

pub use bpe::MergeRank;
pub use decode::StreamDecoder;

use crate::gguf::GgufFile;
use crate::model_file::{self, ModelFileError};

/// ggml's token types (SentencePiece's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_id(id: i32) -> Option<TokenType> {
        Some(match id {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => return None,
        })
    }
}

/// How the text around special tokens gets its dummy-prefix space and how merges are ranked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaceStyle {
    /// Hugging Face `tokenizers` as transformers 5 builds a LLaMA tokenizer with
    /// `legacy = false`: `▁` prepended only to a fragment that starts the text and does not
    /// already start with a space; merges ranked by token id ([`MergeRank::TokenId`]).
    HuggingFace,
    /// llama.cpp (and SentencePiece for text without special tokens): a space prepended to
    /// every fragment that starts the text or follows a special token; merges ranked by score.
    LlamaCpp,
}

impl SpaceStyle {
    pub fn parse(name: &str) -> Option<SpaceStyle> {
        match name {
            "hf" | "huggingface" | "transformers" => Some(SpaceStyle::HuggingFace),
            "llama.cpp" | "llamacpp" | "spm" | "sentencepiece" => Some(SpaceStyle::LlamaCpp),
            _ => None,
        }
    }
}

/// A GGUF `llama` tokenizer.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    tokens: Vec<String>,
    scores: Vec<f32>,
    types: Vec<TokenType>,
    token_to_id: HashMap<String, u32>,
    byte_tokens: [Option<u32>; 256],
    /// Tokens matched whole in the text, longest first.
    specials: Vec<(String, u32)>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    eot: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    style: SpaceStyle,
}

/// Metadata keys read.
pub mod keys {
    pub const MODEL: &str = "tokenizer.ggml.model";
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    pub const SCORES: &str = "tokenizer.ggml.scores";
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    pub const BOS: &str = "tokenizer.ggml.bos_token_id";
    pub const EOS: &str = "tokenizer.ggml.eos_token_id";
    pub const UNK: &str = "tokenizer.ggml.unknown_token_id";
    pub const EOT: &str = "tokenizer.ggml.eot_token_id";
    pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    pub const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
    pub const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
    pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
}

impl Tokenizer {
    /// Reads the tokenizer of `file`. Only the `llama` (SentencePiece) model is supported.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer, ModelFileError> {
        let model: String = model_file::required(file, keys::MODEL)?;
        if model != "llama" {
            return Err(model_file::bad_value(
                file,
                keys::MODEL,
                &model,
                "only the `llama` (SentencePiece BPE) tokenizer is supported",
            ));
        }
        let tokens: Vec<String> = model_file::required(file, keys::TOKENS)?;
        let n = tokens.len();
        let scores: Vec<f32> =
            model_file::optional(file, keys::SCORES)?.unwrap_or_else(|| vec![0.0; n]);
        let type_ids: Vec<i32> =
            model_file::optional(file, keys::TOKEN_TYPE)?.unwrap_or_else(|| vec![1; n]);
        for (key, len) in [
            (keys::SCORES, scores.len()),
            (keys::TOKEN_TYPE, type_ids.len()),
        ] {
            if len != n {
                return Err(model_file::bad_value(
                    file,
                    key,
                    format!("{len} entries"),
                    format!("expected one per token ({n})"),
                ));
            }
        }
        let mut types = Vec::with_capacity(n);
        for (i, &t) in type_ids.iter().enumerate() {
            types.push(TokenType::from_id(t).ok_or_else(|| {
                model_file::bad_value(
                    file,
                    keys::TOKEN_TYPE,
                    format!("[{i}] = {t}"),
                    "not a token type (1..6)",
                )
            })?);
        }
        let id = |key: &str| -> Result<Option<u32>, ModelFileError> {
            match model_file::optional::<u32>(file, key)? {
                Some(v) if (v as usize) < n => Ok(Some(v)),
                // llama.cpp writes -1 (as u32::MAX) for "none" in some files.
                Some(u32::MAX) | None => Ok(None),
                Some(v) => Err(model_file::bad_value(
                    file,
                    key,
                    v,
                    format!("not a token id (vocabulary of {n})"),
                )),
            }
        };
        let bos = id(keys::BOS)?;
        let eos = id(keys::EOS)?;
        let unk = id(keys::UNK)?;
        let eot = id(keys::EOT)?;
        let add_bos = model_file::optional(file, keys::ADD_BOS)?.unwrap_or(bos.is_some());
        let add_eos = model_file::optional(file, keys::ADD_EOS)?.unwrap_or(false);
        let add_space_prefix = model_file::optional(file, keys::ADD_SPACE_PREFIX)?.unwrap_or(true);
        Ok(Tokenizer::new(
            tokens,
            scores,
            types,
            Ids { bos, eos, unk, eot },
            add_bos,
            add_eos,
            add_space_prefix,
        ))
    }

    fn new(
        tokens: Vec<String>,
        scores: Vec<f32>,
        types: Vec<TokenType>,
        ids: Ids,
        add_bos: bool,
        add_eos: bool,
        add_space_prefix: bool,
    ) -> Tokenizer {
        let mut token_to_id = HashMap::with_capacity(tokens.len());
        // The first of duplicate pieces wins, as in SentencePiece.
        for (i, t) in tokens.iter().enumerate().rev() {
            token_to_id.insert(t.clone(), i as u32);
        }
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = token_to_id.get(&format!("<0x{b:02X}>")).copied();
        }
        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .zip(&types)
            .enumerate()
            .filter(|(_, (t, ty))| {
                !t.is_empty()
                    && matches!(
                        ty,
                        TokenType::Control | TokenType::UserDefined | TokenType::Unknown
                    )
            })
            .map(|(i, (t, _))| (t.clone(), i as u32))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Tokenizer {
            tokens,
            scores,
            types,
            token_to_id,
            byte_tokens,
            specials,
            bos: ids.bos,
            eos: ids.eos,
            unk: ids.unk,
            eot: ids.eot,
            add_bos,
            add_eos,
            add_space_prefix,
            style: SpaceStyle::HuggingFace,
        }
    }

    /// The same tokenizer with another [`SpaceStyle`] (the default is Hugging Face's).
    pub fn with_style(mut self, style: SpaceStyle) -> Tokenizer {
        self.style = style;
        self
    }

    pub fn style(&self) -> SpaceStyle {
        self.style
    }

    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether the file asks for BOS at the start of a prompt.
    pub fn add_bos(&self) -> bool {
        self.add_bos && self.bos.is_some()
    }

    /// Whether `id` ends generation (EOS, or an end-of-turn token).
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        Some(id) == self.eos || Some(id) == self.eot
    }

    /// The id of a token written exactly as `piece`.
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.token_to_id.get(piece).copied()
    }

    /// The piece of token `id` as stored (e.g. `▁Hello`, `<0x0A>`, `<s>`).
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    /// Tokens of `text`: BOS first if `add_special` and the file asks for it (EOS last
    /// likewise); special tokens written in the text are recognised when `parse_special`.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_special && self.add_bos() {
            out.extend(self.bos);
        }
        self.encode_into(text, parse_special, true, &mut out);
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// Appends the tokens of `text` (no BOS/EOS) to `out`. `starts_text` is false for a piece
    /// that continues a prompt (e.g. the text after an image): Hugging Face style then adds no
    /// dummy prefix, as when the whole prompt is tokenized at once with the image as a special
    /// token; llama.cpp style prefixes every piece, as llama.cpp's llava tokenizes each chunk.
    pub fn encode_into(
        &self,
        text: &str,
        parse_special: bool,
        starts_text: bool,
        out: &mut Vec<u32>,
    ) {
        let specials: &[(String, u32)] = if parse_special { &self.specials } else { &[] };
        let fragments = special::split(text, specials);
        let vocab = bpe::BpeVocab {
            token_to_id: &self.token_to_id,
            scores: &self.scores,
            byte_tokens: &self.byte_tokens,
            unk: self.unk,
        };
        let rank = match self.style {
            SpaceStyle::HuggingFace => MergeRank::TokenId,
            SpaceStyle::LlamaCpp => MergeRank::Score,
        };
        let mut prev_special = true;
        let mut at = usize::from(!starts_text);
        for fragment in fragments {
            match fragment {
                special::Fragment::Special(id, len) => {
                    out.push(id);
                    prev_special = true;
                    at += len;
                }
                special::Fragment::Text(s) => {
                    // Built with the prefix; sliced off below when it is not wanted.
                    const MARK: usize = '▁'.len_utf8();
                    let mut escaped = String::with_capacity(s.len() + MARK);
                    escaped.push('▁');
                    escaped.extend(s.chars().map(|c| if c == ' ' { '▁' } else { c }));
                    // Hugging Face's Metaspace prepends only at the start of the text and only
                    // if the text does not already start with `▁`; llama.cpp after every special.
                    let prefix = self.add_space_prefix
                        && match self.style {
                            SpaceStyle::LlamaCpp => prev_special,
                            SpaceStyle::HuggingFace => at == 0 && !escaped[MARK..].starts_with('▁'),
                        };
                    let escaped = if prefix {
                        &escaped[..]
                    } else {
                        &escaped[MARK..]
                    };
                    bpe::tokenize_fragment(&vocab, rank, escaped, out);
                    prev_special = false;
                    at += s.len();
                }
            }
        }
    }

    /// The bytes token `id` stands for in text: `▁` becomes a space, a byte token its byte;
    /// control tokens (BOS, EOS) give nothing unless `render_special`.
    pub fn token_bytes(&self, id: u32, render_special: bool) -> Vec<u8> {
        let Some(piece) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        match self.types[id as usize] {
            TokenType::Control if !render_special => Vec::new(),
            TokenType::Control | TokenType::UserDefined | TokenType::Unknown => {
                piece.as_bytes().to_vec()
            }
            TokenType::Byte => match parse_byte_piece(piece) {
                Some(b) => vec![b],
                None => piece.as_bytes().to_vec(),
            },
            TokenType::Normal | TokenType::Unused => piece.replace('▁', " ").into_bytes(),
        }
    }

    /// Whether encoding puts a space before the first word (SentencePiece's dummy prefix).
    pub fn adds_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// The text of `ids` (no special tokens rendered); with `strip_leading_space`, the space
    /// the dummy prefix put before the first word is removed (as Hugging Face's decoder and
    /// llama.cpp's detokenizer do).
    pub fn decode(&self, ids: &[u32], strip_leading_space: bool) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend(self.token_bytes(id, false));
        }
        let mut s = String::from_utf8_lossy(&bytes).into_owned();
        if strip_leading_space && self.add_space_prefix && s.starts_with(' ') {
            s.remove(0);
        }
        s
    }
}

struct Ids {
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    eot: Option<u32>,
}

/// `<0xAB>` → 0xAB.
fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests;
