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
    return [("<image>\n", " " + scenes.answer(scene, "describe"), "describe", None)]


# Stage 2's question mix: every kind once, plus a second chance for colour (the most varied
# kind) and for exists (whose one-token Yes/No decision is otherwise a sliver of the loss).
STAGE2_POOL = scenes.KINDS + ["colour", "exists"]
# Loss weight of each answer's tokens, by question kind. Exists answers are weighted up: with
# every token weighted alike, their single deciding token was ~2% of the stage 2 loss (describe
# answers are ~20 tokens each) and the model stayed near chance on them (59% held out).
LOSS_WEIGHT = {kind: 1.0 for kind in scenes.KINDS} | {"exists": 4.0}


def conversation_text(scene, rng, max_turns=3):
    """Stage 2 (instruction) sample: 1..max_turns questions about the scene in the Vicuna format,
    as a list of (prompt piece, answer, kind, probe): the loss covers the answers (and their
    EOS); probe is, for exists questions, (shape asked about, whether it is in the scene)."""
    n_turns = rng.randint(1, max_turns)
    kinds = rng.sample(STAGE2_POOL, n_turns)
    pieces = []
    for t, kind in enumerate(kinds):
        q, a = scenes.question(scene, kind, rng, canonical=rng.random() < 0.5)
        if t == 0:
            head = (SYSTEM_PROMPT + " " if rng.random() < 0.15 else "") + "USER: <image>\n"
        else:
            head = "USER: "
        probe = None
        if kind == "exists":
            (shape,) = [k for k in scenes.SHAPES if f" {k}" in q]
            probe = (shape, a == "Yes.")
        pieces.append((head + q + " ASSISTANT:", " " + a, kind, probe))
    return pieces


def tokenize_pieces(tokenizer, pieces, n_image_tokens):
    """Token ids, per token the answer it belongs to, and per token a probe label, for
    [(prompt, answer, kind, probe), ...]. Answer index: -1 on prompt tokens, i on the tokens of
    the i-th answer (and its EOS, which follows every answer). Probe label: on the token of the
    shape word in an exists question, 1 if that shape is in the scene, else 0; -1 elsewhere. The
    ids are those of the whole text tokenized at once (checked to extend each prefix's
    tokenization), with <image> expanded to n_image_tokens ids as the processor does."""
    text = ""
    ids, answer_of, probe = [], [], []
    for n, (prompt, ans, _kind, prb) in enumerate(pieces):
        for part, owner in ((prompt, -1), (ans + "</s>", n)):
            text += part
            full = tokenizer(text)["input_ids"]
            if full[: len(ids)] != ids:
                raise RuntimeError(f"tokenization of {text!r} does not extend its prefix's")
            new = full[len(ids) :]
            answer_of += [owner] * len(new)
            labels = [-1] * len(new)
            if owner == -1 and prb is not None:
                word = tokenizer("a " + prb[0])["input_ids"][-1]
                if word not in new:
                    raise RuntimeError(f"no token {word} for {prb[0]!r} in {part!r}")
                labels[len(new) - 1 - new[::-1].index(word)] = int(prb[1])
            probe += labels
            ids = full
    out_ids, out_answer, out_probe = [], [], []
    for i, m, p in zip(ids, answer_of, probe):
        k = n_image_tokens if i == IMAGE_TOKEN_ID else 1
        out_ids += [i] * k
        out_answer += [m] * k
        out_probe += [p] * k
    return out_ids, out_answer, out_probe


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
    through the processor's image half, right-padded ids, attention mask, per token the answer
    it belongs to (-1 outside answers; numbered across the batch) with, per answer, its question
    kind (index in scenes.KINDS), per token the probe label (see tokenize_pieces), and pixels."""
    import torch

    rng = random.Random(f"{seed}/{stage}/{step}")
    n_img = cfg.image_seq_length
    images, rows, answer_kinds = [], [], []
    for b in range(batch_size):
        scene = scenes.make_scene(seed * 1000 + stage, step * batch_size + b)
        images.append(augment(scenes.render(scene), None, rng, pad_prob, jpeg_prob)[0])
        pieces = caption_text(scene) if stage == 1 else conversation_text(scene, rng)
        ids, answer_of, probe = tokenize_pieces(tokenizer, pieces, n_img)
        first = len(answer_kinds)
        rows.append((ids, [a + first if a >= 0 else -1 for a in answer_of], probe))
        answer_kinds += [scenes.KINDS.index(piece[2]) for piece in pieces]
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    n = max(len(r[0]) for r in rows)
    ids = torch.full((batch_size, n), PAD_TOKEN_ID, dtype=torch.long)
    attn = torch.zeros((batch_size, n), dtype=torch.long)
    answer_of = torch.full((batch_size, n), -1, dtype=torch.long)
    probe = torch.full((batch_size, n), -1, dtype=torch.long)
    for b, (i, a, p) in enumerate(rows):
        ids[b, : len(i)] = torch.tensor(i)
        attn[b, : len(i)] = 1
        answer_of[b, : len(a)] = torch.tensor(a)
        probe[b, : len(p)] = torch.tensor(p)
    return ids, attn, answer_of, torch.tensor(answer_kinds), probe, pixels


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
