//! Unit tests of the tokenizer on a hand-made vocabulary.

use super::*;

/// A vocabulary where score order and id order disagree on one merge: "▁▁" has the lowest id
/// of the merged tokens but a very low score (as in the LLaMA vocabulary).
fn tiny() -> Tokenizer {
    let pieces = [
        ("<unk>", 0.0, TokenType::Unknown),
        ("<s>", 0.0, TokenType::Control),
        ("</s>", 0.0, TokenType::Control),
        ("▁▁", -1e9, TokenType::Normal),
        ("▁a", -1.0, TokenType::Normal),
        ("▁b", -2.0, TokenType::Normal),
        ("ab", -3.0, TokenType::Normal),
        ("▁", -4.0, TokenType::Normal),
        ("a", -5.0, TokenType::Normal),
        ("b", -6.0, TokenType::Normal),
        ("<0xC3>", 0.0, TokenType::Byte),
        ("<0xA9>", 0.0, TokenType::Byte),
    ];
    Tokenizer::new(
        pieces.iter().map(|p| p.0.to_string()).collect(),
        pieces.iter().map(|p| p.1).collect(),
        pieces.iter().map(|p| p.2).collect(),
        Ids {
            bos: Some(1),
            eos: Some(2),
            unk: Some(0),
            eot: None,
        },
        true,
        false,
        true,
    )
}

#[test]
fn merge_rank_and_dummy_prefix_follow_the_style() {
    let hf = tiny();
    let cpp = tiny().with_style(SpaceStyle::LlamaCpp);
    // " b": llama.cpp prefixes a space ("▁▁b") and merges by score: ▁b first; HF does not
    // prefix a text already starting with a space ("▁b").
    assert_eq!(cpp.encode(" b", false, false), [7, 5]);
    assert_eq!(hf.encode(" b", false, false), [5]);
    // "a  b" → "▁a▁▁b": by score ▁a, ▁b then a lone ▁; by id ▁▁ (id 3) first.
    assert_eq!(cpp.encode("a  b", false, false), [4, 7, 5]);
    assert_eq!(hf.encode("a  b", false, false), [4, 3, 9]);
    // After a special token: llama.cpp prefixes a space, HF does not.
    assert_eq!(cpp.encode("<s>ab", false, true), [1, 4, 9]);
    assert_eq!(hf.encode("<s>ab", false, true), [1, 6]);
    // Byte fallback for a character not in the vocabulary (é = C3 A9).
    assert_eq!(hf.encode("é", false, false), [7, 10, 11]);
    assert_eq!(hf.decode(&[7, 10, 11], true), "é");
    // BOS as the file says.
    assert_eq!(hf.encode("a", true, false), [1, 4]);
}
