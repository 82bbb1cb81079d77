#!/usr/bin/env python3
"""Writes a GGUF holding only the tokenizer of a SentencePiece tokenizer.model (the
`tokenizer.ggml.*` keys llama.cpp's converter writes for a `llama` vocabulary), for the
tokenizer tests. Reads the protobuf by hand (pieces: field 1; piece 1, score 2, type 3;
normalizer_spec 3 → add_dummy_prefix 3), so it needs only the `gguf` and `numpy` packages.

Usage: tools/spm_to_gguf.py tokenizer.model out.gguf
"""

import struct
import sys

import gguf


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def fields(buf):
    """(field number, wire type, value) of each field of a message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, value


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        model = f.read()
    tokens, scores, types = [], [], []
    add_dummy_prefix = True
    for num, _, value in fields(model):
        if num == 1:
            piece, score, typ = "", 0.0, 1
            for n2, _, v2 in fields(value):
                if n2 == 1:
                    piece = v2.decode("utf-8")
                elif n2 == 2:
                    score = struct.unpack("<f", v2)[0]
                elif n2 == 3:
                    typ = v2
            tokens.append(piece)
            scores.append(score)
            types.append(typ)
        elif num == 3:
            for n2, _, v2 in fields(value):
                if n2 == 3:
                    add_dummy_prefix = bool(v2)
    w = gguf.GGUFWriter(dst, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(tokens.index("<s>"))
    w.add_eos_token_id(tokens.index("</s>"))
    w.add_unk_token_id(tokens.index("<unk>"))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(add_dummy_prefix)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
