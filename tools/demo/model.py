"""The demo model's configuration, prompt format, batching and checkpoint files.

Shared by tools/train_demo.py and tools/eval_demo.py. Needs torch and transformers >= 5 (CPU), and
reuses the fixture tools' tokenizer and processor code (tools/llava_fixtures/).
"""

import os
import random
import sys

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
sys.path.insert(0, os.path.join(TOOLS, "demo"))

import scenes  # noqa: E402

DEFAULT_OUT = os.path.join(REPO, "models", "local", "demo-hf")
IMAGE_TOKEN_ID = 32000
PAD_TOKEN_ID = 32001
N_VOCAB_ROWS = 32064  # llava-hf's padded vocabulary: 32000 + <image>, <pad> and spare rows
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
PAD_RGB = tuple(int(255 * m) for m in CLIP_MEAN)  # (122, 116, 104): LLaVA's pad-to-square colour

# LLaVA-1.5's Vicuna v1 system prompt. Training puts it before 15% of the conversations, so
# the model answers the same with or without it.
SYSTEM_PROMPT = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)

# The LLaVA-1.5 (Vicuna v1) conversation format the model is trained on: an optional system prompt
# followed by a space, then "USER: <image>\n{question} ASSISTANT: {answer}</s>USER: ..." (the
# original LLaVA's separators " " and "</s>"). llava-hf's template is the same for a single
# question with the generation prompt; it ends assistant turns with " " where this one (like the
# original training data) ends them with the EOS token.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}"
    "{% elif message['role'] == 'user' %}{{ 'USER: ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}"
    "{% else %}{{ 'ASSISTANT: ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + eos_token }}{% endfor %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# The model. The 32064-row embedding and LM head dominate its size (2 x 32064 x hidden), so the
# decoder stays narrow; the CLIP tower sees 112 x 112 pixels in 28 x 28 patches (16 image tokens),
# one patch per cell of the scenes' 4 x 4 grid.
MODEL = dict(
    vision=dict(hidden=64, layers=3, heads=4, ffn=256, image=112, patch=28),
    text=dict(hidden=64, layers=3, heads=4, kv_heads=4, ffn=256, context=2048),
)


