//! The LLM file's vocabulary (`tokenizer.ggml.*`, `tokenizer.chat_template`), built as llama.cpp's
//! `convert_hf_to_gguf.py` (`_create_vocab_sentencepiece` + gguf-py's `SpecialVocab`) builds it:
//!
//! 1. `vocab_size` slots (the embedding rows), each `[PAD<i>]`, score -10000, type UNUSED;
//! 2. the SentencePiece pieces with their scores and types (user-defined pieces count as NORMAL);
//! 3. `added_tokens.json` entries: USER_DEFINED, score -1000;
//! 4. `tokenizer_config.json`'s `added_tokens_decoder` (or, failing that, `tokenizer.json`'s
//!    `added_tokens`): CONTROL if special or special-looking, else USER_DEFINED with "▁" → " ";
//!    score -1000.
//!
//! Special ids as gguf-py's `SpecialVocab` finds them: the token strings of `tokenizer_config.json`
//! among `tokenizer.json`'s added tokens, else `config.json`'s `*_token_id` (root, then
//! `text_config`); failing those, the SentencePiece model's ids (which are llama.cpp's defaults
//! for an absent key).

use std::path::Path;

use serde_json::Value;

use super::error::ConvertError;
use super::json::JsonObject;
use super::sentencepiece::{self, CONTROL, NORMAL, UNKNOWN, UNUSED, USER_DEFINED};
use crate::gguf::{GgufError, GgufWriter};

#[derive(Clone, Debug)]
pub struct Vocab {
    pub tokens: Vec<String>,
    pub scores: Vec<f32>,
    pub types: Vec<i32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    pub chat_template: Option<String>,
}

impl Vocab {
    pub fn add_to(&self, w: &mut GgufWriter) -> Result<(), GgufError> {
        w.add_metadata("tokenizer.ggml.model", "llama")?;
        w.add_metadata("tokenizer.ggml.pre", "default")?;
        w.add_metadata("tokenizer.ggml.tokens", self.tokens.clone())?;
        w.add_metadata("tokenizer.ggml.scores", self.scores.clone())?;
        w.add_metadata("tokenizer.ggml.token_type", self.types.clone())?;
        for (key, id) in [
            ("tokenizer.ggml.bos_token_id", self.bos),
            ("tokenizer.ggml.eos_token_id", self.eos),
            ("tokenizer.ggml.unknown_token_id", self.unk),
            ("tokenizer.ggml.padding_token_id", self.pad),
        ] {
            if let Some(id) = id {
                w.add_metadata(key, id)?;
            }
        }
        w.add_metadata("tokenizer.ggml.add_bos_token", self.add_bos)?;
        w.add_metadata("tokenizer.ggml.add_eos_token", self.add_eos)?;
        if let Some(t) = &self.chat_template {
            w.add_metadata("tokenizer.chat_template", t.as_str())?;
        }
        Ok(())
    }
}

/// gguf-py's `does_token_look_special`.
fn looks_special(token: &str) -> bool {
    matches!(token, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (token.starts_with("<|") && token.ends_with("|>"))
        || (token.starts_with("<｜") && token.ends_with("｜>"))
        || (token.starts_with("<unused") && token.ends_with('>'))
}

/// A token given as a string or as `{"content": ...}`.
fn token_text(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("content").and_then(Value::as_str),
        _ => None,
    }
}

