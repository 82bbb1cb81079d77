"""The llava-hf checkpoints: seeded random weights, saved as hub directories look."""

import json
import math
import os
import shutil

from .common import CLIP_MEAN, CLIP_STD, LLAVA_DIR, dir_size, log, write_json
from .vocab import check_llama_spm, llama_spm_bytes, load_tokenizer, mistral_spm_path, write_tokenizer_files

def init_weights(model, seed, lm_head_scale=2.0, attn_scale=1.5):
    """Non-trivial random weights so that bugs cannot hide in near-uniform attention or logits.

    Matrices ~ N(0, 1/fan_in) (q/k a bit larger for peaked attention, the LM head larger for
    peaked logits), norm weights 1 + 0.2 N, biases 0.1 N, embeddings N(0, 1).
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            shape = tuple(p.shape)

            def normal(std, mean=0.0):
                return torch.randn(shape, generator=gen, dtype=torch.float32) * std + mean

            if name.endswith("bias"):
                v = normal(0.1)
            elif "norm" in name or "layrnorm" in name:  # LayerNorm / RMSNorm weights
                v = normal(0.2, 1.0)
            elif "embed_tokens" in name or "image_newline" in name or "class_embedding" in name:
                v = normal(1.0)
            elif "position_embedding" in name:
                v = normal(0.5)
            elif len(shape) == 4:  # patch embedding convolution
                v = normal(1.0 / math.sqrt(shape[1] * shape[2] * shape[3]))
            elif len(shape) == 2:
                std = 1.0 / math.sqrt(shape[1])
                if "lm_head" in name:
                    # per-row scales spread the logits' upper tail, so the greedy top-1 stands
                    # clear of the top-2 (a Gaussian max over 32000 has tiny gaps)
                    row_scale = torch.exp(torch.randn((shape[0], 1), generator=gen) * 0.35)
                    std = std * lm_head_scale * row_scale
                elif "q_proj" in name or "k_proj" in name:
                    std *= attn_scale
                v = normal(std)
            else:
                raise RuntimeError(f"no init rule for {name} {shape}")
            p.copy_(v)
        # llava-hf's conversion: the rows past the 32000 real tokens hold the mean of the real rows
        # plus a little noise, so that they never win the argmax.
        for emb in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
            real = emb[:32000]
            extra = emb.shape[0] - 32000
            noise = torch.randn((extra, emb.shape[1]), generator=gen) * 0.01
            emb[32000:] = real.mean(0, keepdim=True) + noise


def build_config(fx):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaNextConfig, MistralConfig

    kind, tc = fx["text"]
    tc = dict(tc)
    tc.pop("model_type")
    text_config = (LlamaConfig if kind == "llama" else MistralConfig)(**tc)
    vc = dict(fx["vision"])
    vc.pop("model_type")
    vision_config = CLIPVisionConfig(**vc)
    common = dict(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=32000,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        tie_word_embeddings=False,
    )
    if fx["arch"] == "llava":
        cfg = LlavaConfig(**common)
    else:
        s = vision_config.image_size
        cfg = LlavaNextConfig(
            image_grid_pinpoints=[[s, 2 * s], [2 * s, s], [2 * s, 2 * s], [s, 3 * s], [3 * s, s]], **common
        )
    cfg.pad_token_id = 32001
    cfg.image_seq_length = (vision_config.image_size // vision_config.patch_size) ** 2
    return cfg


def build_processor(fx, cfg, tokenizer):
    from transformers import LlavaNextProcessor, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    s = cfg.vision_config.image_size
    ip_args = dict(
        size={"shortest_edge": s},
        crop_size={"height": s, "width": s},
        do_center_crop=True,
        do_resize=True,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        do_convert_rgb=True,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
        resample=3,
    )
    proc_args = dict(
        tokenizer=tokenizer,
        patch_size=cfg.vision_config.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=fx["template"],
    )
    if fx["arch"] == "llava":
        return LlavaProcessor(image_processor=CLIPImageProcessorPil(**ip_args), **proc_args)
    ip = LlavaNextImageProcessorPil(image_grid_pinpoints=cfg.image_grid_pinpoints, do_pad=True, **ip_args)
    return LlavaNextProcessor(image_processor=ip, **proc_args)


def spm_for(fx, work):
    if fx["tokenizer"] == "mistral":
        return mistral_spm_path()
    path = os.path.join(work, "llama2-tokenizer.model")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(llama_spm_bytes())
        check_llama_spm(path)
    return path


def model_class(fx):
    from transformers import LlavaForConditionalGeneration, LlavaNextForConditionalGeneration

    return LlavaForConditionalGeneration if fx["arch"] == "llava" else LlavaNextForConditionalGeneration


def build_checkpoint(name, fx, work):
    """Random model saved in f16/bf16 as a hub-like directory; returns the directory."""
    import torch

    out = os.path.join(LLAVA_DIR, name)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    cfg = build_config(fx)
    torch.manual_seed(fx["seed"])
    model = model_class(fx)(cfg).eval()
    init_weights(model, fx["seed"])
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[fx["dtype"]]
    model = model.to(dtype)
    model.config.dtype = fx["dtype"]
    model.save_pretrained(out)
    rename_to_hub_names(out, fx.get("shards", 1))
    if fx.get("sparse_config"):
        write_sparse_config(out, cfg, fx)

    spm_path = spm_for(fx, work)
    tokenizer = load_tokenizer(spm_path, fx["tokenizer"], cfg.text_config.max_position_embeddings)
    processor = build_processor(fx, cfg, tokenizer)
    processor.save_pretrained(out)
    # tokenizer.json (3.6 MB, regenerable from tokenizer.model) is left out to keep the fixtures
    # small; tokenizer_config.json is written in the hub's form.
    for f in ("tokenizer.json",):
        if os.path.exists(os.path.join(out, f)):
            os.remove(os.path.join(out, f))
    write_tokenizer_files(out, spm_path, fx["tokenizer"], cfg.text_config.max_position_embeddings)
    write_preprocessor_config(out)
    if fx.get("shards"):
        shards = [f for f in os.listdir(out) if f.endswith(".safetensors")]
        assert len(shards) == fx["shards"], f"{name}: wanted {fx['shards']} shards, got {shards}"
    log(f"{name}: checkpoint {dir_size(out) / 1e6:.2f} MB: {sorted(os.listdir(out))}")
    return out


def rename_to_hub_names(out, n_shards):
    """Tensor names as llava-hf's hub checkpoints have them (transformers 5 writes the CLIP tower
    without its `vision_model.` level): `language_model.model.*`, `language_model.lm_head.weight`,
    `vision_tower.vision_model.*`, `multi_modal_projector.*`, `image_newline`."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = os.path.join(out, "model.safetensors")
    files = [f for f in os.listdir(out) if f.endswith(".safetensors")]
    assert files == ["model.safetensors"], f"expected one safetensors file, got {files}"
    with safe_open(path, "pt") as sf:
        meta = sf.metadata()
        tensors = {k: sf.get_tensor(k) for k in sf.keys()}
    new = {}
    for k, v in sorted(tensors.items()):
        nk = k
        if k.startswith("vision_tower.") and not k.startswith("vision_tower.vision_model."):
            nk = "vision_tower.vision_model." + k[len("vision_tower.") :]
        assert nk.split(".")[0] in ("language_model", "vision_tower", "multi_modal_projector", "image_newline"), nk
        new[nk] = v
    if n_shards == 1:
        save_file(new, path, metadata=meta)
        return
    # Sharded as transformers does (model-0000i-of-0000n.safetensors + an index), split in name
    # order at equal byte counts, so that one module's tensors can lie in different files.
    os.remove(path)
    total = sum(v.numel() * v.element_size() for v in new.values())
    shards = [{} for _ in range(n_shards)]
    done = 0
    for k, v in new.items():
        i = min(n_shards - 1, done * n_shards // total)
        shards[i][k] = v
        done += v.numel() * v.element_size()
    weight_map = {}
    for i, shard in enumerate(shards):
        assert shard, "empty shard"
        fname = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        save_file(shard, os.path.join(out, fname), metadata=meta)
        weight_map.update({k: fname for k in shard})
    write_json(
        os.path.join(out, "model.safetensors.index.json"),
        {"metadata": {"total_size": total}, "weight_map": weight_map},
    )


def write_sparse_config(out, cfg, fx):
    """config.json in the sparse form of llava-hf's hub configs (transformers 4.x era): only what
    differs from the defaults, `rope_theta` / `torch_dtype` spellings, no `hidden_act`,
    `layer_norm_eps`, `vision_feature_layer`, `projector_hidden_act`... The loaded config must still
    equal the one the weights were made with (checked)."""
    from transformers import AutoConfig

    t, v = cfg.text_config, cfg.vision_config
    sparse = {
        "architectures": [type_name_for(fx)],
        "ignore_index": -100,
        "image_grid_pinpoints": cfg.image_grid_pinpoints,
        "image_token_index": 32000,
        "model_type": cfg.model_type,
        "pad_token_id": 32001,
        "text_config": {
            "_name_or_path": "lmsys/vicuna-7b-v1.5",
            "architectures": ["LlamaForCausalLM"],
            "hidden_size": t.hidden_size,
            "intermediate_size": t.intermediate_size,
            "max_position_embeddings": t.max_position_embeddings,
            "model_type": "llama",
            "num_attention_heads": t.num_attention_heads,
            "num_hidden_layers": t.num_hidden_layers,
            "num_key_value_heads": t.num_key_value_heads,
            "pad_token_id": 0,
            "rms_norm_eps": t.rms_norm_eps,
            "torch_dtype": fx["dtype"],
            "vocab_size": t.vocab_size,
        },
        "tie_word_embeddings": False,
        "torch_dtype": fx["dtype"],
        "transformers_version": "4.39.0.dev0",
        "use_image_newline_parameter": True,
        "vision_config": {
            "hidden_size": v.hidden_size,
            "image_size": v.image_size,
            "intermediate_size": v.intermediate_size,
            "model_type": "clip_vision_model",
            "num_attention_heads": v.num_attention_heads,
            "num_hidden_layers": v.num_hidden_layers,
            "patch_size": v.patch_size,
            "projection_dim": v.projection_dim,
            "vocab_size": 32000,
        },
    }
    write_json(os.path.join(out, "config.json"), sparse)
    back = AutoConfig.from_pretrained(out)
    for a, b, keys in (
        (back.text_config, t, ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                               "num_key_value_heads", "rms_norm_eps", "vocab_size", "hidden_act", "head_dim",
                               "tie_word_embeddings"]),
        (back.vision_config, v, ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                 "image_size", "patch_size", "hidden_act", "layer_norm_eps"]),
        (back, cfg, ["image_grid_pinpoints", "image_token_id", "vision_feature_layer",
                     "vision_feature_select_strategy", "projector_hidden_act"]),
    ):
        for k in keys:
            assert getattr(a, k) == getattr(b, k), f"sparse config: {k} reads back as {getattr(a, k)}, not {getattr(b, k)}"
    assert back.text_config.rope_parameters["rope_theta"] == t.rope_parameters["rope_theta"], "sparse config: rope"


def type_name_for(fx):
    return model_class(fx).__name__


def write_preprocessor_config(out):
    """preprocessor_config.json as hub checkpoints carry it (transformers 5 nests the same facts
    in processor_config.json, which is kept too)."""
    with open(os.path.join(out, "processor_config.json")) as f:
        proc = json.load(f)
    pre = dict(proc["image_processor"])
    pre["processor_class"] = proc["processor_class"]
    write_json(os.path.join(out, "preprocessor_config.json"), pre)
