#!/usr/bin/env python3
"""Builds the tiny seeded LLaVA checkpoints and their transformers reference outputs.

Writes tests/fixtures/{images,llava}/ (see tests/fixtures/README.md for every file). Needs torch
(CPU) and transformers >= 5 WITHOUT torchvision (transformers would switch to the torchvision
image backend, whose pixels differ from PIL's). CI never runs this: the outputs are committed.

    /work/venv/bin/python tools/make_fixtures.py [--only NAME ...]

Deterministic: every random draw comes from a fixed seed, files carry no timestamps, so running
it twice gives byte-identical files.
"""

import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
LLAVA_DIR = os.path.join(FIXTURES, "llava")
IMAGES_DIR = os.path.join(FIXTURES, "images")
LLAMA_VOCAB_GGUF = "ggml-vocab-llama-spm.gguf"


def find_shared_vocab():
    """llama.cpp's LLaMA vocab GGUF in shared/data/vocab, beside or above the checkout."""
    cands = [os.environ.get("LLAVA_SHARED_VOCAB", "")]
    cands += [os.path.join(REPO, *[".."] * up, "shared", "data", "vocab") for up in (0, 1, 2)]
    for c in cands:
        if c and os.path.exists(os.path.join(c, LLAMA_VOCAB_GGUF)):
            return os.path.normpath(c)
    sys.exit(f"cannot find {LLAMA_VOCAB_GGUF}; set LLAVA_SHARED_VOCAB to its directory")



CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
N_GREEDY = 16
N_IMAGE_EXTRA_ROWS = 64  # llava-hf pads the 32000-token vocab to 32064 rows (<image>, <pad>, spare)

# ---------------------------------------------------------------------------------------------
# Chat templates (jinja, as transformers saves them). Simplified forms of llava-hf's templates:
# images first in each user turn, then the text.
VICUNA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}"
    "{{ ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ ' ' + content['text'] + eos_token }}{% endfor %}"
    "{% endif %}{% endfor %}"
)


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------------------------------------
# Tokenizers


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


# ---------------------------------------------------------------------------------------------
# Files


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def save_npy(path, arr):
    arr = np.ascontiguousarray(arr)
    np.save(path, arr, allow_pickle=False)


def make_images():
    """Small synthetic images: smooth shapes + a little noise, various sizes, modes and formats."""
    from PIL import Image

    os.makedirs(IMAGES_DIR, exist_ok=True)
    rng = np.random.default_rng(1234)

    def picture(w, h, phase):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        r = 128 + 100 * np.sin(x / w * 3.1 + phase)
        g = 128 + 100 * np.cos(y / h * 2.3 - phase)
        b = 255 * ((x - w * 0.6) ** 2 + (y - h * 0.4) ** 2 < (min(w, h) * 0.3) ** 2)
        img = np.stack([r, g, b * 0.8 + 20], axis=-1)
        img[int(h * 0.1) : int(h * 0.35), int(w * 0.1) : int(w * 0.5)] = [230, 40, 30]
        img += rng.normal(0, 6, img.shape)
        return np.clip(np.round(img), 0, 255).astype(np.uint8)

    specs = {}
    # wide RGB PNG, larger than every CLIP input here
    Image.fromarray(picture(97, 61, 0.3), "RGB").save(os.path.join(IMAGES_DIR, "wide-97x61.png"), optimize=False)
    specs["wide-97x61.png"] = "RGB PNG, 97 x 61 (w x h)"
    # tall RGBA PNG with a varying alpha channel (the processors drop alpha)
    rgb = picture(50, 80, 1.1)
    alpha = np.tile(np.linspace(255, 40, 50).astype(np.uint8), (80, 1))[..., None]
    Image.fromarray(np.concatenate([rgb, alpha], axis=-1), "RGBA").save(os.path.join(IMAGES_DIR, "tall-50x80-rgba.png"))
    specs["tall-50x80-rgba.png"] = "RGBA PNG, 50 x 80, alpha varies"
    # square JPEG
    Image.fromarray(picture(72, 72, 2.0), "RGB").save(os.path.join(IMAGES_DIR, "square-72x72.jpg"), quality=90)
    specs["square-72x72.jpg"] = "RGB JPEG, 72 x 72, quality 90"
    # tiny palette PNG, smaller than every CLIP input (upscaled)
    small = Image.fromarray(picture(30, 20, 0.7), "RGB").quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(os.path.join(IMAGES_DIR, "small-30x20-palette.png"))
    specs["small-30x20-palette.png"] = "palette (P mode) PNG, 30 x 20, 32 colours"
    # a wide banner: picks a 1 x 3 tile grid in the NeXT fixtures
    Image.fromarray(picture(150, 40, 2.6), "RGB").save(os.path.join(IMAGES_DIR, "banner-150x40.png"))
    specs["banner-150x40.png"] = "RGB PNG, 150 x 40"
    return specs


