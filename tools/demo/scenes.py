#!/usr/bin/env python3
"""Seeded simple scenes (one to three coloured shapes) with canonical question/answer pairs.

The demo model (tools/train_demo.py) is trained on these scenes and evaluated on held-out ones
(tools/eval_demo.py, and the Rust test that runs our runtime). Needs only Pillow, so the tests can
run it in CI:

    python tools/demo/scenes.py --seed 20261206 --count 40 --out DIR

writes DIR/scene-NNN.png and DIR/questions.json (a list of {image, kind, question, answer}).

What a scene is (everything drawn from `random.Random`, whose integer seeding, `random()`,
`randint` and `choice` are stable across Python 3 versions, so a seed always gives the same
scenes):
- a canvas of one of several aspect ratios (1:1, 4:3, 3:4, 3:2, 2:3), short side 96..160 px, in one
  of three background colours (white, black, grey), each colour a little jittered;
- one to three shapes of distinct kinds (circle, square, triangle, star, cross), each in one of six
  colours (jittered), a few degrees of rotation, each inside its own cell of a 4 x 4 grid over the
  canvas' central square (moved around within it, 60..88% of the cell wide). llava-hf's processor
  centre-crops that square, and a pad-to-square preprocessor keeps it too, so the answers hold
  whichever the runtime does. The grid is there for the demo model: its CLIP tower (112 px, 28 px
  patches) then sees each shape whole inside one patch, which a tower trained from scratch in a
  few CPU minutes can recognise; shapes cut across patches it could not learn in that budget.

Answers are short and canonical, so accuracy is an exact string match. Lists of shapes follow the
fixed order of SHAPES (not the positions), e.g. "A red circle and a blue star on a white
background."
"""

import argparse
import json
import math
import os
import random

SHAPES = ["circle", "square", "triangle", "star", "cross"]
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 225),
    "yellow": (240, 210, 40),
    "orange": (245, 140, 25),
    "purple": (145, 65, 195),
}
BACKGROUNDS = {
    "white": (248, 248, 248),
    "black": (12, 12, 12),
    "grey": (128, 128, 128),
}
ASPECTS = [(1, 1), (4, 3), (3, 4), (3, 2), (2, 3)]
GRID = 4  # shapes sit in distinct cells of a GRID x GRID grid over the central square
NUMBERS = ["Zero", "One", "Two", "Three"]

# Question kinds and their phrasings. The first phrasing of each kind is the canonical one, used
# for evaluation; training draws from all of them.
PHRASINGS = {
    "shape": ["What shape is in the image?", "What shapes are in the image?", "Which shapes do you see?"],
    "colour": ["What colour is the {shape}?", "What color is the {shape}?"],
    "count": ["How many shapes are there?", "How many shapes are in the image?"],
    "exists": ["Is there a {shape} in the image?", "Do you see a {shape}?"],
    "background": ["What colour is the background?", "What color is the background?"],
    "describe": ["Describe the image.", "What is in the image?", "Describe the image briefly."],
}
KINDS = list(PHRASINGS)
SUPERSAMPLE = 4  # shapes are drawn at 4x and box-filtered down, for smooth edges


def article(word, capital):
    a = "an" if word[0] in "aeiou" else "a"
    return a.capitalize() if capital else a


