#!/usr/bin/env bash
# The 7B-shaped random files the benchmarks run on (issue 7), under models/local/ (ignored):
# LLaVA-1.5-7B's language model (fixture scales, so greedy decoding is meaningful) in F16, Q4_0,
# Q4_K_M and Q8_0, a CLIP ViT-L/14-336 mmproj in F16 and Q8_0, and a LLaVA-NeXT mmproj (F16,
# anyres keys and the newline tensor) for the NeXT wall-time test. Every file is written
# streaming and atomically; files already there are kept. Needs a Python with `gguf` and `numpy`
# (LLAVA_PYTHON, default .venv/bin/python) and about 30 GB of disk.
#
#   tools/make_bench_models.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-models/local}
python=${LLAVA_PYTHON:-.venv/bin/python}
mkdir -p "$out"
cargo build --release --bin llava-quantize
quantize=target/release/llava-quantize

llm="$out/llava-1.5-7b-random-f16.gguf"
[ -f "$llm" ] || "$python" tools/make_random_llama.py --preset llava-1.5-7b --scales fixture "$llm"
for t in Q4_0 Q4_K_M Q8_0; do
  dst="$out/llava-1.5-7b-random-$(echo "$t" | tr 'A-Z' 'a-z').gguf"
  [ -f "$dst" ] || "$quantize" "$llm" "$dst" "$t"
done

mmproj="$out/mmproj-llava-1.5-7b-random-f16.gguf"
[ -f "$mmproj" ] || "$python" tools/make_random_mmproj.py --preset vit-l-14-336 "$mmproj"
dst="$out/mmproj-llava-1.5-7b-random-q8_0.gguf"
[ -f "$dst" ] || "$quantize" "$mmproj" "$dst" Q8_0
next="$out/mmproj-llava-next-7b-random-f16.gguf"
[ -f "$next" ] || "$python" tools/make_random_mmproj.py --preset vit-l-14-336 --next "$next"
ls -l "$out"
