"""The original LLaVA layout (pytorch_model.bin + a separate CLIP directory) of llava15-hf's weights."""

import json
import math
import os
import shutil

from .common import CLIP_MEAN, CLIP_STD, LLAVA_DIR, dir_size, log, write_json
from .hf_checkpoint import model_class, spm_for
from .references import generator_versions, run_case
from .vocab import write_tokenizer_files

def build_original_layout(name, fx, work):
    """The original LLaVA layout from the llava15-hf weights: the LLM as pytorch_model.bin with
    LLaVA's names and a 32000-row vocabulary, the CLIP tower as a separate CLIPModel directory."""
    import torch
    from safetensors.torch import load_file
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    base = os.path.join(LLAVA_DIR, fx["base"])
    out = os.path.join(LLAVA_DIR, name)
    clip_out = os.path.join(LLAVA_DIR, name + "-clip")
    for d in (out, clip_out):
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
    with open(os.path.join(base, "config.json")) as f:
        base_cfg = json.load(f)
    tc, vc = base_cfg["text_config"], base_cfg["vision_config"]
    hf = load_file(os.path.join(base, "model.safetensors"))

    llm, vision = {}, {}
    for k, v in hf.items():
        if k.startswith("language_model.model."):
            nk = "model." + k[len("language_model.model.") :]
        elif k == "language_model.lm_head.weight":
            nk = "lm_head.weight"
        elif k.startswith("multi_modal_projector.linear_"):
            layer = {"1": "0", "2": "2"}[k[len("multi_modal_projector.linear_")]]
            nk = f"model.mm_projector.{layer}." + k.rsplit(".", 1)[1]
        elif k.startswith("vision_tower.vision_model."):
            vision[k[len("vision_tower.") :]] = v
            continue
        else:
            raise RuntimeError(f"unmapped tensor {k}")
        if nk in ("model.embed_tokens.weight", "lm_head.weight"):
            v = v[:32000]  # the original vocabulary has no <image>/<pad> rows
        llm[nk] = v.clone().contiguous()
    # torch.save's zip records no timestamps; a fixed insertion order keeps the pickle stable
    torch.save(dict(sorted(llm.items())), os.path.join(out, "pytorch_model.bin"))

    cfg = {
        "_name_or_path": "./checkpoints/vicuna-7b-v1.5",
        "architectures": ["LlavaLlamaForCausalLM"],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "freeze_mm_mlp_adapter": False,
        "freeze_mm_vision_resampler": False,
        "hidden_act": "silu",
        "hidden_size": tc["hidden_size"],
        "image_aspect_ratio": "pad",
        "initializer_range": 0.02,
        "intermediate_size": tc["intermediate_size"],
        "max_length": 4096,
        "max_position_embeddings": tc["max_position_embeddings"],
        "mm_hidden_size": vc["hidden_size"],
        "mm_patch_merge_type": "flat",
        "mm_projector_lr": None,
        "mm_projector_type": "mlp2x_gelu",
        "mm_resampler_type": None,
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": False,
        "mm_vision_select_feature": "patch",
        "mm_vision_select_layer": base_cfg["vision_feature_layer"],
        "mm_vision_tower": name + "-clip",
        "model_type": "llava",
        "num_attention_heads": tc["num_attention_heads"],
        "num_hidden_layers": tc["num_hidden_layers"],
        "num_key_value_heads": tc["num_key_value_heads"],
        "pad_token_id": 0,
        "pretraining_tp": 1,
        "rms_norm_eps": tc["rms_norm_eps"],
        "rope_scaling": None,
        "rope_theta": tc["rope_parameters"]["rope_theta"],
        "tie_word_embeddings": False,
        "tokenizer_model_max_length": 2048,
        "tokenizer_padding_side": "right",
        "torch_dtype": "float16",
        "transformers_version": "4.31.0",
        "tune_mm_mlp_adapter": False,
        "tune_mm_vision_resampler": False,
        "unfreeze_mm_vision_tower": False,
        "use_cache": True,
        "use_mm_proj": True,
        "vocab_size": 32000,
    }
    write_json(os.path.join(out, "config.json"), cfg)
    write_json(
        os.path.join(out, "generation_config.json"),
        {"bos_token_id": 1, "eos_token_id": 2, "max_length": 4096, "pad_token_id": 0, "transformers_version": "4.31.0"},
    )
    write_tokenizer_files(out, spm_for(fx, work), "llama", 2048, with_image_tokens=False)
    with open(os.path.join(out, "tokenizer_config.json")) as f:
        tcfg = json.load(f)
    tcfg["padding_side"] = "right"
    write_json(os.path.join(out, "tokenizer_config.json"), tcfg)

    # The CLIP tower: a whole CLIPModel (a tiny random text half too, as openai's checkpoints have
    # one), with llava15-hf's vision weights.
    vcfg = {k: v for k, v in vc.items() if k not in ("model_type",)}
    clip_cfg = CLIPConfig(
        text_config=CLIPTextConfig(
            vocab_size=1000, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            max_position_embeddings=16, projection_dim=vc["projection_dim"],
        ).to_dict(),
        vision_config=CLIPVisionConfig(**vcfg).to_dict(),
        projection_dim=vc["projection_dim"],
    )
    torch.manual_seed(fx["seed"])
    clip = CLIPModel(clip_cfg).eval()
    gen = torch.Generator().manual_seed(fx["seed"])
    state = clip.state_dict()
    with torch.no_grad():
        for k in sorted(state):
            if k.startswith("vision_model."):
                state[k] = vision[k].float()
            elif k == "logit_scale":
                state[k] = torch.tensor(math.log(100.0))
            elif "norm" in k and k.endswith("weight"):
                state[k] = 1 + 0.2 * torch.randn(state[k].shape, generator=gen)
            elif state[k].dim() >= 1 and state[k].dtype.is_floating_point:
                fan = state[k].shape[-1] if state[k].dim() == 2 else 1
                std = 0.1 if state[k].dim() == 1 else 1 / math.sqrt(fan)
                state[k] = std * torch.randn(state[k].shape, generator=gen)
        missing = set(vision) - set(state)
        assert not missing, f"CLIPModel lacks {missing}"
        clip.load_state_dict(state)
    clip.save_pretrained(clip_out)
    # preprocessor_config.json in the old form of openai/clip-vit-large-patch14-336's
    s_ = vc["image_size"]
    write_json(
        os.path.join(clip_out, "preprocessor_config.json"),
        {
            "crop_size": s_,
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "CLIPFeatureExtractor",
            "image_mean": CLIP_MEAN,
            "image_std": CLIP_STD,
            "resample": 3,
            "size": s_,
        },
    )
    log(f"{name}: checkpoint {dir_size(out) / 1e6:.2f} MB {sorted(os.listdir(out))}")
    log(f"{name}-clip: {dir_size(clip_out) / 1e6:.2f} MB {sorted(os.listdir(clip_out))}")
    return out, clip_out


