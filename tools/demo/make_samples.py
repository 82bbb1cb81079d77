#!/usr/bin/env python3
"""Writes the demo's sample images (models/demo/*.png, *.jpg) and samples.json (the expected
answer to every canonical question about each).

    python tools/demo/make_samples.py

The samples are scenes of tools/demo/scenes.py with seed 31337 (neither a training nor the
held-out seed), chosen by hand for variety: one, two and three shapes, every background, both
orientations, PNG and JPEG (quality 90). Each gets the canonical question of every kind, then
two more: the exists question with the other answer than the canonical one's (about the first
shape, in SHAPES order, that is absent or present), so both Yes and No are asked about every
picture, and "What is in the image?" (the README's first command).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenes  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "models", "demo")
SEED = 31337
SAMPLES = {
    0: "red-square.png",
    4: "circle-and-cross.png",
    5: "three-shapes.png",
    1: "square-and-star.jpg",
    16: "blue-triangle.jpg",
}


def extra_questions(scene, canonical):
    """The exists question with the other answer, and the README's describe phrasing."""
    (asked,) = [q for q in canonical if q["kind"] == "exists"]
    present = [s["kind"] for s in scene["shapes"]]
    want_present = asked["answer"] == "No."
    shape = next(k for k in scenes.SHAPES if (k in present) == want_present)
    yield "exists", scenes.PHRASINGS["exists"][0].format(shape=shape), scenes.answer(scene, "exists", shape)
    yield "describe", "What is in the image?", scenes.answer(scene, "describe")


def main():
    os.makedirs(OUT, exist_ok=True)
    records = []
    for index, name in SAMPLES.items():
        scene = scenes.make_scene(SEED, index)
        image = scenes.render(scene)
        path = os.path.join(OUT, name)
        if name.endswith(".jpg"):
            image.save(path, quality=90)
        else:
            image.save(path, optimize=True)
        qa = [{"kind": k, "question": q, "answer": a} for k, q, a in scenes.eval_questions(scene)]
        qa += [{"kind": k, "question": q, "answer": a} for k, q, a in extra_questions(scene, qa)]
        records.append({"image": name, "scene": [SEED, index], "questions": qa})
        print(f"{name}: {image.width}x{image.height}, {os.path.getsize(path)} bytes: {qa[5]['answer']}")
    with open(os.path.join(OUT, "samples.json"), "w", encoding="utf-8") as f:
        json.dump(records, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
