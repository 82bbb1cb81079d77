#!/usr/bin/env python3
"""A random-weight llava-hf LLaVA-1.5-7B-shaped checkpoint (LlavaForConditionalGeneration:
Vicuna-7B + CLIP ViT-L/14-336 + mlp2x_gelu), f16 safetensors in shards with an index, streamed to
disk (memory stays small), for timing llava-convert (BENCHMARKS.md). The weights are a 32 MB
pool of random normal f16 values repeated: content does not matter for timing, only size and
finiteness. Tokenizer and processor files are copied from tests/fixtures/llava/llava15-hf.

    make_random_llava_hf.py OUT_DIR [--shard-gb 5]

Needs numpy (~14.1 GB on disk).
"""

import argparse
import json
import shutil
import struct
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "llava" / "llava15-hf"


def tensors():
    v, h, i, n = 32064, 4096, 11008, 32
    yield "language_model.model.embed_tokens.weight", (v, h)
    for l in range(n):
        p = f"language_model.model.layers.{l}."
        for m in ("q_proj", "k_proj", "v_proj", "o_proj"):
            yield p + f"self_attn.{m}.weight", (h, h)
        yield p + "mlp.gate_proj.weight", (i, h)
        yield p + "mlp.up_proj.weight", (i, h)
        yield p + "mlp.down_proj.weight", (h, i)
        yield p + "input_layernorm.weight", (h,)
        yield p + "post_attention_layernorm.weight", (h,)
    yield "language_model.model.norm.weight", (h,)
    yield "language_model.lm_head.weight", (v, h)
    cv, ci = 1024, 4096
    vp = "vision_tower.vision_model."
    yield vp + "embeddings.class_embedding", (cv,)
    yield vp + "embeddings.patch_embedding.weight", (cv, 3, 14, 14)
    yield vp + "embeddings.position_embedding.weight", (577, cv)
    yield vp + "pre_layrnorm.weight", (cv,)
    yield vp + "pre_layrnorm.bias", (cv,)
    for l in range(24):
        p = f"{vp}encoder.layers.{l}."
        for m in ("q_proj", "k_proj", "v_proj", "out_proj"):
            yield p + f"self_attn.{m}.weight", (cv, cv)
            yield p + f"self_attn.{m}.bias", (cv,)
        for m in ("layer_norm1", "layer_norm2"):
            yield p + f"{m}.weight", (cv,)
            yield p + f"{m}.bias", (cv,)
        yield p + "mlp.fc1.weight", (ci, cv)
        yield p + "mlp.fc1.bias", (ci,)
        yield p + "mlp.fc2.weight", (cv, ci)
        yield p + "mlp.fc2.bias", (cv,)
    yield vp + "post_layernorm.weight", (cv,)
    yield vp + "post_layernorm.bias", (cv,)
    yield "multi_modal_projector.linear_1.weight", (h, cv)
    yield "multi_modal_projector.linear_1.bias", (h,)
    yield "multi_modal_projector.linear_2.weight", (h, h)
    yield "multi_modal_projector.linear_2.bias", (h,)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shard-gb", type=float, default=5.0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pool = (np.random.default_rng(0).standard_normal(1 << 24) * 0.02).astype("<f2").tobytes()

    shards, current, size = [], [], 0
    for name, shape in tensors():
        n = 2 * int(np.prod(shape))
        if current and size + n > args.shard_gb * 1e9:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape, n))
        size += n
    shards.append(current)

    weight_map = {}
    for k, shard in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for name, shape, n in shard:
            header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [off, off + n]}
            off += n
            weight_map[name] = fname
        hb = json.dumps(header).encode()
        hb += b" " * (-len(hb) % 8)
        with open(out / fname, "wb") as f:
            f.write(struct.pack("<Q", len(hb)) + hb)
            for _, _, n in shard:
                while n > 0:
                    chunk = pool[: min(n, len(pool))]
                    f.write(chunk)
                    n -= len(chunk)
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))

    config = json.loads((FIXTURE / "config.json").read_text())
    config["text_config"].update(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                 num_attention_heads=32, num_key_value_heads=32, head_dim=128)
    config["vision_config"].update(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                   num_attention_heads=16, image_size=336, patch_size=14,
                                   projection_dim=768)
    config["image_seq_length"] = 576
    (out / "config.json").write_text(json.dumps(config, indent=1))
    for f in FIXTURE.iterdir():
        if f.name not in ("config.json", "model.safetensors") and f.is_file():
            shutil.copy(f, out / f.name)
    pre = json.loads((out / "preprocessor_config.json").read_text())
    pre["size"] = {"shortest_edge": 336}
    pre["crop_size"] = {"height": 336, "width": 336}
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=1))


if __name__ == "__main__":
    main()
