#!/usr/bin/env python3
"""A random-weight CLIP ViT-L/14-336 (a Hugging Face `CLIPModel` directory, as the hub's
openai/clip-vit-large-patch14-336, with a tiny text half: llama.cpp's converter reaches the tower
through `CLIPModel.vision_model`, which transformers 5's `CLIPVisionModel` no longer has) and
a LLaVA-1.5-7B-shaped `llava.projector` (mlp2x_gelu, 1024 -> 4096 -> 4096), the inputs of
llama.cpp's legacy LLaVA image-encoder converter. For checking that llava-rs loads an mmproj made
by llama.cpp's own converter at real size, and for timing CLIP side by side:

    tools/make_random_clip_hf.py models/local/clip-vit-l-14-336-random
    python LLAMA_CPP/tools/mtmd/legacy-models/convert_image_encoder_to_gguf.py \\
        -m models/local/clip-vit-l-14-336-random \\
        --llava-projector models/local/clip-vit-l-14-336-random/llava.projector --output-dir models/local/llama.cpp-mmproj-7b

Needs torch and transformers (not needed by the tests). Weights: matrices N(0, 1/fan_in), layer
norms 1 + 0.2·N, biases 0.1·N, embeddings N(0, 1), seeded; stored as f16 safetensors (~0.6 GB).
"""

import argparse
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel


def randomize(module, generator):
    with torch.no_grad():
        for name, p in module.named_parameters():
            x = torch.randn(p.shape, generator=generator)
            if name.endswith("bias"):
                x *= 0.1
            elif "norm" in name:
                x = 1.0 + 0.2 * x
            elif p.dim() >= 2 and "embedding" not in name:
                x /= (p[0].numel()) ** 0.5
            p.copy_(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(args.seed)
    vision = dict(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    text = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                vocab_size=1000, max_position_embeddings=77, projection_dim=768)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=768)
    model = CLIPModel(config).eval()
    randomize(model, g)
    args.output.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(args.output, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}).save_pretrained(args.output)
    projector = {
        "model.mm_projector.0.weight": torch.randn(4096, 1024, generator=g) / 1024**0.5,
        "model.mm_projector.0.bias": 0.1 * torch.randn(4096, generator=g),
        "model.mm_projector.2.weight": torch.randn(4096, 4096, generator=g) / 4096**0.5,
        "model.mm_projector.2.bias": 0.1 * torch.randn(4096, generator=g),
    }
    torch.save({k: v.half() for k, v in projector.items()}, args.output / "llava.projector")
    print(args.output)


if __name__ == "__main__":
    main()
