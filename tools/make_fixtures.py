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
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from llava_fixtures.common import LLAVA_DIR  # noqa: E402
from llava_fixtures.definitions import FIXTURES_DEF  # noqa: E402
from llava_fixtures.hf_checkpoint import build_checkpoint  # noqa: E402
from llava_fixtures.images import make_images  # noqa: E402
from llava_fixtures.original import build_original_layout, make_original_references  # noqa: E402
from llava_fixtures.references import make_references  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=sorted(FIXTURES_DEF), help="fixture names to (re)build")
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
    # llava15-orig is made from llava15-hf's files: build that first
    names = sorted(args.only or FIXTURES_DEF, key=lambda n: bool(FIXTURES_DEF[n].get("base")))
    for n in names:
        base = FIXTURES_DEF[n].get("base")
        if base and base not in names and not os.path.isdir(os.path.join(LLAVA_DIR, base)):
            sys.exit(f"{n} is made from {base}: build {base} first")
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
