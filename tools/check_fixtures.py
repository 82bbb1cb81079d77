#!/usr/bin/env python3
"""Independent check of tests/fixtures/llava: recomputes reference outputs from the checkpoint
FILES alone (config.json + weights), with hand-written float64 math rather than transformers'
modules, and compares them with the stored references.

Covers: the text model (hidden + logits of every text-only case, and the image cases' hidden
states fed with the stored image_embeds), the CLIP tower (image_features of every tile from the
stored pixel_values) and the projector (base-tile rows of image_embeds). NeXT packing/unpadding
is not re-derived here (the Rust side does that against image_embeds).

    /work/venv/bin/python tools/check_fixtures.py
"""

import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LLAVA = os.path.join(REPO, "tests", "fixtures", "llava")


def load_weights(d):
    if os.path.exists(os.path.join(d, "pytorch_model.bin")):
        sd = torch.load(os.path.join(d, "pytorch_model.bin"), map_location="cpu", weights_only=True)
    elif os.path.exists(os.path.join(d, "model.safetensors.index.json")):
        with open(os.path.join(d, "model.safetensors.index.json")) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        sd = {}
        for f in files:
            sd.update(load_file(os.path.join(d, f)))
    else:
        sd = load_file(os.path.join(d, "model.safetensors"))
    return {k: v.to(torch.float64) for k, v in sd.items()}


def text_params(cfg):
    """Hyper-parameters with transformers' defaults for what sparse configs leave out."""
    t = cfg.get("text_config", cfg)
    heads = t["num_attention_heads"]
    theta = t.get("rope_theta") or (t.get("rope_parameters") or {}).get("rope_theta") or 10000.0
    return dict(
        hidden=t["hidden_size"],
        layers=t["num_hidden_layers"],
        heads=heads,
        kv_heads=t.get("num_key_value_heads", heads),
        head_dim=t.get("head_dim") or t["hidden_size"] // heads,
        eps=t.get("rms_norm_eps", 1e-6),
        theta=theta,
    )