def load_image(name):
    from PIL import Image

    img = Image.open(os.path.join(IMAGES_DIR, name))
    img.load()
    return img


# ---------------------------------------------------------------------------------------------
# Weights


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


# ---------------------------------------------------------------------------------------------
# Fixture definitions


def clip_vision_config(image_size, hidden, layers, heads, intermediate):
    return dict(
        model_type="clip_vision_model",
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=8,
        projection_dim=hidden,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        num_channels=3,
    )


def llama_text_config(hidden, layers, heads, kv_heads, intermediate):
    return dict(
        model_type="llama",
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=32000 + N_IMAGE_EXTRA_ROWS,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        hidden_act="silu",
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=32001,
    )


def mistral_text_config(hidden, layers, heads, kv_heads, intermediate):
    return dict(
        model_type="mistral",
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        vocab_size=32000 + N_IMAGE_EXTRA_ROWS,
        max_position_embeddings=32768,
        rms_norm_eps=1e-5,
        rope_theta=1000000.0,
        sliding_window=None,
        hidden_act="silu",
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=32001,
    )


TEXT_QUESTION = "Name three colours of the rainbow."
IMAGE_QUESTION = "What is shown in this picture?"
TWO_IMAGE_QUESTION = "How do these two pictures differ?"
SHORT_TEXT_QUESTION = "Count from one to five."  # text-only logits are [n, 32064] f32: kept short

FIXTURES_DEF = {
    "llava15-hf": dict(
        arch="llava",
        seed=101,
        dtype="float16",
        text=("llama", llama_text_config(hidden=32, layers=2, heads=4, kv_heads=4, intermediate=80)),
        vision=clip_vision_config(image_size=40, hidden=32, layers=3, heads=4, intermediate=64),
        tokenizer="llama",
        template=VICUNA_TEMPLATE,
        cases=[
            ("text", []),
            ("wide", ["wide-97x61.png"]),
            ("tall_rgba", ["tall-50x80-rgba.png"]),
            ("small_palette", ["small-30x20-palette.png"]),
        ],
    ),
    "next-mistral-hf": dict(
        arch="llava_next",
        seed=202,
        dtype="bfloat16",
        shards=2,
        text=("mistral", mistral_text_config(hidden=40, layers=2, heads=4, kv_heads=2, intermediate=96)),
        vision=clip_vision_config(image_size=48, hidden=40, layers=3, heads=4, intermediate=80),
        tokenizer="mistral",
        template=MISTRAL_TEMPLATE,
        text_question=SHORT_TEXT_QUESTION,
        cases=[
            ("text", []),
            ("wide", ["wide-97x61.png"]),
            ("small_palette", ["small-30x20-palette.png"]),
            ("banner_tall", ["banner-150x40.png", "tall-50x80-rgba.png"]),
        ],
    ),
    "next-vicuna-hf": dict(
        arch="llava_next",
        seed=303,
        dtype="float16",
        text=("llama", llama_text_config(hidden=32, layers=2, heads=4, kv_heads=4, intermediate=96)),
        vision=clip_vision_config(image_size=48, hidden=32, layers=3, heads=4, intermediate=96),
        tokenizer="llama",
        template=VICUNA_TEMPLATE,
        sparse_config=True,
        text_question=SHORT_TEXT_QUESTION,
        cases=[
            ("text", []),
            ("square_jpeg", ["square-72x72.jpg"]),
            ("tall_banner", ["tall-50x80-rgba.png", "banner-150x40.png"]),
        ],
    ),
    # The original layout of llava15-hf's weights; references from the llava15-hf model on
    # pad-to-square pixels. No text-only case: it would equal llava15-hf's (same weights).
    "llava15-orig": dict(
        arch="llava",
        base="llava15-hf",
        seed=404,
        tokenizer="llama",
        template=VICUNA_TEMPLATE,
        n_vocab=32000,
        cases=[
            ("wide", ["wide-97x61.png"]),
            ("tall_rgba", ["tall-50x80-rgba.png"]),
            ("small_palette", ["small-30x20-palette.png"]),
        ],
    ),
}


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


