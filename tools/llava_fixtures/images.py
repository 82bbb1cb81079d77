"""The synthetic test images, and the original LLaVA's pad-to-square."""

import os

import numpy as np

from .common import IMAGES_DIR

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