def build_config(m=MODEL):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    v, t = m["vision"], m["text"]
    vision = CLIPVisionConfig(
        hidden_size=v["hidden"],
        intermediate_size=v["ffn"],
        num_hidden_layers=v["layers"],
        num_attention_heads=v["heads"],
        image_size=v["image"],
        patch_size=v["patch"],
        projection_dim=v["hidden"],
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        num_channels=3,
    )
    text = LlamaConfig(
        hidden_size=t["hidden"],
        intermediate_size=t["ffn"],
        num_hidden_layers=t["layers"],
        num_attention_heads=t["heads"],
        num_key_value_heads=t["kv_heads"],
        vocab_size=N_VOCAB_ROWS,
        max_position_embeddings=t["context"],
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        hidden_act="silu",
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=PAD_TOKEN_ID,
    )
    cfg = LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=IMAGE_TOKEN_ID,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        tie_word_embeddings=False,
    )
    cfg.pad_token_id = PAD_TOKEN_ID
    cfg.image_seq_length = (v["image"] // v["patch"]) ** 2
    return cfg


def build_tokenizer_and_processor(cfg):
    from llava_fixtures.hf_checkpoint import build_processor
    from llava_fixtures.vocab import load_tokenizer, mistral_spm_path

    tokenizer = load_tokenizer(mistral_spm_path(), "mistral", cfg.text_config.max_position_embeddings)
    processor = build_processor({"arch": "llava", "template": CHAT_TEMPLATE}, cfg, tokenizer)
    return tokenizer, processor


def save_checkpoint(model, processor, cfg, out):
    """A llava-hf hub-style directory: f16 model.safetensors with hub tensor names, config,
    tokenizer (SentencePiece model + hub-form configs), processor configs and chat template."""
    import shutil

    import torch
    from llava_fixtures.hf_checkpoint import rename_to_hub_names, write_preprocessor_config
    from llava_fixtures.vocab import mistral_spm_path, write_tokenizer_files

    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    half = model.to(torch.float16)
    half.config.dtype = "float16"
    half.save_pretrained(out)
    rename_to_hub_names(out, 1)
    processor.save_pretrained(out)
    if os.path.exists(os.path.join(out, "tokenizer.json")):
        os.remove(os.path.join(out, "tokenizer.json"))  # 3.6 MB, rebuilt from tokenizer.model
    write_tokenizer_files(out, mistral_spm_path(), "mistral", cfg.text_config.max_position_embeddings)
    write_preprocessor_config(out)


# ---------------------------------------------------------------------------------------------
# Conversations and batches


def caption_text(scene):
    """Stage 1 (alignment) sample, in LLaVA's "plain" format: the image, then its description."""
    return [("<image>\n", " " + scenes.answer(scene, "describe"))]


def conversation_text(scene, rng, max_turns=3):
    """Stage 2 (instruction) sample: 1..max_turns questions about the scene in the Vicuna format,
    as a list of (prompt piece, answer) pairs; the loss covers the answers (and their EOS)."""
    n_turns = rng.randint(1, max_turns)
    pool = scenes.KINDS + ["colour"]  # colour questions have the most variety
    kinds = rng.sample(pool, n_turns)
    pieces = []
    for t, kind in enumerate(kinds):
        q, a = scenes.question(scene, kind, rng, canonical=rng.random() < 0.5)
        if t == 0:
            head = (SYSTEM_PROMPT + " " if rng.random() < 0.15 else "") + "USER: <image>\n"
        else:
            head = "USER: "
        pieces.append((head + q + " ASSISTANT:", " " + a))
    return pieces


def tokenize_pieces(tokenizer, pieces, n_image_tokens):
    """Token ids and a 0/1 loss mask for [(prompt, answer), ...]; each answer is followed by the
    EOS token. The ids are those of the whole text tokenized at once (checked to extend each
    prefix's tokenization), with <image> expanded to n_image_tokens ids as the processor does."""
    text = ""
    ids, mask = [], []
    for prompt, ans in pieces:
        for part, is_answer in ((prompt, False), (ans + "</s>", True)):
            text += part
            full = tokenizer(text)["input_ids"]
            if full[: len(ids)] != ids:
                raise RuntimeError(f"tokenization of {text!r} does not extend its prefix's")
            mask += [int(is_answer)] * (len(full) - len(ids))
            ids = full
    out_ids, out_mask = [], []
    for i, m in zip(ids, mask):
        k = n_image_tokens if i == IMAGE_TOKEN_ID else 1
        out_ids += [i] * k
        out_mask += [m] * k
    return out_ids, out_mask


PAD_LABEL = 255


def augment(img, labels, rng, pad_prob, jpeg_prob):
    """Training-only variations: LLaVA's pad-to-square (the original LLaVA and llama.cpp pad where
    llava-hf centre-crops) and JPEG re-encoding. The label map (if any) is padded alike."""
    import io

    from PIL import Image

    if rng.random() < pad_prob and img.width != img.height:
        side = max(img.size)
        at = ((side - img.width) // 2, (side - img.height) // 2)
        sq = Image.new("RGB", (side, side), PAD_RGB)
        sq.paste(img, at)
        img = sq
        if labels is not None:
            sq = Image.new("L", (side, side), PAD_LABEL)
            sq.paste(labels, at)
            labels = sq
    if rng.random() < jpeg_prob:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=rng.randint(60, 95))
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
    return img, labels


def patch_targets(scene, labels, image_size, patch):
    """Per-patch targets for the vision pretraining, on the processor's geometry (shortest edge
    resized to the image size, centre crop): the kind (0 = background, 1 + index in SHAPES) and the
    colour (index in COLOURS, or len(COLOURS) + index in BACKGROUNDS for background patches) of
    what covers the patch; a shape counts when it covers at least 20% of the patch. Padding
    patches get -100 (ignored)."""
    import numpy as np
    from PIL import Image

    w, h = labels.size
    if w <= h:
        nw, nh = image_size, int(image_size * h / w)
    else:
        nw, nh = int(image_size * w / h), image_size
    lab = np.asarray(labels.resize((nw, nh), Image.NEAREST))
    top, left = (nh - image_size) // 2, (nw - image_size) // 2
    lab = lab[top : top + image_size, left : left + image_size]
    g = image_size // patch
    tiles = lab.reshape(g, patch, g, patch).transpose(0, 2, 1, 3).reshape(g * g, patch * patch)
    colours, backgrounds = list(scenes.COLOURS), list(scenes.BACKGROUNDS)
    kinds, cols = [], []
    for t in tiles:
        cover = [(np.count_nonzero(t == i + 1), i) for i in range(len(scene["shapes"]))]
        best, i = max(cover) if cover else (0, 0)
        if best >= 0.2 * t.size:
            sh = scene["shapes"][i]
            kinds.append(1 + scenes.SHAPES.index(sh["kind"]))
            cols.append(colours.index(sh["colour"]))
        elif np.count_nonzero(t == PAD_LABEL) > t.size // 2:
            kinds.append(-100)
            cols.append(-100)
        else:
            kinds.append(0)
            cols.append(len(colours) + backgrounds.index(scene["background"]))
    return kinds, cols


def make_vision_batch(processor, cfg, seed, step, batch_size, pad_prob=0.0, jpeg_prob=0.25):
    """Stage 0 batch: pixels, per-patch kind and colour targets, and the shape count (0..2)."""
    import torch

    rng = random.Random(f"{seed}/0/{step}")
    images, kinds, cols, counts = [], [], [], []
    v = cfg.vision_config
    for b in range(batch_size):
        scene = scenes.make_scene(seed * 1000, step * batch_size + b)
        img, labels = augment(scenes.render(scene), scenes.render_labels(scene), rng, pad_prob, jpeg_prob)
        images.append(img)
        k, c = patch_targets(scene, labels, v.image_size, v.patch_size)
        kinds.append(k)
        cols.append(c)
        counts.append(len(scene["shapes"]) - 1)
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    return pixels, torch.tensor(kinds), torch.tensor(cols), torch.tensor(counts)


def make_batch(tokenizer, processor, cfg, seed, step, batch_size, stage, pad_prob=0.0, jpeg_prob=0.25):
    """Batch `step` of stage 1 or 2: fresh scenes (seeded by seed, stage and step), their pixels
    through the processor's image half, right-padded ids, attention mask and loss mask."""
    import torch

    rng = random.Random(f"{seed}/{stage}/{step}")
    n_img = cfg.image_seq_length
    images, rows = [], []
    for b in range(batch_size):
        scene = scenes.make_scene(seed * 1000 + stage, step * batch_size + b)
        images.append(augment(scenes.render(scene), None, rng, pad_prob, jpeg_prob)[0])
        pieces = caption_text(scene) if stage == 1 else conversation_text(scene, rng)
        rows.append(tokenize_pieces(tokenizer, pieces, n_img))
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    n = max(len(r[0]) for r in rows)
    ids = torch.full((batch_size, n), PAD_TOKEN_ID, dtype=torch.long)
    attn = torch.zeros((batch_size, n), dtype=torch.long)
    loss_mask = torch.zeros((batch_size, n), dtype=torch.bool)
    for b, (i, m) in enumerate(rows):
        ids[b, : len(i)] = torch.tensor(i)
        attn[b, : len(i)] = 1
        loss_mask[b, : len(m)] = torch.tensor(m, dtype=torch.bool)
    return ids, attn, loss_mask, pixels


def prompt_for(question, system=False):
    """The single-question prompt (what the chat template gives with the generation prompt)."""
    return (SYSTEM_PROMPT + " " if system else "") + "USER: <image>\n" + question + " ASSISTANT:"


def answer_token_ids(tokenizer, n_scenes=2000):
    """Every token id that can appear in an answer (and EOS): the only rows of the LM head that
    training moves. Collected from the answers of every kind over many scenes and every shape."""
    ids = {tokenizer.eos_token_id}
    for i in range(n_scenes):
        scene = scenes.make_scene(424242, i)
        texts = [scenes.answer(scene, k) for k in ("shape", "count", "background", "describe")]
        texts += [scenes.answer(scene, "colour", s["kind"]) for s in scene["shapes"]]
        texts += ["Yes.", "No."]
        for t in texts:
            # as in a conversation: the answer follows "ASSISTANT:"
            full = tokenizer("ASSISTANT: " + t)["input_ids"]
            head = tokenizer("ASSISTANT:")["input_ids"]
            assert full[: len(head)] == head
            ids.update(full[len(head) :])
    return sorted(ids)
