#!/usr/bin/env python3
"""Cross-checks llava-rs's GGUF reader and writer against gguf-py, the reference implementation.

    gguf_crosscheck.py write PATH [--alignment N] [--big-endian]
                                                    write a test file with gguf.GGUFWriter
    gguf_crosscheck.py read PATH                    print a canonical JSON of a file read with
                                                    gguf.GGUFReader

The canonical JSON (also built by tests/gguf_crosscheck.rs from llava-rs's reader) is
  {"version", "alignment", "data_offset",
   "metadata": [{"key", "value"}...],      value = {"t": type, "v": ...}; arrays have "elem"
   "tensors": [{"name", "type" (ggml id), "dims" (ne order), "offset" (relative), "n_bytes",
                "data" (hex)}...]}
Floats are given as their IEEE bit patterns so that the comparison is exact (NaN included).
Needs the `gguf` and `numpy` packages.
"""

import argparse
import json
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFEndian, GGUFReader, GGUFValueType, GGUFWriter

TYPE_NAMES = {
    GGUFValueType.UINT8: "u8",
    GGUFValueType.INT8: "i8",
    GGUFValueType.UINT16: "u16",
    GGUFValueType.INT16: "i16",
    GGUFValueType.UINT32: "u32",
    GGUFValueType.INT32: "i32",
    GGUFValueType.FLOAT32: "f32",
    GGUFValueType.BOOL: "bool",
    GGUFValueType.STRING: "str",
    GGUFValueType.ARRAY: "arr",
    GGUFValueType.UINT64: "u64",
    GGUFValueType.INT64: "i64",
    GGUFValueType.FLOAT64: "f64",
}


def write(path: str, alignment: int | None, big_endian: bool) -> None:
    endianess = GGUFEndian.BIG if big_endian else GGUFEndian.LITTLE
    w = GGUFWriter(path, arch="crosscheck", endianess=endianess)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 0.1)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.str", "héllo, wörld ✓")
    # add_string skips empty strings.
    w.add_key_value("test.str_empty", "", GGUFValueType.STRING)
    w.add_uint64("test.u64", 2**64 - 1)
    w.add_int64("test.i64", -(2**63))
    w.add_float64("test.f64", -1.0e300)
    w.add_array("test.arr_str", ["<unk>", "<s>", "</s>", "▁the", ""])
    w.add_array("test.arr_i32", [1, -2, 3])
    w.add_array("test.arr_f32", [0.5, -1.25, 3.0e-7])
    w.add_array("test.arr_bool", [True, False, True])
    w.add_key_value("test.arr_u8", [0, 1, 255], GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT8)
    w.add_key_value(
        "test.arr_u64", [0, 2**64 - 1], GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT64
    )
    w.add_key_value("test.arr_f64", [1.5, -2.5], GGUFValueType.ARRAY, sub_type=GGUFValueType.FLOAT64)
    w.add_array("test.arr_nested_i32", [[1, 2], [3], [4, 5, 6]])
    w.add_array("test.arr_nested_str", [["a", "b"], ["c"]])

    rng = np.random.default_rng(1234)
    w.add_tensor("f32.weight", rng.standard_normal((3, 64), dtype=np.float32))
    w.add_tensor("f16.weight", rng.standard_normal((2, 32)).astype(np.float16))
    w.add_tensor("i32.scalar_like", np.arange(5, dtype=np.int32))
    # Quantized types as raw block bytes: (rows, bytes per row).
    q8_0 = rng.integers(0, 256, size=(4, 2 * 34), dtype=np.uint8)
    w.add_tensor("q8_0.weight", q8_0, raw_dtype=GGMLQuantizationType.Q8_0)
    q4_k = rng.integers(0, 256, size=(2, 144), dtype=np.uint8)
    w.add_tensor("q4_k.weight", q4_k, raw_dtype=GGMLQuantizationType.Q4_K)
    q6_k = rng.integers(0, 256, size=(1, 2 * 210), dtype=np.uint8)
    w.add_tensor("q6_k.weight", q6_k, raw_dtype=GGMLQuantizationType.Q6_K)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def decode(parts: list, i: int, gtype: GGUFValueType) -> tuple[dict, int]:
    """Decodes the value starting at parts[i]; returns it and the index after it."""
    name = TYPE_NAMES[gtype]
    if gtype == GGUFValueType.STRING:
        return {"t": name, "v": bytes(parts[i + 1]).decode("utf-8")}, i + 2
    if gtype == GGUFValueType.ARRAY:
        elem = GGUFValueType(int(parts[i][0]))
        count = int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(count):
            item, i = decode(parts, i, elem)
            items.append(item)
        return {"t": name, "elem": TYPE_NAMES[elem], "v": items}, i
    part = parts[i]
    if gtype == GGUFValueType.FLOAT32:
        value = int(part.view(np.uint32)[0])
    elif gtype == GGUFValueType.FLOAT64:
        value = int(part.view(np.uint64)[0])
    elif gtype == GGUFValueType.BOOL:
        value = bool(part[0])
    else:
        value = int(part[0])
    return {"t": name, "v": value}, i + 1


def read(path: str) -> dict:
    r = GGUFReader(path, "r")
    fields = list(r.fields.values())
    # The first three fields are the header's version, tensor count and key/value count.
    version = int(fields[0].parts[0][0])
    metadata = []
    for field in fields[3:]:
        # parts: key length, key bytes, value type, value parts...
        gtype = GGUFValueType(int(field.parts[2][0]))
        value, end = decode(field.parts, 3, gtype)
        assert end == len(field.parts), f"{field.name}: {end} of {len(field.parts)} parts used"
        metadata.append({"key": field.name, "value": value})
    tensors = []
    for t in r.tensors:
        tensors.append(
            {
                "name": t.name,
                "type": int(t.tensor_type),
                "dims": [int(d) for d in t.shape],
                "offset": int(t.field.parts[5][0]),
                "n_bytes": int(t.n_bytes),
                "data": t.data.tobytes().hex(),
            }
        )
    return {
        "version": version,
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": metadata,
        "tensors": tensors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_write = sub.add_parser("write")
    p_write.add_argument("path")
    p_write.add_argument("--alignment", type=int)
    p_write.add_argument("--big-endian", action="store_true")
    p_read = sub.add_parser("read")
    p_read.add_argument("path")
    args = parser.parse_args()
    if args.command == "write":
        write(args.path, args.alignment, args.big_endian)
    else:
        json.dump(read(args.path), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
