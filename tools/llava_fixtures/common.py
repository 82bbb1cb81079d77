"""Paths, constants and file helpers shared by the fixture builders."""

import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def log(*a):
    print(*a, flush=True)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def save_npy(path, arr):
    arr = np.ascontiguousarray(arr)
    np.save(path, arr, allow_pickle=False)


def dir_size(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
