//! The SentencePiece-BPE merge loop: a text fragment (spaces already replaced by `▁`) starts as
//! one symbol per character; the best adjacent pair whose concatenation is a vocabulary token
//! is merged, again and again; characters left that are not tokens become byte tokens
//! (`<0xXX>`, "byte fallback").
//!
//! Which pair is "best" is where the implementations differ (see docs/tokenizer.md):
//! - [`MergeRank::Score`] (SentencePiece, llama.cpp): the pair whose merged token has the
//!   highest score; ties go to the leftmost pair.
//! - [`MergeRank::TokenId`] (Hugging Face `tokenizers` as transformers 5 converts a
//!   SentencePiece BPE model: merges listed by the merged token's id, then the length of the
//!   left part): the pair whose merged token has the lowest id, then the shorter left part,
//!   then the leftmost pair. The two orders differ only for tokens whose score is out of line
//!   with their id — in the LLaMA and Mistral vocabularies, the runs of `▁` (score -1e9).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// How candidate merges are ranked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeRank {
    Score,
    TokenId,
}

/// What the merge loop needs from the vocabulary.
pub(crate) struct BpeVocab<'a> {
    pub token_to_id: &'a HashMap<String, u32>,
    pub scores: &'a [f32],
    /// `<0xXX>` token of each byte, if the vocabulary has it.
    pub byte_tokens: &'a [Option<u32>; 256],
    pub unk: Option<u32>,
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    end: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Ordering key of a candidate merge: smaller is better.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// Score mode: the negated score as ordered bits, then the left symbol's position.
    Score(Reverse<OrderedScore>, usize),
    /// Id mode: merged id, left part's byte length, left symbol's position.
    Id(u32, usize, usize),
}

/// An f32 with a total order (scores are finite in practice; NaN sorts last).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct OrderedScore(i64);

impl OrderedScore {
    fn new(v: f32) -> Self {
        // The IEEE bits reordered so that integer order is float order (`f32::total_cmp`).
        let bits = v.to_bits() as i32;
        OrderedScore(i64::from(bits ^ (((bits >> 31) as u32) >> 1) as i32))
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    key: Reverse<Key>,
    left: usize,
    right: usize,
    /// Byte length of the merged text when queued; a mismatch on pop means a stale entry.
    len: usize,
}

/// Appends the tokens of `text` (one fragment, spaces already `▁`) to `out`.
pub(crate) fn tokenize_fragment(
    vocab: &BpeVocab<'_>,
    rank: MergeRank,
    text: &str,
    out: &mut Vec<u32>,
) {
    if text.is_empty() {
        return;
    }
    let mut symbols: Vec<Symbol> = Vec::new();
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            end: start + c.len_utf8(),
            prev: i.checked_sub(1),
            next: None,
        });
        if i > 0 {
            symbols[i - 1].next = Some(i);
        }
    }
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<Candidate>, symbols: &[Symbol], left: usize, right: usize| {
        let (l, r) = (symbols[left], symbols[right]);
        let merged = &text[l.start..r.end];
        if let Some(&id) = vocab.token_to_id.get(merged) {
            let key = match rank {
                MergeRank::Score => {
                    let score = vocab.scores.get(id as usize).copied().unwrap_or(f32::MIN);
                    Key::Score(Reverse(OrderedScore::new(score)), l.start)
                }
                MergeRank::TokenId => {
                    // Hugging Face merges only pairs of tokens; a character that is not a
                    // token (byte fallback) never merges.
                    let left_text = &text[l.start..l.end];
                    let right_text = &text[r.start..r.end];
                    if !vocab.token_to_id.contains_key(left_text)
                        || !vocab.token_to_id.contains_key(right_text)
                    {
                        return;
                    }
                    Key::Id(id, l.end - l.start, l.start)
                }
            };
            heap.push(Candidate {
                key: Reverse(key),
                left,
                right,
                len: merged.len(),
            });
        }
    };
    for i in 1..symbols.len() {
        push(&mut heap, &symbols, i - 1, i);
    }
    while let Some(c) = heap.pop() {
        let (l, r) = (symbols[c.left], symbols[c.right]);
        // Stale: one side was merged away or grew since this candidate was queued.
        if l.end == l.start
            || r.end == r.start
            || l.next != Some(c.right)
            || r.end - l.start != c.len
        {
            continue;
        }
        symbols[c.left].end = r.end;
        symbols[c.left].next = r.next;
        symbols[c.right].end = symbols[c.right].start; // emptied
        if let Some(n) = r.next {
            symbols[n].prev = Some(c.left);
        }
        if let Some(p) = symbols[c.left].prev {
            push(&mut heap, &symbols, p, c.left);
        }
        if let Some(n) = symbols[c.left].next {
            push(&mut heap, &symbols, c.left, n);
        }
    }
    let mut at = Some(0);
    while let Some(i) = at {
        let s = symbols[i];
        let piece = &text[s.start..s.end];
        match vocab.token_to_id.get(piece) {
            Some(&id) => out.push(id),
            None => {
                for b in piece.bytes() {
                    out.extend(vocab.byte_tokens[b as usize].or(vocab.unk));
                }
            }
        }
        at = s.next;
    }
}
