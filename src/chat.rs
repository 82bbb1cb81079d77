//! Chat templates: how a conversation becomes the prompt text the model was tuned on.
//!
//! - `vicuna`: LLaVA-1.5 / Vicuna v1 (`conv_llava_v1`): `{system} USER: {msg} ASSISTANT:`,
//!   replies closed by `</s>`;
//! - `mistral`: Mistral instruct (LLaVA-1.6-Mistral): `[INST] {msg} [/INST]`, replies closed
//!   by `</s>`; a system prompt goes before the first message;
//! - `chatml`: Yi-34B / Nous-Hermes-2 (`<|im_start|>role\n…<|im_end|>\n`);
//! - `raw`: the prompt exactly as given.
//!
//! The template is picked from `tokenizer.chat_template` (the Jinja text is recognised by its
//! markers), else from the vocabulary (`<|im_start|>` present: chatml), else vicuna; the CLI's
//! `--chat-template` overrides. BOS is not part of the text: the tokenizer adds it as the file
//! says. Image placeholders (`<image>`) in a message are kept as written.

use crate::gguf::GgufFile;
use crate::tokenizer::keys::CHAT_TEMPLATE;

/// LLaVA-1.5's system prompt (`conv_llava_v1`).
pub const VICUNA_SYSTEM: &str = "A chat between a curious human and an artificial intelligence \
     assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatTemplate {
    Vicuna,
    Mistral,
    ChatMl,
    Raw,
}

impl ChatTemplate {
    pub const NAMES: [&'static str; 4] = ["vicuna", "mistral", "chatml", "raw"];

    pub fn parse(name: &str) -> Option<ChatTemplate> {
        match name.to_ascii_lowercase().as_str() {
            "vicuna" | "llava" | "llava-1.5" | "vicuna_v1" => Some(ChatTemplate::Vicuna),
            "mistral" | "mistral-instruct" | "llama2" | "inst" => Some(ChatTemplate::Mistral),
            "chatml" | "yi" => Some(ChatTemplate::ChatMl),
            "raw" | "none" => Some(ChatTemplate::Raw),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ChatTemplate::Vicuna => "vicuna",
            ChatTemplate::Mistral => "mistral",
            ChatTemplate::ChatMl => "chatml",
            ChatTemplate::Raw => "raw",
        }
    }

    /// Recognises a Jinja chat template by its markers.
    pub fn detect(jinja: &str) -> Option<ChatTemplate> {
        if jinja.contains("<|im_start|>") {
            Some(ChatTemplate::ChatMl)
        } else if jinja.contains("[INST]") {
            Some(ChatTemplate::Mistral)
        } else if jinja.contains("USER:") || jinja.contains("ASSISTANT:") {
            Some(ChatTemplate::Vicuna)
        } else {
            None
        }
    }

    /// The template of a model file (see the module documentation).
    pub fn from_gguf(file: &GgufFile) -> ChatTemplate {
        if let Some(t) = file
            .get(CHAT_TEMPLATE)
            .and_then(|v| v.as_str())
            .and_then(ChatTemplate::detect)
        {
            return t;
        }
        let has_im_start = file
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .is_some_and(|a| a.items().iter().any(|t| t.as_str() == Some("<|im_start|>")));
        if has_im_start {
            ChatTemplate::ChatMl
        } else {
            ChatTemplate::Vicuna
        }
    }

    /// The system prompt used when none is given.
    pub fn default_system(self) -> Option<&'static str> {
        match self {
            ChatTemplate::Vicuna => Some(VICUNA_SYSTEM),
            _ => None,
        }
    }

    /// The text of a user turn up to where the assistant's reply starts. `first` marks the first
    /// turn of the conversation (where the system prompt goes); later turns start by closing
    /// the previous reply.
    pub fn user_turn(self, system: Option<&str>, message: &str, first: bool) -> String {
        let system = system.filter(|s| !s.is_empty());
        match self {
            ChatTemplate::Raw => message.to_owned(),
            ChatTemplate::Vicuna => {
                let mut s = String::new();
                if first {
                    if let Some(sys) = system {
                        s.push_str(sys);
                        s.push(' ');
                    }
                } else {
                    s.push_str("</s>");
                }
                s.push_str("USER: ");
                s.push_str(message);
                s.push_str(" ASSISTANT:");
                s
            }
            ChatTemplate::Mistral => {
                let mut s = String::new();
                if !first {
                    s.push_str("</s>");
                }
                s.push_str("[INST] ");
                if first && let Some(sys) = system {
                    s.push_str(sys);
                    s.push_str("\n\n");
                }
                s.push_str(message);
                s.push_str(" [/INST]");
                s
            }
            ChatTemplate::ChatMl => {
                let mut s = String::new();
                if first {
                    if let Some(sys) = system {
                        s.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
                    }
                } else {
                    s.push_str("<|im_end|>\n");
                }
                s.push_str(&format!(
                    "<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n"
                ));
                s
            }
        }
    }

    /// Extra stop strings for this template (besides EOS).
    pub fn stop_strings(self) -> &'static [&'static str] {
        match self {
            ChatTemplate::ChatMl => &["<|im_end|>"],
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_turns() {
        let v = ChatTemplate::Vicuna;
        assert_eq!(
            v.user_turn(Some("SYS"), "<image>\nWhat is this?", true),
            "SYS USER: <image>\nWhat is this? ASSISTANT:"
        );
        assert_eq!(
            v.user_turn(Some("SYS"), "More?", false),
            "</s>USER: More? ASSISTANT:"
        );
        assert_eq!(v.user_turn(None, "Hi", true), "USER: Hi ASSISTANT:");
        let m = ChatTemplate::Mistral;
        assert_eq!(m.user_turn(None, "Count.", true), "[INST] Count. [/INST]");
        assert_eq!(
            m.user_turn(Some("Be brief."), "Hi", true),
            "[INST] Be brief.\n\nHi [/INST]"
        );
        assert_eq!(
            m.user_turn(None, "Again", false),
            "</s>[INST] Again [/INST]"
        );
        let c = ChatTemplate::ChatMl;
        assert_eq!(
            c.user_turn(Some("S"), "Q", true),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
        );
        assert!(
            c.user_turn(None, "Q", false)
                .starts_with("<|im_end|>\n<|im_start|>user\n")
        );
        assert_eq!(
            ChatTemplate::Raw.user_turn(Some("S"), "as is ", true),
            "as is "
        );
    }

    #[test]
    fn jinja_templates_are_recognised_by_markers() {
        let llava_hf = "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";
        assert_eq!(ChatTemplate::detect(llava_hf), Some(ChatTemplate::Vicuna));
        assert_eq!(
            ChatTemplate::detect(
                "{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}"
            ),
            Some(ChatTemplate::Mistral)
        );
        assert_eq!(
            ChatTemplate::detect(
                "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n'}}{% endfor %}"
            ),
            Some(ChatTemplate::ChatMl)
        );
        assert_eq!(ChatTemplate::detect("{{ messages }}"), None);
        for n in ChatTemplate::NAMES {
            assert_eq!(ChatTemplate::parse(n).unwrap().name(), n);
        }
        assert_eq!(ChatTemplate::parse("nope"), None);
    }
}
