#!/usr/bin/env python3
"""Reference outputs for llava-rs' image preprocessing, from Pillow and transformers (PIL backend).

Writes tests/fixtures/preprocess/ (small; regenerate with this script, needs pillow, numpy and
transformers, no torch, no torchvision):
  - resize.json + resize.bin: Pillow `Image.resize(..., BICUBIC)` of generated RGB images for many
    size pairs, up and down. Outputs up to 4096 pixels are stored in resize.bin; larger ones by
    their FNV-1a 64 hash.
  - images/: small PNG, GIF, BMP, WebP (lossless) and JPEG files, some with alpha or palettes;
    decode.json: the RGB bytes transformers' `convert_to_rgb` makes of each (hash + mean), as the
    processors see an `Image.open` result.
  - pixels.json + pixels.bin: `pixel_values` of transformers' CLIPImageProcessorPil (crop),
    the original LLaVA's expand2square + CLIPImageProcessorPil (pad) and
    LlavaNextImageProcessorPil (anyres), for a tiny 28-px model (stored whole) and the real 336-px
    settings (hashed).
  - anyres.json: LLaVA-NeXT layouts and image-token counts for many image sizes, with the real
    pinpoints (336-px model) and tiny ones, from transformers' own functions.

The generated images come from a xorshift32 stream that tests/vision_preprocess.rs reproduces.
"""

import io
import json
import math
import os
import sys
from types import SimpleNamespace

import numpy as np
from PIL import Image