def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, theta):
    # Hugging Face layout: rotate-half over the two halves of each head
    n, _, d = x.shape
    inv = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None]
    cos = torch.cat([ang.cos(), ang.cos()], -1)[:, None]
    sin = torch.cat([ang.sin(), ang.sin()], -1)[:, None]
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def llm_forward(w, p, prefix, emb):
    """emb: [n, hidden] input embeddings -> (final-norm hidden, logits)."""
    n = emb.shape[0]
    x = emb
    mask = torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(p["layers"]):
        L = f"{prefix}layers.{i}."
        h = rms_norm(x, w[L + "input_layernorm.weight"], p["eps"])
        q = (h @ w[L + "self_attn.q_proj.weight"].T).view(n, p["heads"], p["head_dim"])
        k = (h @ w[L + "self_attn.k_proj.weight"].T).view(n, p["kv_heads"], p["head_dim"])
        v = (h @ w[L + "self_attn.v_proj.weight"].T).view(n, p["kv_heads"], p["head_dim"])
        q, k = rope(q, p["theta"]), rope(k, p["theta"])
        rep = p["heads"] // p["kv_heads"]
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        att = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(p["head_dim"]) + mask
        o = torch.einsum("hqk,khd->qhd", att.softmax(-1), v).reshape(n, -1)
        x = x + o @ w[L + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[L + "post_attention_layernorm.weight"], p["eps"])
        g = h @ w[L + "mlp.gate_proj.weight"].T
        u = h @ w[L + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ w[L + "mlp.down_proj.weight"].T
    hidden = rms_norm(x, w[prefix + "norm.weight"], p["eps"])
    return hidden


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def clip_features(w, vc, pixels, prefix, feature_layer):
    """pixels [t, 3, s, s] -> hidden state at feature_layer, class token dropped."""
    hidden, heads, ps = vc["hidden_size"], vc["num_attention_heads"], vc["patch_size"]
    eps = vc.get("layer_norm_eps", 1e-5)
    assert vc.get("hidden_act", "quick_gelu") == "quick_gelu"
    x = torch.nn.functional.conv2d(pixels, w[prefix + "embeddings.patch_embedding.weight"], stride=ps)
    x = x.flatten(2).transpose(1, 2)
    cls = w[prefix + "embeddings.class_embedding"].expand(x.shape[0], 1, hidden)
    x = torch.cat([cls, x], 1) + w[prefix + "embeddings.position_embedding.weight"][None]
    x = layer_norm(x, w[prefix + "pre_layrnorm.weight"], w[prefix + "pre_layrnorm.bias"], eps)
    states = [x]
    hd = hidden // heads
    for i in range(vc["num_hidden_layers"]):
        L = f"{prefix}encoder.layers.{i}."

        def lin(t, name):
            return t @ w[L + name + ".weight"].T + w[L + name + ".bias"]

        h = layer_norm(x, w[L + "layer_norm1.weight"], w[L + "layer_norm1.bias"], eps)
        t, n, _ = h.shape
        q = lin(h, "self_attn.q_proj").view(t, n, heads, hd)
        k = lin(h, "self_attn.k_proj").view(t, n, heads, hd)
        v = lin(h, "self_attn.v_proj").view(t, n, heads, hd)
        att = torch.einsum("tqhd,tkhd->thqk", q, k) / math.sqrt(hd)
        o = torch.einsum("thqk,tkhd->tqhd", att.softmax(-1), v).reshape(t, n, hidden)
        x = x + lin(o, "self_attn.out_proj")
        h = layer_norm(x, w[L + "layer_norm2.weight"], w[L + "layer_norm2.bias"], eps)
        h = lin(h, "mlp.fc1")
        x = x + lin(h * torch.sigmoid(1.702 * h), "mlp.fc2")
        states.append(x)
    return states[feature_layer][:, 1:]


def best_resolution(h, w, pinpoints):
    """LLaVA-NeXT's select_best_resolution, as docs/preprocessing.md states it."""
    best, best_eff, best_waste = None, -1, None
    for ph, pw in pinpoints:
        scale = min(pw / w, ph / h)
        dw, dh = int(w * scale), int(h * scale)
        eff = min(dw * dh, w * h)
        waste = ph * pw - eff
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (ph, pw), eff, waste
    return best


def pack_next(feats, sizes, pinpoints, tile, newline):
    """Projected tile features [t, g*g, d] of all images -> the spliced sequence: per image the
    base tile, then the unpadded grid map with a newline after every row (preprocessing.md)."""
    g = int(round(math.sqrt(feats.shape[1])))
    out, at = [], 0
    for h, w in sizes:
        ph, pw = best_resolution(h, w, pinpoints)
        rows, cols = ph // tile, pw // tile
        base = feats[at]
        grid = feats[at + 1 : at + 1 + rows * cols].reshape(rows, cols, g, g, -1)
        at += 1 + rows * cols
        m = grid.permute(0, 2, 1, 3, 4).reshape(rows * g, cols * g, -1)
        cur_h, cur_w = m.shape[:2]
        if w / h > cur_w / cur_h:
            new_h = int(round(h * cur_w / w, 7))
            pad = (cur_h - new_h) // 2
            m = m[pad : cur_h - pad]
        else:
            new_w = int(round(w * cur_h / h, 7))
            pad = (cur_w - new_w) // 2
            m = m[:, pad : cur_w - pad]
        m = torch.cat([m, newline.expand(m.shape[0], 1, -1)], 1).reshape(-1, m.shape[-1])
        out += [base, m]
    assert at == feats.shape[0], "tile count"
    return torch.cat(out)


def clip_pixels(path, size, pad):
    """LLaVA-1.5 preprocessing with Pillow alone: RGB, (pad to square with the mean colour),
    resize the shortest edge with bicubic, centre crop, rescale, normalise.

    RGB conversion differs between the two: transformers composites any transparency onto WHITE,
    the original LLaVA (pad) calls Image.convert("RGB"), which just drops alpha."""
    from PIL import Image

    mean = np.array([0.48145466, 0.4578275, 0.40821073])
    std = np.array([0.26862954, 0.26130258, 0.27577711])
    img = Image.open(path)
    has_alpha = "A" in img.getbands() or img.info.get("transparency") is not None
    if has_alpha and not pad:
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img.convert("RGBA"))
    img = img.convert("RGB")
    if pad:
        w, h = img.size
        side = max(w, h)
        sq = Image.new("RGB", (side, side), tuple(int(x * 255) for x in mean))
        sq.paste(img, ((side - w) // 2, (side - h) // 2))
        img = sq
    w, h = img.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    img = img.resize((nw, nh), Image.BICUBIC)
    top, left = (nh - size) // 2, (nw - size) // 2
    arr = np.asarray(img, dtype=np.float64)[top : top + size, left : left + size] / 255.0
    return torch.from_numpy(((arr - mean) / std).transpose(2, 0, 1).copy())


def close(name, got, want, tol):
    want = torch.from_numpy(np.asarray(want)).to(torch.float64)
    err = float((got - want).abs().max())
    scale = float(want.abs().max())
    ok = err <= tol * max(1.0, scale)
    print(f"    {'ok ' if ok else 'BAD'} {name}: max |diff| {err:.2e} (max |ref| {scale:.2f})")
    return ok


def check(name):
    ref_dir = os.path.join(LLAVA, name + ".ref")
    with open(os.path.join(ref_dir, "cases.json")) as f:
        cases = json.load(f)
    ckpt = os.path.join(REPO, "tests", "fixtures", cases["checkpoint"])
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    w = load_weights(ckpt)
    orig = "LlavaLlamaForCausalLM" in cfg["architectures"]
    if orig:
        prefix, head, embed = "model.", "lm_head.weight", "model.embed_tokens.weight"
        proj = ["model.mm_projector.0", "model.mm_projector.2"]
        clip_dir = os.path.join(REPO, "tests", "fixtures", cases["vision_tower"])
        with open(os.path.join(clip_dir, "config.json")) as f:
            vc = json.load(f)["vision_config"]
        vw = {k: v.to(torch.float64) for k, v in load_file(os.path.join(clip_dir, "model.safetensors")).items()}
        vprefix, layer = "vision_model.", cfg["mm_vision_select_layer"]
        w.update(vw)
    else:
        prefix, head, embed = "language_model.model.", "language_model.lm_head.weight", "language_model.model.embed_tokens.weight"
        proj = ["multi_modal_projector.linear_1", "multi_modal_projector.linear_2"]
        vc, vprefix, layer = cfg["vision_config"], "vision_tower.vision_model.", cfg.get("vision_feature_layer", -2)
    p = text_params(cfg)
    ok = True
    print(f"{name}: {p}")
    for case in cases["cases"]:
        print(f"  {case['name']}")
        f = {k: np.load(os.path.join(ref_dir, v)) for k, v in case["files"].items()}
        ids = torch.from_numpy(f["input_ids"].astype(np.int64))
        img = ids == 32000
        emb = w[embed][ids.clamp(max=w[embed].shape[0] - 1)].clone()
        if "image_embeds" in f:
            emb[img] = torch.from_numpy(f["image_embeds"]).to(torch.float64)
            pv = torch.from_numpy(f["pixel_values"]).to(torch.float64)
            if pv.dim() == 4:
                mine = torch.stack(
                    [
                        clip_pixels(os.path.join(REPO, "tests", "fixtures", im), vc["image_size"], orig)
                        for im in case["images"]
                    ]
                )
                ok &= close("pixel_values (Pillow)", mine, f["pixel_values"], 1e-5)
            sizes = f["image_sizes"].tolist() if "image_sizes" in f else None
            if pv.dim() == 5:  # NeXT: the real tiles of each image (1 base + the grid)
                counts = []
                for hh, ww in sizes:
                    ph, pw = best_resolution(hh, ww, cfg["image_grid_pinpoints"])
                    counts.append(1 + (ph // vc["image_size"]) * (pw // vc["image_size"]))
                pv = torch.cat([pv[i, :c] for i, c in enumerate(counts)])
            feats = clip_features(w, vc, pv, vprefix, layer)
            ok &= close("image_features", feats, f["image_features"], 1e-4)
            h = feats @ w[proj[0] + ".weight"].T + w[proj[0] + ".bias"]
            h = torch.nn.functional.gelu(h) @ w[proj[1] + ".weight"].T + w[proj[1] + ".bias"]
            if sizes is None:
                h = h.reshape(-1, h.shape[-1])
            else:
                h = pack_next(h, sizes, cfg["image_grid_pinpoints"], vc["image_size"], w["image_newline"])
            ok &= close("image_embeds", h, f["image_embeds"], 1e-4)
        hidden = llm_forward(w, p, prefix, emb)
        ok &= close("hidden", hidden, f["hidden"], 1e-4)
        logits = hidden @ w[head].T
        want = f["logits"]
        got = logits if want.shape[0] == logits.shape[0] else logits[-1:]
        ok &= close("logits", got[:, : want.shape[1]], want, 1e-4)
        argmax = int(got[-1].argmax())
        if argmax != int(f["greedy"][0]):
            print(f"    BAD first greedy token {argmax} != {f['greedy'][0]}")
            ok = False
    return ok


def main():
    names = sorted(d[: -len(".ref")] for d in os.listdir(LLAVA) if d.endswith(".ref"))
    results = {n: check(n) for n in names}
    bad = [n for n, r in results.items() if not r]
    print(f"{len(names) - len(bad)} passed, {len(bad)} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
