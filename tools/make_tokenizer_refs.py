#!/usr/bin/env python3
"""Reference token ids for tests/tokenizer_refs.rs, from Hugging Face and SentencePiece.

For the LLaMA-2 vocabulary (rebuilt as a SentencePiece model from llama.cpp's
ggml-vocab-llama-spm.gguf) and Mistral-7B's (mistral-common's tokenizer.model.v1), encodes a
deterministic set of >= 2000 strings (unicode, emoji, code, digits, runs of spaces, leading
spaces, special tokens mid-text) with

  - transformers' LlamaTokenizer as transformers 5 loads a checkpoint (legacy = false), special
    tokens parsed, no BOS (add_special_tokens=False);
  - plain SentencePiece (`sp.encode`, which never parses special tokens);

and writes tests/data/tokenizer/<vocab>.json: {"generator": versions, "cases": [[text, hf_ids,
sp_ids], ...]}. Needs transformers, tokenizers, sentencepiece, protobuf, gguf, mistral-common
(all in /work/venv); CI only reads the JSON.

Usage: tools/make_tokenizer_refs.py [--vocab-gguf PATH] [--out DIR]
"""

import argparse
import json
import os
import random
import shutil
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def mistral_spm_path():
    import mistral_common

    return os.path.join(os.path.dirname(mistral_common.__file__), "data", "tokenizer.model.v1")


def llama_spm_bytes(vocab_gguf):
    """LLaMA-2's SentencePiece model: pieces, scores and types from llama.cpp's vocab GGUF, the
    trainer/normaliser settings (BPE, byte fallback, dummy prefix, identity normaliser) from
    Mistral's model, which uses the same ones."""
    import gguf
    from sentencepiece import sentencepiece_model_pb2 as pb

    reader = gguf.GGUFReader(vocab_gguf)
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    scores = reader.fields["tokenizer.ggml.scores"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    model = pb.ModelProto()
    with open(mistral_spm_path(), "rb") as f:
        model.ParseFromString(f.read())
    del model.pieces[:]
    for tok, score, typ in zip(tokens, scores, types):
        piece = model.pieces.add()
        piece.piece = tok
        piece.score = score
        piece.type = typ
    del model.trainer_spec.input[:]
    return model.SerializeToString()


def hf_tokenizer(spm_path):
    from transformers import AutoTokenizer

    def tok(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                "single_word": False, "special": True}

    cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {"0": tok("<unk>"), "1": tok("<s>"), "2": tok("</s>")},
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False,
        "legacy": False,
        "tokenizer_class": "LlamaTokenizer",
    }
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(spm_path, os.path.join(tmp, "tokenizer.model"))
        with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f)
        return AutoTokenizer.from_pretrained(tmp)