def check_original_layout(base_model, out, clip_out):
    """The .bin and the CLIP directory hold exactly the llava15-hf weights."""
    import torch
    from transformers import CLIPVisionModel

    sd = torch.load(os.path.join(out, "pytorch_model.bin"), map_location="cpu", weights_only=True)
    lm = base_model.model.language_model
    assert torch.equal(sd["model.embed_tokens.weight"].float(), lm.embed_tokens.weight[:32000])
    assert torch.equal(sd["lm_head.weight"].float(), base_model.lm_head.weight[:32000])
    assert torch.equal(sd["model.mm_projector.2.weight"].float(), base_model.model.multi_modal_projector.linear_2.weight)
    vt, info = CLIPVisionModel.from_pretrained(clip_out, dtype=torch.float32, output_loading_info=True)
    assert not info["missing_keys"], info
    ours = dict(vt.named_parameters())
    for k, v in base_model.model.vision_tower.named_parameters():
        assert torch.equal(ours[k], v), f"CLIP dir tensor {k} differs"


def make_original_references(name, fx, clip_out):
    import torch
    from transformers import AutoProcessor, CLIPImageProcessor

    base = os.path.join(LLAVA_DIR, fx["base"])
    ref_dir = os.path.join(LLAVA_DIR, name + ".ref")
    if os.path.exists(ref_dir):
        shutil.rmtree(ref_dir)
    os.makedirs(ref_dir)
    model = model_class(fx).from_pretrained(base, dtype=torch.float32).eval()
    check_original_layout(model, os.path.join(LLAVA_DIR, name), clip_out)
    processor = AutoProcessor.from_pretrained(base)
    processor.fixture_dir = base
    pad_processor = CLIPImageProcessor.from_pretrained(clip_out)
    assert type(pad_processor).__name__.endswith("Pil"), "references need the PIL image backend"
    torch.manual_seed(0)
    cases = [run_case(model, processor, fx, c, imgs, ref_dir, pad_processor=pad_processor) for c, imgs in fx["cases"]]
    write_json(
        os.path.join(ref_dir, "cases.json"),
        {
            "fixture": name,
            "checkpoint": f"llava/{name}",
            "vision_tower": f"llava/{name}-clip",
            "model_run": f"llava/{fx['base']}",
            "generator": generator_versions(),
            "cases": cases,
        },
    )
    log(f"{name}: references {dir_size(ref_dir) / 1e6:.2f} MB")
