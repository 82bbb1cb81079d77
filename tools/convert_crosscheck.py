#!/usr/bin/env python3
"""Checks llava-convert's two output files against the checkpoint they came from, independently
of the Rust code: gguf-py reads the files; the checkpoint is read here (safetensors by hand,
PyTorch .bin with zipfile and a restricted pickle.Unpickler, no torch); the GGUF names are mapped
back to checkpoint names from llama.cpp's conventions; q/k rows are permuted as llama.cpp's
convert_hf_to_gguf.py (LlamaModel.permute) does; every tensor must be bit-identical to the source
converted to the file's type (F32, F16 by numpy, BF16 and Q8_0 by gguf-py's quantizers).

    convert_crosscheck.py MODEL_DIR LLM.gguf MMPROJ.gguf [--vision-tower DIR]

Prints a JSON summary ({"llm": {name: type}, "mmproj": {...}, "checked": n}) on success; exits
with status 1 and the list of mismatches otherwise. The LLM's vocabulary is checked against
llama.cpp's construction over the `sentencepiece` package and gguf-py's SpecialVocab. Needs
`gguf`, `numpy` and `sentencepiece`.
"""

import argparse
import json
import pickle
import re
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import quantize


def bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def read_safetensors(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = raw[base + b : base + e]
        dt = info["dtype"]
        if dt == "F16":
            a = np.frombuffer(buf, "<f2").astype(np.float32)
        elif dt == "BF16":
            a = bf16_to_f32(np.frombuffer(buf, "<u2"))
        elif dt == "F32":
            a = np.frombuffer(buf, "<f4").copy()
        else:
            continue
        out[name] = a.reshape(info["shape"])
    return out


class _Storage:
    def __init__(self, dtype):
        self.dtype = dtype


STORAGE_DTYPES = {"HalfStorage": "<f2", "FloatStorage": "<f4", "BFloat16Storage": "<u2",
                  "LongStorage": "<i8"}


class _StateDictUnpickler(pickle.Unpickler):
    """Builds numpy arrays from a torch.save archive; refuses every other global."""

    def __init__(self, f, archive, prefix):
        super().__init__(f)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            import collections
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild
        if module == "torch" and name in STORAGE_DTYPES:
            return _Storage(STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"forbidden global {module}.{name}")

    def persistent_load(self, pid):
        kind, storage, key, _location, _numel = pid
        assert kind == "storage"
        data = self.archive.read(f"{self.prefix}data/{key}")
        return np.frombuffer(data, storage.dtype)

    @staticmethod
    def _rebuild(storage, offset, size, stride, *_):
        n = int(np.prod(size)) if size else 1
        a = storage[offset : offset + n].reshape(size)
        assert a.strides == tuple(s * storage.itemsize for s in stride) or n <= 1
        if storage.dtype == np.dtype("<u2"):
            return bf16_to_f32(a)
        return a.astype(np.float32) if a.dtype.kind == "f" else a


def read_torch(path):
    z = zipfile.ZipFile(path)
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
    prefix = pkl[: -len("data.pkl")]
    with z.open(pkl) as f:
        return dict(_StateDictUnpickler(f, z, prefix).load())


def read_dir(d):
    d = Path(d)
    tensors = {}
    files = sorted(d.glob("*.safetensors"))
    for f in files:
        tensors.update(read_safetensors(f))
    if not files:
        for f in sorted(d.glob("pytorch_model*.bin")):
            tensors.update(read_torch(f))
    return tensors


# Checkpoint name patterns (every layout) → canonical name.
CANON = [
    (r"^(?:model\.language_model\.|language_model\.model\.|model\.)(layers\.\d+\..*|embed_tokens\.weight|norm\.weight)$", r"text.\1"),
    (r"^(?:language_model\.)?lm_head\.weight$", "text.lm_head"),
    (r"^(?:model\.)?(?:vision_tower\.)*(?:vision_tower\.)?vision_model\.(.*)$", r"vision.\1"),
    (r"^(?:model\.)?multi_modal_projector\.linear_1\.(.*)$", r"proj.0.\1"),
    (r"^(?:model\.)?multi_modal_projector\.linear_2\.(.*)$", r"proj.2.\1"),
    (r"^model\.mm_projector\.(\d)\.(.*)$", r"proj.\1.\2"),
    (r"^(?:model\.)?image_newline$", "newline"),
]


def canonical(name):
    for pat, rep in CANON:
        if re.match(pat, name):
            return re.sub(pat, rep, name)
    return None


LLM_NAMES = {
    "token_embd.weight": "text.embed_tokens.weight",
    "output_norm.weight": "text.norm.weight",
    "output.weight": "text.lm_head",
}
LLM_BLOCK = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
MM_NAMES = {
    "v.class_embd": "vision.embeddings.class_embedding",
    "v.patch_embd.weight": "vision.embeddings.patch_embedding.weight",
    "v.position_embd.weight": "vision.embeddings.position_embedding.weight",
    "v.pre_ln.weight": "vision.pre_layrnorm.weight",
    "v.pre_ln.bias": "vision.pre_layrnorm.bias",
    "model.image_newline": "newline",
}
# llama.cpp's legacy swap: ffn_down holds CLIP's fc1, ffn_up its fc2.
MM_BLOCK = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_out": "self_attn.out_proj", "ln1": "layer_norm1", "ln2": "layer_norm2",
    "ffn_down": "mlp.fc1", "ffn_up": "mlp.fc2",
}


