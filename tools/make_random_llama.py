#!/usr/bin/env python3
"""Write a LLaMA-architecture GGUF file with random weights, streaming, for tests and benchmarks.

The tokenizer (and, for the 7B preset, every hyper-parameter) comes from llama.cpp's LLaMA vocab
file, so the result loads in llama.cpp and in llava-rs like a real checkpoint. Weights are seeded
gaussian noise (std 0.02), written one tensor at a time: memory stays at one tensor's worth, so
the 13 GB 7B file is fine on a small machine.

`--scales fixture` draws weights as the test fixtures do (tools/make_fixtures.py): matrices with
std 1/sqrt(fan_in), norms 1 + 0.2·N(0, 1), embeddings std 1, so activations keep their size
through the layers and the logits are peaked (greedy decoding is then a meaningful comparison
between two runtimes). The default, `--scales small`, is std 0.02 everywhere.

    tools/make_random_llama.py --preset llava-1.5-7b models/local/llava-1.5-7b-random-f16.gguf
    tools/make_random_llama.py --preset tiny /tmp/tiny-f16.gguf

Presets:
  llava-1.5-7b  LLaVA-1.5-7B's language model (Vicuna-7B): 32 layers, 4096 wide, 11008 FFN.
  tiny          2 layers, 256 wide, 4 heads (2 KV heads), 768 FFN, tied output embedding:
                the shape of the file bundled under models/ for `llava inspect`.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("error: the `gguf` package is missing: pip install gguf numpy")

HERE = Path(__file__).resolve().parent
DEFAULT_VOCAB = HERE.parent.parent / "shared" / "data" / "vocab" / "ggml-vocab-llama-spm.gguf"

PRESETS = {
    "llava-1.5-7b": dict(n_layer=32, n_embd=4096, n_ff=11008, n_head=32, n_head_kv=32, tied=False),
    "tiny": dict(n_layer=2, n_embd=256, n_ff=768, n_head=4, n_head_kv=2, tied=True),
}


def field_value(reader, key):
    field = reader.fields[key]
    return field.contents()


def tensor_plan(p, n_vocab):
    """(name, numpy shape [rows, cols], is_norm) in llama.cpp's order."""
    e, f = p["n_embd"], p["n_ff"]
    kv = e * p["n_head_kv"] // p["n_head"]
    plan = [("token_embd.weight", (n_vocab, e), False)]
    for i in range(p["n_layer"]):
        b = f"blk.{i}."
        plan += [
            (b + "attn_norm.weight", (e,), True),
            (b + "attn_q.weight", (e, e), False),
            (b + "attn_k.weight", (kv, e), False),
            (b + "attn_v.weight", (kv, e), False),
            (b + "attn_output.weight", (e, e), False),
            (b + "ffn_norm.weight", (e,), True),
            (b + "ffn_gate.weight", (f, e), False),
            (b + "ffn_up.weight", (f, e), False),
            (b + "ffn_down.weight", (e, f), False),
        ]
    plan.append(("output_norm.weight", (e,), True))
    if not p["tied"]:
        plan.append(("output.weight", (n_vocab, e), False))
    return plan


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", type=Path)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="llava-1.5-7b")
    ap.add_argument("--vocab", type=Path, default=DEFAULT_VOCAB, help="GGUF file to take the tokenizer from")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scales", choices=["small", "fixture"], default="small",
                    help="weight scales: 0.02 everywhere, or the fixtures' 1/sqrt(fan_in)")
    args = ap.parse_args()

    p = PRESETS[args.preset]
    vocab = gguf.GGUFReader(str(args.vocab))
    tokens = field_value(vocab, "tokenizer.ggml.tokens")
    n_vocab = len(tokens)
    plan = tensor_plan(p, n_vocab)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name(f"random {args.preset} (seed {args.seed}, {args.scales} scales)")
    w.add_block_count(p["n_layer"])
    w.add_context_length(4096)
    w.add_embedding_length(p["n_embd"])
    w.add_feed_forward_length(p["n_ff"])
    w.add_head_count(p["n_head"])
    w.add_head_count_kv(p["n_head_kv"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(p["n_embd"] // p["n_head"])
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model(field_value(vocab, "tokenizer.ggml.model"))
    w.add_tokenizer_pre(field_value(vocab, "tokenizer.ggml.pre"))
    w.add_token_list(tokens)
    w.add_token_scores(field_value(vocab, "tokenizer.ggml.scores"))
    w.add_token_types(field_value(vocab, "tokenizer.ggml.token_type"))
    w.add_bos_token_id(field_value(vocab, "tokenizer.ggml.bos_token_id"))
    w.add_eos_token_id(field_value(vocab, "tokenizer.ggml.eos_token_id"))
    w.add_unk_token_id(field_value(vocab, "tokenizer.ggml.unknown_token_id"))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    for name, shape, is_norm in plan:
        dtype = np.float32 if is_norm else np.float16
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        w.add_tensor_info(name, shape, np.dtype(dtype), nbytes)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(args.seed)
    total = len(plan)
    for i, (name, shape, is_norm) in enumerate(plan):
        fixture = args.scales == "fixture"
        if is_norm:
            spread = 0.2 if fixture else 0.1
            data = (1.0 + spread * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
        else:
            if not fixture:
                std = 0.02
            elif name == "token_embd.weight":
                std = 1.0
            else:
                std = 1.0 / np.sqrt(shape[1])
            data = np.empty(shape, dtype=np.float16)
            # Row chunks keep the f32 scratch small for the big matrices.
            step = max(1, (1 << 24) // shape[1])
            for r in range(0, shape[0], step):
                chunk = rng.standard_normal((min(step, shape[0] - r), shape[1]), dtype=np.float32)
                data[r : r + step] = (std * chunk).astype(np.float16)
        w.write_tensor_data(data)
        print(f"[{i + 1}/{total}] {name} {list(shape)}", file=sys.stderr, flush=True)
        del data
    w.close()
    os.replace(tmp, args.output)
    print(args.output)


if __name__ == "__main__":
    main()