WORDS = (
    "the quick brown fox jumps over lazy dog Hello world hello World image picture describe what "
    "you see in this photo USER ASSISTANT system prompt tokenizer llama.cpp transformers don't "
    "it's y'all café naïve résumé Straße Äpfel über façade déjà vu coöperate"
).split()
UNICODE = [
    "нещо на Български", "Привет, мир!", "こんにちは世界", "我想在apple工作1314151天～", "안녕하세요",
    "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "កាន់តែពិសេសអាចខលចេញ", "Cửa Việt", "Ελληνικά",
    "ไทย ภาษา", "Tiếng Việt có dấu", "ğüşıöç", "½ ¾ ⅓ ∑ ∫ √ ∞ ≠ ≤ ≥", "→ ← ↑ ↓ ⇒", "™ © ®",
    "\u200b zero\u200bwidth", "e\u0301 combining", "ﬁ ligature", "Ａｂｃ fullwidth", "▁ literal ▁▁ marks",
]
EMOJI = ["🦙", "🚀", "😶‍🌫️", "✅", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "😁", "❤️", "🤖", "🍕🍔", "🏳️‍🌈"]
CODE = [
    "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "fn main() { println!(\"{}\", 42); }", "<div class=\"a\">&nbsp;</div>", "SELECT * FROM t WHERE id=3;",
    "x = {'a': [1, 2, 3], \"b\": None}", "#include <stdio.h>", "$ cargo test -- --nocapture",
    "if (a && b || !c) { /* comment */ }", "    indented\n        more\n", "a\tb\tc\n1\t2\t3",
    "λx. x + 1", "0x1F600 0b1010 1e-5 3.14159", "https://example.com/path?q=1&r=2#frag",
]
SPECIALS = ["<s>", "</s>", "<unk>"]


def make_strings(seed=20261206, n=2100):
    rng = random.Random(seed)
    out = []
    # Fixed edge cases first.
    fixed = [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", " \n ", "Hello", " Hello", "  Hello", "   Hello",
        "Hello ", "Hello  ", "a  b", "a   b", "a    b", "  leading and trailing  ", "<s>", "</s>",
        "<s>Hello</s>", "<s> Hello", "Hello <s> world", "x </s>y", "x</s> y", "<unk>", "a<unk>b",
        "<s><s>", " <s>", "<s> ", "3", "33", "333", "3333", "33333", "1234567890", "1,000,000.50",
        "!!!!!!", "...", "—", "' era", "\n =", "Hello, y'all! How are you 😁 ?", "<ss>", "</s", "<s",
        "USER: <s> what is this?\nASSISTANT:", "▁", "▁▁", " ▁", "\r\n", "\u00a0nbsp",
    ]
    out.extend(fixed)
    pools = [WORDS, UNICODE, EMOJI, CODE]
    while len(out) < n:
        parts = []
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            if r < 0.35:
                parts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))))
            elif r < 0.5:
                parts.append(rng.choice(UNICODE))
            elif r < 0.6:
                parts.append("".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3))))
            elif r < 0.7:
                parts.append(rng.choice(CODE))
            elif r < 0.8:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 12))))
            elif r < 0.9:
                parts.append(rng.choice(SPECIALS))
            else:
                parts.append(rng.choice([" ", "  ", "   ", "\t", "\n", " \n", "\n\n", "    "]))
        sep = rng.choice(["", " ", " ", "  ", "\n"])
        s = sep.join(parts)
        if rng.random() < 0.2:
            s = " " * rng.randint(1, 3) + s
        if rng.random() < 0.1:
            s = s + " " * rng.randint(1, 2)
        out.append(s)
    return out


def main():
    import sentencepiece
    import tokenizers
    import transformers

    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab-gguf", default="/work/shared/data/vocab/ggml-vocab-llama-spm.gguf")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "tokenizer"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    strings = make_strings()
    with tempfile.TemporaryDirectory() as tmp:
        llama_path = os.path.join(tmp, "llama2.model")
        with open(llama_path, "wb") as f:
            f.write(llama_spm_bytes(args.vocab_gguf))
        for name, path in [("llama", llama_path), ("mistral", mistral_spm_path())]:
            hf = hf_tokenizer(path)
            sp = sentencepiece.SentencePieceProcessor(model_file=path)
            cases = [[s, hf.encode(s, add_special_tokens=False), sp.encode(s)] for s in strings]
            doc = {
                "generator": {
                    "script": "tools/make_tokenizer_refs.py",
                    "transformers": transformers.__version__,
                    "tokenizers": tokenizers.__version__,
                    "sentencepiece": sentencepiece.__version__,
                    "hf": "AutoTokenizer (LlamaTokenizer, legacy=False), add_special_tokens=False",
                    "sp": "SentencePieceProcessor.encode (special tokens not parsed)",
                },
                "cases": cases,
            }
            out = os.path.join(args.out, f"{name}.json")
            with open(out, "w", encoding="utf-8") as f:
                json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
            print(f"{out}: {len(cases)} strings")


if __name__ == "__main__":
    main()
