#!/usr/bin/env python3
"""A small canonical digest of a GGUF file, read with gguf-py: every metadata key with its type
and value (arrays longer than 16 items as their length and the SHA-256 of their canonical JSON),
every tensor with its ggml type, dims (ne order) and the SHA-256 of its data, in file order.
Used to compare llava-convert's outputs with llama.cpp's own converter outputs without
committing those files (tests/convert_data/llama.cpp/).

    gguf_digest.py FILE   (prints JSON)
"""

import hashlib
import json
import sys

from gguf import GGUFReader


def value(field):
    v = field.contents()
    if isinstance(v, list) and len(v) > 16:
        blob = json.dumps(v, ensure_ascii=False, sort_keys=True).encode()
        return {"len": len(v), "sha256": hashlib.sha256(blob).hexdigest()}
    return v


def main():
    r = GGUFReader(sys.argv[1])
    metadata = [
        [key, [t.name for t in f.types], value(f)]
        for key, f in r.fields.items()
        if not key.startswith("GGUF.")
    ]
    tensors = [
        [t.name, t.tensor_type.name, [int(d) for d in t.shape],
         hashlib.sha256(t.data.tobytes()).hexdigest()]
        for t in r.tensors
    ]
    print(json.dumps({"metadata": metadata, "tensors": tensors}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
