#!/usr/bin/env python3
"""Write a LLaVA mmproj GGUF (CLIP vision tower + connector) with random weights, streaming.

The layout is llama.cpp's (`general.architecture = clip`, `clip.*` keys, `v.*` / `mm.*` tensors,
fc1/fc2 stored as ffn_down/ffn_up as its legacy converter does; see shared/docs/gguf-llava.md), so
the file loads in llama.cpp's `llama-mtmd-cli` and in llava-rs. For benchmarks: the real
checkpoints cannot be fetched here, and encode speed depends on shapes only.

    tools/make_random_mmproj.py --preset vit-l-14-336 models/local/mmproj-llava-1.5-7b-random-f16.gguf
    tools/make_random_mmproj.py --preset vit-l-14-336 --next models/local/mmproj-llava-next-random-f16.gguf

Weights: matrices std 1/sqrt(fan_in), layer norms 1 + 0.2·N, biases 0.1·N, embeddings std 1
(the fixtures' scales). Matrices, the patch kernel and the position embedding are F16; norms,
biases and the class embedding F32, as llama.cpp's converter writes an F16 file.

Presets:
  vit-l-14-336  LLaVA-1.5 / NeXT 7B: ViT-L/14 at 336 px (24 layers, 1024 wide, 16 heads, 4096
                FFN), 23 layers kept (feature layer -2), mlp2x_gelu connector to 4096.
  tiny          4 layers, 64 wide, 4 heads, 32 px images, patch 8, connector to 256.
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

PRESETS = {
    "vit-l-14-336": dict(image=336, patch=14, width=1024, ff=4096, heads=16, layers=23, proj=768,
                         n_embd=4096),
    "tiny": dict(image=32, patch=8, width=64, ff=256, heads=4, layers=4, proj=64, n_embd=256),
}

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def tensor_plan(p, next_model):
    """(name, numpy shape, kind) with kind one of matrix, norm, bias, embd."""
    w, f, e = p["width"], p["ff"], p["n_embd"]
    n_pos = (p["image"] // p["patch"]) ** 2 + 1
    plan = [
        ("v.class_embd", (w,), "embd32"),
        ("v.patch_embd.weight", (w, 3, p["patch"], p["patch"]), "matrix"),
        ("v.position_embd.weight", (n_pos, w), "embd"),
        ("v.pre_ln.weight", (w,), "norm"),
        ("v.pre_ln.bias", (w,), "bias"),
    ]
    for i in range(p["layers"]):
        b = f"v.blk.{i}."
        for proj in ("attn_q", "attn_k", "attn_v", "attn_out"):
            plan += [(b + proj + ".weight", (w, w), "matrix"), (b + proj + ".bias", (w,), "bias")]
        plan += [
            (b + "ln1.weight", (w,), "norm"),
            (b + "ln1.bias", (w,), "bias"),
            (b + "ffn_down.weight", (f, w), "matrix"),  # CLIP's fc1, named as llama.cpp does
            (b + "ffn_down.bias", (f,), "bias"),
            (b + "ffn_up.weight", (w, f), "matrix"),  # fc2
            (b + "ffn_up.bias", (w,), "bias"),
            (b + "ln2.weight", (w,), "norm"),
            (b + "ln2.bias", (w,), "bias"),
        ]
    plan += [
        ("mm.0.weight", (e, w), "matrix"),
        ("mm.0.bias", (e,), "bias"),
        ("mm.2.weight", (e, e), "matrix"),
        ("mm.2.bias", (e,), "bias"),
    ]
    if next_model:
        plan.append(("model.image_newline", (e,), "embd32"))
    return plan


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", type=Path)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="vit-l-14-336")
    ap.add_argument("--next", action="store_true", help="LLaVA-NeXT: anyres keys and the newline tensor")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    p = PRESETS[args.preset]
    plan = tensor_plan(p, args.next)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), "clip")
    w.add_name(f"random {args.preset}{' NeXT' if args.next else ''} mmproj (seed {args.seed})")
    w.add_description("random-weight LLaVA vision tower and connector, for benchmarks")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_bool("clip.has_text_encoder", False)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_llava_projector", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_uint32("clip.vision.image_size", p["image"])
    w.add_uint32("clip.vision.patch_size", p["patch"])
    w.add_uint32("clip.vision.embedding_length", p["width"])
    w.add_uint32("clip.vision.feed_forward_length", p["ff"])
    w.add_uint32("clip.vision.projection_dim", p["proj"])
    w.add_uint32("clip.vision.attention.head_count", p["heads"])
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    w.add_uint32("clip.vision.block_count", p["layers"])
    w.add_array("clip.vision.image_mean", CLIP_MEAN)
    w.add_array("clip.vision.image_std", CLIP_STD)
    w.add_bool("clip.use_gelu", False)
    if args.next:
        s = p["image"]
        pinpoints = [s, 2 * s, 2 * s, s, 2 * s, 2 * s, 3 * s, s, s, 3 * s]
        w.add_array("clip.vision.image_grid_pinpoints", pinpoints)
        w.add_string("clip.vision.image_aspect_ratio", "anyres")
        w.add_string("clip.vision.mm_patch_merge_type", "spatial_unpad")

    def dtype_of(kind):
        return np.float16 if kind in ("matrix", "embd") else np.float32

    for name, shape, kind in plan:
        dtype = np.dtype(dtype_of(kind))
        w.add_tensor_info(name, shape, dtype, int(np.prod(shape)) * dtype.itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    rng = np.random.default_rng(args.seed)
    for i, (name, shape, kind) in enumerate(plan):
        x = rng.standard_normal(shape, dtype=np.float32)
        if kind == "matrix":
            x /= np.sqrt(np.prod(shape[1:]))
        elif kind == "norm":
            x = 1.0 + 0.2 * x
        elif kind == "bias":
            x *= 0.1
        w.write_tensor_data(x.astype(dtype_of(kind)))
        print(f"[{i + 1}/{len(plan)}] {name} {list(shape)}", file=sys.stderr, flush=True)
    w.close()
    os.replace(tmp, args.output)
    print(args.output)


if __name__ == "__main__":
    main()
