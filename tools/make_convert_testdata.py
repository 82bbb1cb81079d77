#!/usr/bin/env python3
"""Writes tests/convert_data/: small checkpoints saved by torch.save itself, for the converter's
.bin reader (tests/convert_torch.rs). Needs torch (not needed by CI: the outputs are committed).

- state-dict/pytorch_model.bin: an OrderedDict state dict with `_metadata` (as
  module.state_dict() returns it: an OrderedDict instance attribute, pickled with BUILD), f16,
  bf16 and f32 tensors, a tensor that is a view at a storage offset, two tensors sharing one
  storage, an nn.Parameter (torch._utils._rebuild_parameter);
- expected.json: name -> {dtype, shape, values (as float32)}.
"""

import collections
import json
from pathlib import Path

import torch

out = Path(__file__).resolve().parent.parent / "tests" / "convert_data"
(out / "state-dict").mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
base = torch.randn(6, 4)
sd = collections.OrderedDict()
sd["model.embed.weight"] = torch.randn(5, 3).half()
sd["model.norm.weight"] = torch.randn(7).to(torch.bfloat16)
sd["model.proj.weight"] = torch.randn(2, 8)
sd["model.view"] = base[2:4]  # storage offset 8 in a shared storage
sd["model.shared"] = base  # the same storage, offset 0
sd["model.param"] = torch.nn.Parameter(torch.randn(3, 3).half(), requires_grad=False)
sd._metadata = collections.OrderedDict({"": {"version": 1}, "model": {"version": 2}})
torch.save(sd, out / "state-dict" / "pytorch_model.bin")

expected = {
    name: {
        "dtype": str(t.dtype).removeprefix("torch."),
        "shape": list(t.shape),
        "values": t.detach().float().reshape(-1).tolist(),
    }
    for name, t in sd.items()
}
(out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