def source_of(gguf_name):
    if gguf_name in LLM_NAMES:
        return LLM_NAMES[gguf_name]
    if gguf_name in MM_NAMES:
        return MM_NAMES[gguf_name]
    m = re.match(r"^blk\.(\d+)\.(\w+)\.weight$", gguf_name)
    if m:
        return f"text.layers.{m[1]}.{LLM_BLOCK[m[2]]}.weight"
    m = re.match(r"^v\.blk\.(\d+)\.(\w+)\.(weight|bias)$", gguf_name)
    if m:
        return f"vision.encoder.layers.{m[1]}.{MM_BLOCK[m[2]]}.{m[3]}"
    m = re.match(r"^mm\.(\d)\.(weight|bias)$", gguf_name)
    if m:
        return f"proj.{m[1]}.{m[2]}"
    raise KeyError(gguf_name)


def permute(w, n_head, n_head_kv):
    """llama.cpp's convert_hf_to_gguf.py LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def expected_bytes(src, qtype):
    if qtype == GGMLQuantizationType.F32:
        return src.astype(np.float32).tobytes()
    if qtype == GGMLQuantizationType.F16:
        return src.astype(np.float16).tobytes()
    return quantize(src.astype(np.float32), qtype).tobytes()


def check_vocab(model_dir, reader, problems):
    """The vocabulary as llama.cpp's convert_hf_to_gguf.py builds it (_create_vocab_sentencepiece,
    restated here over the sentencepiece package) and gguf-py's SpecialVocab."""
    from gguf import SpecialVocab
    from sentencepiece import SentencePieceProcessor

    d = Path(model_dir)
    sp = SentencePieceProcessor()
    sp.LoadFromFile(str(d / "tokenizer.model"))
    field = lambda k: reader.fields[k].contents() if k in reader.fields else None
    vocab_size = field("llama.vocab_size")
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    scores = [-10000.0] * vocab_size
    types = [5] * vocab_size
    for i in range(sp.vocab_size()):
        t = 1
        if sp.IsUnknown(i):
            t = 2
        elif sp.IsControl(i):
            t = 3
        elif sp.IsUnused(i):
            t = 5
        elif sp.IsByte(i):
            t = 6
        tokens[i], scores[i], types[i] = sp.IdToPiece(i), sp.GetScore(i), t
    added = d / "added_tokens.json"
    if added.is_file():
        for key, i in json.loads(added.read_text()).items():
            if i < vocab_size:
                tokens[i], scores[i], types[i] = key, -1000.0, 4
    tc_path = d / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text()) if tc_path.is_file() else {}
    for i, data in tc.get("added_tokens_decoder", {}).items():
        i, tok = int(i), data["content"]
        if i >= vocab_size:
            continue
        special = tok in ("<pad>", "<mask>") or (tok.startswith("<|") and tok.endswith("|>"))
        if data.get("special") or special:
            types[i] = 3
        else:
            tok = tok.replace("\u2581", " ")
            types[i] = 4
        scores[i], tokens[i] = -1000.0, tok
    if field("tokenizer.ggml.tokens") != tokens:
        problems.append("tokenizer.ggml.tokens differ from llama.cpp's construction")
    got_scores = np.array(field("tokenizer.ggml.scores"), dtype=np.float32)
    if not np.array_equal(got_scores, np.array(scores, dtype=np.float32)):
        problems.append("tokenizer.ggml.scores differ")
    if field("tokenizer.ggml.token_type") != types:
        problems.append("tokenizer.ggml.token_type differs")
    special = SpecialVocab(d, n_vocab=vocab_size)
    names = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id",
             "pad": "padding_token_id"}
    for typ, key in names.items():
        want = special.special_token_ids.get(typ)
        if want is not None and field(f"tokenizer.ggml.{key}") != want:
            problems.append(f"tokenizer.ggml.{key}: {field(f'tokenizer.ggml.{key}')} vs gguf-py {want}")
    for typ, flag in special.add_special_token.items():
        if typ in ("bos", "eos") and field(f"tokenizer.ggml.add_{typ}_token") != flag:
            problems.append(f"tokenizer.ggml.add_{typ}_token differs from gguf-py ({flag})")
    if special.chat_template is not None and field("tokenizer.chat_template") != special.chat_template:
        problems.append("tokenizer.chat_template differs from gguf-py's")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("llm")
    ap.add_argument("mmproj")
    ap.add_argument("--vision-tower")
    args = ap.parse_args()

    cfg = json.loads((Path(args.model) / "config.json").read_text())
    text_cfg = cfg.get("text_config", cfg)
    n_head = text_cfg["num_attention_heads"]
    n_kv = text_cfg.get("num_key_value_heads") or n_head

    source = {}
    dirs = [args.model] + ([args.vision_tower] if args.vision_tower else [])
    for d in dirs:
        for name, a in read_dir(d).items():
            c = canonical(name)
            if c is not None and c not in source:
                source[c] = a

    problems, summary, checked = [], {}, 0
    for label, path in (("llm", args.llm), ("mmproj", args.mmproj)):
        reader = GGUFReader(path)
        if label == "llm":
            check_vocab(args.model, reader, problems)
        summary[label] = {}
        for t in reader.tensors:
            summary[label][t.name] = t.tensor_type.name
            src = source.get(source_of(t.name))
            if src is None:
                problems.append(f"{t.name}: no source tensor {source_of(t.name)}")
                continue
            src = np.asarray(src, dtype=np.float32)
            if t.name.endswith("attn_q.weight") and label == "llm":
                src = permute(src, n_head, n_head)
            elif t.name.endswith("attn_k.weight") and label == "llm":
                src = permute(src, n_head, n_kv)
            ne = [int(d) for d in t.shape]
            # Padded vocabularies: the checkpoint's rows must all be there.
            if list(reversed(ne)) != list(src.shape):
                problems.append(f"{t.name}: ne {ne} vs source shape {list(src.shape)}")
                continue
            if expected_bytes(src, t.tensor_type) != t.data.tobytes():
                problems.append(f"{t.name} ({t.tensor_type.name}): data differs from the source")
            checked += 1
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    summary["checked"] = checked
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