def dir_size(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


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


def prompt_for(processor, question, n_images):
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": question}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False)


def vision_tiles(model, inputs, is_next):
    """Every tile the vision tower sees, in order, as [n_tiles, 3, s, s]."""
    pv = inputs["pixel_values"]
    if not is_next:
        return pv
    from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

    counts = [
        image_size_to_num_patches(
            image_size=sz, grid_pinpoints=model.config.image_grid_pinpoints, patch_size=model.config.vision_config.image_size
        )
        for sz in inputs["image_sizes"]
    ]
    return torch_cat([pv[i, :c] for i, c in enumerate(counts)])


def torch_cat(xs):
    import torch

    return torch.cat(xs, dim=0)


def processor_dir(processor):
    return processor.fixture_dir


def top_gap(logits_row):
    import torch

    top = torch.topk(logits_row, 2).values
    return float(top[0] - top[1])


def forward_full(model, inputs, ids):
    import torch

    kw = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids), **kw).logits[0, -1]


def expand2square(img, background):
    """The original LLaVA's pad-to-square (llava/mm_utils.py), image centred."""
    from PIL import Image

    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new(img.mode, (side, side), background)
    out.paste(img, ((side - w) // 2, (side - h) // 2))
    return out


def run_case(model, processor, fx, case_name, image_names, ref_dir, pad_processor=None):
    """One reference case. With pad_processor (the original layout's CLIP image processor), the
    images are first converted to RGB and padded to a square with the mean colour, as the original
    LLaVA does for image_aspect_ratio = pad."""
    import torch
    from transformers import GenerationConfig

    is_next = fx["arch"] == "llava_next"
    question = {0: fx.get("text_question", TEXT_QUESTION), 1: IMAGE_QUESTION}.get(len(image_names), TWO_IMAGE_QUESTION)
    prompt = prompt_for(processor, question, len(image_names))
    images = [load_image(n) for n in image_names]
    pad_pixels = None
    if pad_processor is not None:
        background = tuple(int(x * 255) for x in pad_processor.image_mean)
        images = [expand2square(im.convert("RGB"), background) for im in images]
        pad_pixels = pad_processor(images=images, return_tensors="pt")["pixel_values"]
    inputs = processor(text=prompt, images=images or None, return_tensors="pt")
    if pad_pixels is not None:
        assert torch.equal(inputs["pixel_values"], pad_pixels), f"{case_name}: the two CLIP processors disagree"
    n_vocab = fx.get("n_vocab", model.config.text_config.vocab_size)
    ids = inputs["input_ids"]
    image_token = model.config.image_token_id
    if not images:
        # the Rust side tokenizes with SentencePiece rules from the GGUF vocab: the processor's
        # tokens must be exactly BOS + SentencePiece's for a text-only prompt
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=os.path.join(processor_dir(processor), "tokenizer.model"))
        want = [1] + sp.encode(prompt)
        assert ids[0].tolist() == want, f"{case_name}: transformers {ids[0].tolist()} != sentencepiece {want}"
    n_img_tok = int((ids == image_token).sum())

    captured = {}

    def grab(_mod, _args, kwargs):
        captured["inputs_embeds"] = kwargs["inputs_embeds"].detach().clone()

    hook = model.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    hook.remove()
    logits = out.logits[0]
    hidden = out.hidden_states[-1][0]
    # hidden must be the final RMSNorm output: the LM head applied to it gives the logits
    re_logits = model.lm_head(hidden)
    assert torch.allclose(re_logits, logits, atol=1e-4, rtol=1e-5), f"{case_name}: hidden is not the final norm output"
    files = {}

    def put(key, arr):
        fname = f"{case_name}.{key}.npy"
        save_npy(os.path.join(ref_dir, fname), arr)
        files[key] = fname

    put("input_ids", ids[0].numpy().astype(np.int32))
    entry = {"name": case_name, "prompt": prompt, "images": [f"images/{n}" for n in image_names]}
    if pad_pixels is not None:
        entry["preprocess"] = f"RGB, pad to square with {background} (image centred), then the CLIP processor"
    if images:
        pv = inputs["pixel_values"]
        put("pixel_values", pv.numpy().astype(np.float32))
        if is_next:
            put("image_sizes", inputs["image_sizes"].numpy().astype(np.int32))
        tiles = vision_tiles(model, inputs, is_next)
        with torch.no_grad():
            vout = model.model.vision_tower(tiles, output_hidden_states=True)
        feats = vout.hidden_states[model.config.vision_feature_layer][:, 1:]
        put("image_features", feats.numpy().astype(np.float32))
        emb = captured["inputs_embeds"][0]
        mask = ids[0] == image_token
        image_embeds = emb[mask]
        # cross-check with the model's own feature path
        with torch.no_grad():
            kw = {"image_sizes": inputs["image_sizes"]} if is_next else {}
            own = model.model.get_image_features(pixel_values=inputs["pixel_values"], **kw).pooler_output
        own = torch.cat([o.reshape(-1, o.shape[-1]) for o in own], dim=0)
        assert torch.equal(own, image_embeds), f"{case_name}: spliced embeddings differ from get_image_features"
        # projector applied to the stored features gives the base-tile rows
        with torch.no_grad():
            proj = model.model.multi_modal_projector(feats)
        assert torch.allclose(proj[0], image_embeds[: proj.shape[1]], atol=1e-5), f"{case_name}: projector mismatch"
        # re-run the language model from text embeddings + the stored image embeddings
        with torch.no_grad():
            rebuilt = model.get_input_embeddings()(ids[0]).clone()
            rebuilt[mask] = image_embeds
            lm = model.model.language_model(inputs_embeds=rebuilt[None])
            re2 = model.lm_head(lm.last_hidden_state[0])
        assert torch.allclose(re2, logits, atol=1e-4, rtol=1e-5), f"{case_name}: logits from image_embeds differ"
        put("image_embeds", image_embeds.numpy().astype(np.float32))
        put("logits", logits[-1:, :n_vocab].numpy().astype(np.float32))
        entry["n_image_tokens"] = n_img_tok
        entry["n_tiles"] = int(tiles.shape[0])
    else:
        put("logits", logits[:, :n_vocab].numpy().astype(np.float32))
    put("hidden", hidden.numpy().astype(np.float32))

    # greedy: argmax stepping on full re-computation (no cache), compared with generate()
    seq = ids
    gaps = []
    greedy = []
    for _ in range(N_GREEDY):
        last = forward_full(model, inputs, seq)
        gaps.append(top_gap(last))
        nxt = int(torch.argmax(last))
        greedy.append(nxt)
        seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    gc = GenerationConfig(do_sample=False, max_new_tokens=N_GREEDY, min_new_tokens=0, eos_token_id=None, pad_token_id=32001)
    with torch.no_grad():
        gen = model.generate(**inputs, generation_config=gc)
    gen_tokens = gen[0, ids.shape[1] :].tolist()
    assert gen_tokens == greedy, f"{case_name}: generate() {gen_tokens} != argmax stepping {greedy}"
    assert max(greedy) < 32000, f"{case_name}: greedy produced an added token: {greedy}"
    put("greedy", np.array(greedy, dtype=np.int32))
    entry.update(
        n_tokens=int(ids.shape[1]),
        greedy_text=processor.tokenizer.decode(greedy),
        greedy_min_top2_gap=round(min(gaps), 4),
        files=files,
    )
    log(
        f"  {case_name}: {ids.shape[1]} tokens ({n_img_tok} image), greedy {greedy}\n"
        f"    top1-top2 gaps {[round(g, 2) for g in gaps]}"
    )
    return entry


def make_references(name, fx, ckpt):
    import torch
    from transformers import AutoProcessor

    ref_dir = os.path.join(LLAVA_DIR, name + ".ref")
    if os.path.exists(ref_dir):
        shutil.rmtree(ref_dir)
    os.makedirs(ref_dir)
    model, info = model_class(fx).from_pretrained(ckpt, dtype=torch.float32, output_loading_info=True)
    model.eval()
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"{name}: loading the checkpoint back: {bad}"
    processor = AutoProcessor.from_pretrained(ckpt)
    processor.fixture_dir = ckpt
    assert type(processor.image_processor).__name__.endswith("Pil"), "references need the PIL image backend"
    torch.manual_seed(0)
    cases = [run_case(model, processor, fx, c, imgs, ref_dir) for c, imgs in fx["cases"]]
    write_json(
        os.path.join(ref_dir, "cases.json"),
        {"fixture": name, "checkpoint": f"llava/{name}", "generator": generator_versions(), "cases": cases},
    )
    log(f"{name}: references {dir_size(ref_dir) / 1e6:.2f} MB")
    return model, processor


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


def generator_versions():
    """Versions of what made the references, recorded in every cases.json."""
    import PIL
    import safetensors
    import sentencepiece
    import torch
    import transformers

    return {
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "python": sys.version.split()[0],
        "safetensors": safetensors.__version__,
        "sentencepiece": sentencepiece.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="fixture names to (re)build")
    args = ap.parse_args()
    try:
        import torchvision  # noqa: F401

        sys.exit("torchvision is installed: transformers would use its image backend; uninstall it")
    except ImportError:
        pass
    import torch

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    make_images()
    names = args.only or list(FIXTURES_DEF)
    os.makedirs(LLAVA_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for name in names:
            fx = FIXTURES_DEF[name]
            if fx.get("base"):
                _, clip_out = build_original_layout(name, fx, work)
                make_original_references(name, fx, clip_out)
            else:
                ckpt = build_checkpoint(name, fx, work)
                make_references(name, fx, ckpt)


if __name__ == "__main__":
    main()