def join_list(items):
    """'x', 'x and y', 'x, y and z'."""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def jitter(rng, rgb, amount):
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def make_scene(seed, index):
    """Scene `index` of the set with `seed`: a dict with the canvas, background and shapes."""
    rng = random.Random(seed * 1_000_003 + index)
    aw, ah = rng.choice(ASPECTS)
    short = rng.randint(96, 160)
    if aw >= ah:
        w, h = round(short * aw / ah), short
    else:
        w, h = short, round(short * ah / aw)
    side = min(w, h)
    x0, y0 = (w - side) / 2, (h - side) / 2
    n = rng.choice([1, 1, 2, 2, 3, 3]) if rng.random() < 0.9 else 1
    kinds = rng.sample(SHAPES, n)
    cell = side / GRID
    cells = rng.sample(range(GRID * GRID), n)
    shapes = []
    for kind, c in zip(kinds, cells):
        r = rng.uniform(0.30, 0.44) * cell
        room = 0.5 * cell - r - 0.02 * cell  # how far the centre may move inside its cell
        cx = x0 + (c % GRID + 0.5) * cell + rng.uniform(-room, room)
        cy = y0 + (c // GRID + 0.5) * cell + rng.uniform(-room, room)
        colour = rng.choice(list(COLOURS))
        shapes.append(
            {
                "kind": kind,
                "colour": colour,
                "rgb": jitter(rng, COLOURS[colour], 12),
                "cx": cx,
                "cy": cy,
                "r": r,
                "angle": rng.uniform(-12, 12),
            }
        )
    background = rng.choice(list(BACKGROUNDS))
    return {
        "seed": seed,
        "index": index,
        "size": (w, h),
        "background": background,
        "background_rgb": jitter(rng, BACKGROUNDS[background], 8),
        "shapes": sorted(shapes, key=lambda s: SHAPES.index(s["kind"])),
    }


def polygon(cx, cy, radii, angle_deg, start_deg=-90.0):
    """Vertices at the given radii, evenly spaced in angle, starting upwards."""
    n = len(radii)
    pts = []
    for i, rad in enumerate(radii):
        a = math.radians(start_deg + angle_deg + 360.0 * i / n)
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def shape_outline(s, k):
    """('ellipse', bbox) or ('polygon', points) at supersampling factor k."""
    cx, cy, r, ang = s["cx"] * k, s["cy"] * k, s["r"] * k, s["angle"]
    kind = s["kind"]
    if kind == "circle":
        q = 0.9 * r
        return "ellipse", [cx - q, cy - q, cx + q, cy + q]
    if kind == "square":
        return "polygon", polygon(cx, cy, [0.98 * r] * 4, ang, start_deg=-135.0)
    if kind == "triangle":
        # centred on its bounding circle's centre, pushed down a little so it looks centred
        return "polygon", polygon(cx, cy + 0.12 * r, [1.05 * r] * 3, ang)
    if kind == "star":
        return "polygon", polygon(cx, cy + 0.05 * r, [1.0 * r, 0.42 * r] * 5, ang)
    if kind == "cross":
        a, b = 0.92 * r, 0.3 * r  # arm length and half-width
        pts = [(b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b), (-b, -a)]
        t = math.radians(ang)
        c, si = math.cos(t), math.sin(t)
        return "polygon", [(cx + x * c - y * si, cy + x * si + y * c) for x, y in pts]
    raise ValueError(f"unknown shape {kind}")


def render(scene):
    """The scene as an RGB PIL image."""
    from PIL import Image, ImageDraw

    w, h = scene["size"]
    k = SUPERSAMPLE
    img = Image.new("RGB", (w * k, h * k), tuple(scene["background_rgb"]))
    draw = ImageDraw.Draw(img)
    for s in scene["shapes"]:
        what, geom = shape_outline(s, k)
        if what == "ellipse":
            draw.ellipse(geom, fill=tuple(s["rgb"]))
        else:
            draw.polygon(geom, fill=tuple(s["rgb"]))
    return img.resize((w, h), Image.BOX)


def render_labels(scene):
    """Which shape covers each pixel, as an "L" image of the canvas size: 0 for the background,
    i + 1 for scene["shapes"][i] (no antialiasing). Training's vision pretraining uses it."""
    from PIL import Image, ImageDraw

    img = Image.new("L", tuple(scene["size"]), 0)
    draw = ImageDraw.Draw(img)
    for i, s in enumerate(scene["shapes"]):
        what, geom = shape_outline(s, 1)
        if what == "ellipse":
            draw.ellipse(geom, fill=i + 1)
        else:
            draw.polygon(geom, fill=i + 1)
    return img


# ---------------------------------------------------------------------------------------------
# Answers


def answer(scene, kind, shape=None):
    shapes = scene["shapes"]
    if kind == "shape":
        names = [article(s["kind"], i == 0) + " " + s["kind"] for i, s in enumerate(shapes)]
        return join_list(names) + "."
    if kind == "colour":
        (s,) = [s for s in shapes if s["kind"] == shape]
        return s["colour"].capitalize() + "."
    if kind == "count":
        return NUMBERS[len(shapes)] + "."
    if kind == "exists":
        return "Yes." if any(s["kind"] == shape for s in shapes) else "No."
    if kind == "background":
        return scene["background"].capitalize() + "."
    if kind == "describe":
        names = [article(s["colour"], i == 0) + f" {s['colour']} {s['kind']}" for i, s in enumerate(shapes)]
        return join_list(names) + f" on {article(scene['background'], False)} {scene['background']} background."
    raise ValueError(f"unknown question kind {kind}")


def question(scene, kind, rng, canonical):
    """(question text, answer) of this kind about the scene; `rng` picks the shape asked about
    (and, unless canonical, the phrasing)."""
    phrasings = PHRASINGS[kind]
    shape = None
    if kind == "colour":
        shape = rng.choice(scene["shapes"])["kind"]
    elif kind == "exists":
        present = [s["kind"] for s in scene["shapes"]]
        pool = present if rng.random() < 0.5 else [k for k in SHAPES if k not in present]
        shape = rng.choice(pool)
    if canonical:
        text = phrasings[0]
        if kind == "shape" and len(scene["shapes"]) > 1:
            text = phrasings[1]
    else:
        text = rng.choice(phrasings)
    return text.format(shape=shape), answer(scene, kind, shape)


def eval_questions(scene):
    """One canonical question of every kind, drawn with a per-scene fixed seed."""
    rng = random.Random(scene["seed"] * 7_919 + scene["index"])
    return [(kind,) + question(scene, kind, rng, canonical=True) for kind in KINDS]


def write_set(seed, count, out):
    """Renders `count` scenes as PNG files and writes questions.json; returns the records."""
    os.makedirs(out, exist_ok=True)
    records = []
    for i in range(count):
        scene = make_scene(seed, i)
        name = f"scene-{i:03d}.png"
        render(scene).save(os.path.join(out, name))
        for kind, q, a in eval_questions(scene):
            records.append({"image": name, "kind": kind, "question": q, "answer": a})
    with open(os.path.join(out, "questions.json"), "w", encoding="utf-8") as f:
        json.dump(records, f, indent=1)
        f.write("\n")
    return records


def main():
    ap = argparse.ArgumentParser(description="Writes a seeded set of demo scenes with their questions.")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True, help="directory for scene-NNN.png and questions.json")
    args = ap.parse_args()
    records = write_set(args.seed, args.count, args.out)
    print(f"{args.count} scenes, {len(records)} questions in {args.out}")


if __name__ == "__main__":
    main()
