"""Tokenizers: LLaMA-2's SentencePiece model rebuilt from llama.cpp's vocab GGUF, Mistral-7B's
from the mistral-common wheel, and the hub-form tokenizer files."""

import os
import shutil
import sys
import tempfile

from .common import LLAMA_VOCAB_GGUF, find_shared_vocab, log, write_json

def llama_spm_bytes():
    """LLaMA-2's SentencePiece model rebuilt from llama.cpp's vocab GGUF.

    The GGUF holds the pieces, scores and types; the model's trainer/normaliser settings (BPE,
    byte fallback, dummy prefix, identity normaliser, no whitespace removal) are those of LLaMA-2,
    which match Mistral-7B's tokenizer.model.v1, so that file serves as the template.
    """
    import gguf
    from sentencepiece import sentencepiece_model_pb2 as pb

    reader = gguf.GGUFReader(os.path.join(find_shared_vocab(), LLAMA_VOCAB_GGUF))
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
        piece.type = typ  # ggml token types use sentencepiece's numbering
    del model.trainer_spec.input[:]
    model.trainer_spec.model_prefix = "llama2"
    return model.SerializeToString()


def mistral_spm_path():
    import mistral_common

    path = os.path.join(os.path.dirname(mistral_common.__file__), "data", "tokenizer.model.v1")
    if not os.path.exists(path):
        sys.exit(f"mistral-common wheel lacks {path}")
    return path


def check_llama_spm(model_path):
    """The rebuilt model must tokenize llama.cpp's test strings exactly as llama.cpp does."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=model_path)
    with open(os.path.join(find_shared_vocab(), LLAMA_VOCAB_GGUF + ".inp"), encoding="utf-8") as f:
        inputs = f.read().split("\n__ggml_vocab_test__\n")
    with open(os.path.join(find_shared_vocab(), LLAMA_VOCAB_GGUF + ".out"), encoding="utf-8") as f:
        outputs = f.read().split("\n")
    n = 0
    for text, expected in zip(inputs, outputs):
        want = [int(x) for x in expected.split()]
        got = sp.encode(text)
        if got != want:
            sys.exit(f"rebuilt LLaMA tokenizer disagrees with llama.cpp on {text!r}: {got} != {want}")
        n += 1
    log(f"LLaMA-2 tokenizer.model: {n} llama.cpp test vectors match")


def tokenizer_config(kind, model_max_length, with_image_tokens=True):
    """tokenizer_config.json in the form llava-hf's hub checkpoints carry."""

    def tok(content, special=True):
        return {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": special,
        }

    added = {"0": tok("<unk>"), "1": tok("<s>"), "2": tok("</s>")}
    cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": False,
        "model_max_length": model_max_length,
        "pad_token": None,
        "padding_side": "left",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    if with_image_tokens:
        added["32000"] = tok("<image>")
        added["32001"] = tok("<pad>")
        cfg["pad_token"] = "<pad>"
        cfg["image_token"] = "<image>"
        cfg["extra_special_tokens"] = {"image_token": "<image>"}
    if kind == "mistral":
        cfg["padding_side"] = "left"
    return cfg


def special_tokens_map(with_image_tokens=True):
    def tok(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}

    m = {"bos_token": tok("<s>"), "eos_token": tok("</s>"), "unk_token": tok("<unk>")}
    if with_image_tokens:
        m["pad_token"] = tok("<pad>")
        m["image_token"] = "<image>"
    return m


def write_tokenizer_files(out_dir, spm_path, kind, model_max_length, with_image_tokens=True):
    shutil.copyfile(spm_path, os.path.join(out_dir, "tokenizer.model"))
    write_json(os.path.join(out_dir, "tokenizer_config.json"), tokenizer_config(kind, model_max_length, with_image_tokens))
    write_json(os.path.join(out_dir, "special_tokens_map.json"), special_tokens_map(with_image_tokens))


def load_tokenizer(spm_path, kind, model_max_length):
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer_files(tmp, spm_path, kind, model_max_length)
        tok = AutoTokenizer.from_pretrained(tmp)
    assert tok.convert_tokens_to_ids("<image>") == 32000, "the <image> token must be id 32000"
    assert tok.convert_tokens_to_ids("<pad>") == 32001, "the <pad> token must be id 32001"
    return tok