/// Builds the vocabulary of `vocab_size` entries from `dir`.
/// `config` is the model's config.json (for `*_token_id` fallbacks).
pub fn load(dir: &Path, vocab_size: u32, config: &[&JsonObject]) -> Result<Vocab, ConvertError> {
    let sp_path = dir.join("tokenizer.model");
    let terr = |path: &Path, reason: String| ConvertError::Tokenizer {
        path: path.to_owned(),
        reason,
    };
    if !sp_path.is_file() {
        return Err(terr(
            &sp_path,
            "missing: only SentencePiece vocabularies (tokenizer.model) are supported".into(),
        ));
    }
    let bytes = std::fs::read(&sp_path).map_err(|e| ConvertError::io(&sp_path, e))?;
    let sp = sentencepiece::parse(&bytes).map_err(|e| terr(&sp_path, e))?;
    let n = vocab_size as usize;
    if sp.pieces.len() > n {
        return Err(terr(
            &sp_path,
            format!(
                "{} pieces, but the model has only {n} token embeddings (vocab_size)",
                sp.pieces.len()
            ),
        ));
    }
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000f32; n];
    let mut types = vec![UNUSED; n];
    for (i, p) in sp.pieces.iter().enumerate() {
        tokens[i] = p.piece.clone();
        scores[i] = p.score;
        // SentencePieceProcessor's IsUnknown / IsControl / IsUnused / IsByte, else NORMAL.
        types[i] = match p.kind {
            k @ (UNKNOWN | CONTROL | UNUSED | sentencepiece::BYTE) => k,
            _ => NORMAL,
        };
    }

    let added_path = dir.join("added_tokens.json");
    if let Some(added) = JsonObject::read_optional(&added_path)? {
        for (text, id) in &added.map {
            let id = id
                .as_u64()
                .ok_or_else(|| added.err(text, "expected a token id"))?
                as usize;
            if id < n {
                tokens[id] = text.clone();
                scores[id] = -1000.0;
                types[id] = USER_DEFINED;
            }
        }
    }

    let tok_config = JsonObject::read_optional(&dir.join("tokenizer_config.json"))?;
    let tok_json_path = dir.join("tokenizer.json");
    let mut added: Vec<(usize, String, bool)> = Vec::new();
    if let Some(tc) = &tok_config
        && let Some(decoder) = tc.object("added_tokens_decoder")?
    {
        for (id, data) in &decoder.map {
            let id: usize = id
                .parse()
                .map_err(|_| decoder.err(id, "token id is not an integer"))?;
            let content =
                token_text(data).ok_or_else(|| decoder.err(&id.to_string(), "no content"))?;
            let special = data
                .get("special")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            added.push((id, content.to_owned(), special));
        }
    } else if tok_json_path.is_file() {
        let tj = JsonObject::read(&tok_json_path)?;
        if let Some(Value::Array(items)) = tj.get("added_tokens") {
            for item in items {
                let id = item.get("id").and_then(Value::as_u64);
                let content = item.get("content").and_then(Value::as_str);
                let (Some(id), Some(content)) = (id, content) else {
                    return Err(tj.err("added_tokens", "entries need an id and a content"));
                };
                let special = item
                    .get("special")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                added.push((id as usize, content.to_owned(), special));
            }
        }
    }
    added.sort_by_key(|a| a.0);
    for (id, content, special) in added {
        if id >= n {
            continue;
        }
        if special || looks_special(&content) {
            tokens[id] = content;
            types[id] = CONTROL;
        } else {
            tokens[id] = content.replace('\u{2581}', " ");
            types[id] = USER_DEFINED;
        }
        scores[id] = -1000.0;
    }

    // Special token ids, by gguf-py's SpecialVocab rules: the token string named in
    // tokenizer_config.json, looked up among tokenizer.json's added tokens (only when that file
    // exists), else config.json's `<typ>_token_id` (root, then text_config).
    let json_added: Option<Vec<(String, u64)>> = if tok_json_path.is_file() {
        let tj = JsonObject::read(&tok_json_path)?;
        let items = match tj.get("added_tokens") {
            Some(Value::Array(items)) => items.as_slice(),
            _ => &[],
        };
        Some(
            items
                .iter()
                .filter_map(|t| {
                    let content = t.get("content")?.as_str()?;
                    Some((content.to_owned(), t.get("id")?.as_u64()?))
                })
                .collect(),
        )
    } else {
        None
    };
    let special_id = |typ: &str| -> Option<u32> {
        if let (Some(added), Some(tc)) = (&json_added, &tok_config)
            && let Some(text) = tc.get(&format!("{typ}_token")).and_then(token_text)
            && let Some(&(_, id)) = added.iter().find(|(c, _)| c == text)
            && id < n as u64
        {
            return Some(id as u32);
        }
        let id_key = format!("{typ}_token_id");
        config
            .iter()
            .find_map(|c| c.get(&id_key))
            .and_then(Value::as_u64)
            .filter(|&id| id < n as u64)
            .map(|id| id as u32)
    };
    // Where gguf-py finds none, the SentencePiece model's own ids: what llama.cpp assumes for
    // a missing key of an SPM vocabulary (bos 1, eos 2, unk 0 in LLaMA's and Mistral's models),
    // written out so that no reader has to guess.
    let from_model = |id: i32| u32::try_from(id).ok().filter(|&id| (id as usize) < n);
    let bos = special_id("bos").or_else(|| from_model(sp.bos_id));
    let eos = special_id("eos").or_else(|| from_model(sp.eos_id));
    let unk = special_id("unk").or_else(|| from_model(sp.unk_id));
    let pad = special_id("pad").or_else(|| from_model(sp.pad_id));

    let (mut add_bos, mut add_eos) = (true, false); // LlamaTokenizer's defaults
    let mut chat_template = None;
    if let Some(tc) = &tok_config {
        add_bos = tc.bool_or("add_bos_token", add_bos)?;
        add_eos = tc.bool_or("add_eos_token", add_eos)?;
        chat_template = match tc.get("chat_template") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            // A list of named templates: llama.cpp keeps the default one.
            Some(Value::Array(items)) => items
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            Some(_) => return Err(tc.err("chat_template", "expected a string or a list")),
        };
    }
    if chat_template.is_none() {
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            chat_template =
                Some(std::fs::read_to_string(&jinja).map_err(|e| ConvertError::io(&jinja, e))?);
        } else if let Some(ct) = JsonObject::read_optional(&dir.join("chat_template.json"))? {
            chat_template = ct.opt_str("chat_template")?.map(str::to_owned);
        }
    }

    Ok(Vocab {
        tokens,
        scores,
        types,
        bos,
        eos,
        unk,
        pad,
        add_bos,
        add_eos,
        chat_template,
    })
}