os.environ.setdefault("TRANSFORMERS_NO_TORCHVISION", "1")
from transformers.image_processing_utils import get_patch_output_size, select_best_resolution  # noqa: E402
from transformers.image_transforms import convert_to_rgb  # noqa: E402
from transformers.image_utils import ChannelDimension  # noqa: E402
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil  # noqa: E402
from transformers.models.llava_next.image_processing_pil_llava_next import (  # noqa: E402
    LlavaNextImageProcessorPil,
)
from transformers.models.llava_next.processing_llava_next import LlavaNextProcessor  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "preprocess")
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
REAL_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
TINY = 28  # a tiny CLIP: 28 px, patch 14, 2 x 2 features per tile
TINY_PINPOINTS = [[h // 12, w // 12] for h, w in REAL_PINPOINTS]


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def xorshift_bytes(seed: int, n: int) -> np.ndarray:
    """n bytes: the top byte of successive xorshift32 states (13, 17, 5)."""
    state = (seed * 2654435761 + 12345) & 0xFFFFFFFF or 1
    out = np.empty(n, dtype=np.uint8)
    for i in range(n):
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        out[i] = state >> 24
    return out


def pattern(seed: int, w: int, h: int, kind: str) -> np.ndarray:
    """[h, w, 3] uint8. noise: every sample random; blocks: random 5 x 7 blocks (sharp edges,
    so the cubic's overshoot hits the clipping); smooth: gradients plus a little noise."""
    if kind == "noise":
        return xorshift_bytes(seed, w * h * 3).reshape(h, w, 3)
    if kind == "blocks":
        bw, bh = (w + 4) // 5, (h + 6) // 7
        cells = xorshift_bytes(seed, bw * bh * 3).reshape(bh, bw, 3)
        ys, xs = np.arange(h) // 7, np.arange(w) // 5
        return cells[ys][:, xs]
    if kind == "smooth":
        noise = xorshift_bytes(seed, w * h * 3).reshape(h, w, 3).astype(np.int64)
        y = np.arange(h)[:, None, None]
        x = np.arange(w)[None, :, None]
        c = np.arange(3)[None, None, :]
        return ((x * 255 // max(w - 1, 1) + y * 97 // max(h - 1, 1) + c * 40 + noise // 16) % 256).astype(
            np.uint8
        )
    raise ValueError(kind)


RESIZE_CASES = [
    # (in_w, in_h, out_w, out_h, kind): identity, up, down, mixed, extreme ratios
    (1, 1, 1, 1, "noise"),
    (1, 1, 5, 3, "noise"),
    (2, 3, 7, 1, "noise"),
    (5, 5, 5, 5, "noise"),
    (7, 5, 14, 10, "noise"),
    (13, 11, 28, 28, "noise"),
    (28, 28, 13, 11, "noise"),
    (31, 17, 3, 2, "noise"),
    (64, 48, 28, 21, "blocks"),
    (64, 48, 56, 42, "blocks"),
    (48, 64, 64, 48, "blocks"),
    (40, 30, 41, 31, "noise"),
    (41, 31, 40, 30, "noise"),
    (17, 9, 51, 27, "blocks"),
    (100, 3, 10, 30, "noise"),
    (3, 100, 30, 10, "noise"),
    (64, 64, 1, 1, "noise"),
    (64, 64, 2, 64, "smooth"),
    (64, 64, 64, 2, "smooth"),
    (60, 45, 28, 28, "smooth"),
    (45, 60, 28, 37, "smooth"),
    (57, 57, 56, 56, "noise"),
    (55, 55, 56, 56, "noise"),
    (90, 120, 21, 28, "blocks"),
    (120, 90, 56, 42, "blocks"),
    (150, 64, 56, 24, "smooth"),
    (33, 66, 28, 56, "noise"),
    (9, 9, 60, 60, "blocks"),
    (200, 100, 45, 17, "noise"),
    (23, 29, 29, 23, "noise"),
    # real sizes, stored as hashes
    (640, 480, 448, 336, "smooth"),
    (480, 640, 336, 448, "blocks"),
    (500, 375, 336, 336, "noise"),
    (120, 90, 336, 336, "blocks"),
    (1000, 750, 672, 504, "smooth"),
    (333, 500, 336, 504, "noise"),
    (2000, 40, 336, 6, "noise"),
]

STORE_LIMIT = 4096  # pixels


def make_resize_refs():
    cases, blob = [], bytearray()
    for i, (iw, ih, ow, oh, kind) in enumerate(RESIZE_CASES):
        seed = 1000 + i
        src = pattern(seed, iw, ih, kind)
        out = np.asarray(Image.fromarray(src, "RGB").resize((ow, oh), resample=Image.BICUBIC))
        assert out.shape == (oh, ow, 3)
        raw = out.tobytes()
        case = dict(in_w=iw, in_h=ih, out_w=ow, out_h=oh, kind=kind, seed=seed, fnv64=fnv1a64(raw))
        if ow * oh <= STORE_LIMIT:
            case["offset"] = len(blob)
            blob += raw
        cases.append(case)
    with open(os.path.join(OUT, "resize.bin"), "wb") as f:
        f.write(blob)
    write_json("resize.json", {"cases": cases})


def save_images():
    """Small test images in every format, some with alpha/palette/16-bit samples."""
    d = os.path.join(OUT, "images")
    os.makedirs(d, exist_ok=True)
    files = []

    def save(name, im, **kw):
        im.save(os.path.join(d, name), **kw)
        files.append(name)

    rgb = Image.fromarray(pattern(7, 45, 30, "smooth"), "RGB")
    save("rgb_45x30.png", rgb)
    save("tall_20x50.png", Image.fromarray(pattern(8, 20, 50, "blocks"), "RGB"))
    save("rgb_45x30.bmp", rgb)
    save("rgb_45x30.webp", rgb, lossless=True)
    save("rgb_45x30.jpg", rgb, quality=90, subsampling=0)
    save("rgb_45x30_420.jpg", rgb, quality=75, subsampling=2)
    rgba = np.concatenate([pattern(9, 33, 21, "noise"), pattern(10, 33, 21, "blocks")[:, :, :1]], axis=2)
    save("rgba_33x21.png", Image.fromarray(rgba, "RGBA"))
    la = np.stack([pattern(11, 19, 12, "smooth")[:, :, 0], pattern(12, 19, 12, "noise")[:, :, 0]], axis=2)
    save("la_19x12.png", Image.fromarray(la, "LA"))
    save("grey_19x12.png", Image.fromarray(pattern(13, 19, 12, "smooth")[:, :, 0], "L"))
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    save("palette_45x30.png", pal)
    pal_t = pal.copy()
    pal_t.info["transparency"] = 3
    save("palette_trns_45x30.png", pal_t, transparency=3)
    save("palette_45x30.gif", pal)
    g16 = (pattern(14, 11, 7, "noise")[:, :, 0].astype(np.uint16) * 3)
    save("grey16_11x7.png", Image.fromarray(g16))
    return files


def make_decode_refs(files):
    """Per file: the RGB of transformers' convert_to_rgb (alpha composited onto white) and of
    Pillow's convert("RGB") (alpha dropped: the original LLaVA), stored whole (all are small)."""
    refs, blob = [], bytearray()
    for name in files:
        with Image.open(os.path.join(OUT, "images", name)) as im:
            im.load()
            composited = convert_to_rgb(im, return_numpy=True)
            dropped = np.asarray(im.convert("RGB"))
        assert composited.dtype == np.uint8 and composited.shape == dropped.shape
        ref = dict(file=name, width=composited.shape[1], height=composited.shape[0])
        for key, rgb in (("composited", composited), ("dropped", dropped)):
            ref[key] = dict(offset=len(blob), fnv64=fnv1a64(rgb.tobytes()))
            blob += rgb.tobytes()
        refs.append(ref)
    with open(os.path.join(OUT, "decode.bin"), "wb") as f:
        f.write(blob)
    write_json("decode.json", {"images": refs})


def expand2square(pil_img, background_color):
    """The original LLaVA's (llava/mm_utils.py) padding."""
    width, height = pil_img.size
    if width == height:
        return pil_img
    if width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    result = Image.new(pil_img.mode, (height, height), background_color)
    result.paste(pil_img, ((height - width) // 2, 0))
    return result


def processors(size, pinpoints):
    clip = CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}, image_mean=MEAN, image_std=STD
    )
    nxt = LlavaNextImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=MEAN,
        image_std=STD,
        image_grid_pinpoints=pinpoints,
    )
    return clip, nxt


PIXEL_CASES = [
    # (image source, model size); the image is a generated pattern (w, h, kind, seed) or a file
    (("gen", 45, 30, "smooth", 21), TINY),
    (("gen", 20, 50, "blocks", 22), TINY),
    (("gen", 28, 28, "noise", 23), TINY),
    (("gen", 120, 90, "blocks", 24), TINY),
    (("gen", 64, 150, "smooth", 25), TINY),
    (("gen", 7, 5, "noise", 26), TINY),
    (("file", "rgba_33x21.png"), TINY),
    (("gen", 640, 480, "smooth", 27), 336),
    (("gen", 333, 500, "blocks", 28), 336),
    (("gen", 1000, 1000, "noise", 29), 336),
]


def load_source(src):
    if src[0] == "gen":
        _, w, h, kind, seed = src
        return Image.fromarray(pattern(seed, w, h, kind), "RGB")
    im = Image.open(os.path.join(OUT, "images", src[1]))
    im.load()
    return im


def make_pixel_refs():
    cases, blob = [], bytearray()
    for src, size in PIXEL_CASES:
        pinpoints = TINY_PINPOINTS if size == TINY else REAL_PINPOINTS
        clip, nxt = processors(size, pinpoints)
        image = load_source(src)
        pad_colour = tuple(int(x * 255) for x in MEAN)
        outputs = {
            "crop": clip(image, return_tensors="np")["pixel_values"][0],
            # the original LLaVA: Image.open(f).convert("RGB") drops alpha, then expand2square
            "pad": clip(expand2square(image.convert("RGB"), pad_colour), return_tensors="np")["pixel_values"][0],
        }
        nb = nxt(image, return_tensors="np")
        outputs["anyres"] = nb["pixel_values"][0]
        assert list(nb["image_sizes"][0]) == [image.size[1], image.size[0]]
        for mode, pv in outputs.items():
            pv = np.ascontiguousarray(pv, dtype=np.float32)
            if pv.ndim == 3:
                pv = pv[None]
            raw = pv.astype("<f4").tobytes()
            case = dict(source=list(src), size=size, mode=mode, shape=list(pv.shape), fnv64=fnv1a64(raw))
            if size == TINY:
                case["offset"] = len(blob)
                blob += raw
            cases.append(case)
    with open(os.path.join(OUT, "pixels.bin"), "wb") as f:
        f.write(blob)
    write_json(
        "pixels.json",
        {"mean": MEAN, "std": STD, "tiny_pinpoints": TINY_PINPOINTS, "real_pinpoints": REAL_PINPOINTS, "cases": cases},
    )


def anyres_sizes():
    rng = np.random.default_rng(5)
    sizes = [(1, 1), (1, 2000), (2000, 1), (336, 336), (336, 672), (672, 336), (672, 672), (1008, 336),
             (336, 1008), (335, 671), (337, 673), (1000, 1000), (480, 640), (640, 480), (375, 500),
             (3000, 4000), (4000, 3000), (90, 120), (150, 64), (24, 24), (28, 56), (56, 28), (100, 7),
             (7, 100), (768, 1024), (1024, 768), (2048, 512), (512, 2048), (5000, 20)]
    for _ in range(200):
        sizes.append((int(rng.integers(1, 4096)), int(rng.integers(1, 4096))))
    for _ in range(80):
        h = int(rng.integers(8, 2000))
        sizes.append((h, int(h * rng.choice([0.5, 2.0, 1.0, 0.75, 4 / 3, 3.0, 1 / 3]))))
    return [(h, max(w, 1)) for h, w in sizes]


def make_anyres_refs():
    out = {}
    for label, size, pinpoints in (("real", 336, REAL_PINPOINTS), ("tiny", TINY, TINY_PINPOINTS)):
        patch = 14
        proc = SimpleNamespace(
            image_processor=SimpleNamespace(image_grid_pinpoints=pinpoints),
            patch_size=patch,
            num_additional_image_tokens=1,
        )
        proc._get_unpadded_features = lambda *a, _p=proc: LlavaNextProcessor._get_unpadded_features(_p, *a)
        rows = []
        for h, w in anyres_sizes():
            best = select_best_resolution((h, w), pinpoints)
            dummy = np.zeros((1, h, w), dtype=np.uint8)
            nh, nw = get_patch_output_size(dummy, best, ChannelDimension.FIRST)
            (pt, pb), (pl, pr) = LlavaNextImageProcessorPil._get_padding_size(None, (nh, nw), best)
            # processor's count, minus the class token of the "default" feature selection
            tokens = LlavaNextProcessor._get_number_of_features(proc, h, w, size, size) - 1
            rows.append(dict(h=h, w=w, grid=list(best), resized=[nh, nw], pad=[pt, pb, pl, pr], tokens=tokens))
        out[label] = dict(image_size=size, patch_size=patch, pinpoints=pinpoints, cases=rows)
    write_json("anyres.json", out)
    mx = max(r["tokens"] for r in out["real"]["cases"])
    print(f"anyres: max tokens with the real pinpoints: {mx}")


def write_json(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    make_resize_refs()
    files = save_images()
    make_decode_refs(files)
    make_pixel_refs()
    make_anyres_refs()
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT}: {total} bytes")


if __name__ == "__main__":
    sys.exit(main())
