#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
#   - cmake and libclang-dev build ggml-sys-bleedingedge, ggml's C code used as the test oracle;
#   - a Python venv (.venv) with the `gguf` package, the reference GGUF implementation that the
#     round-trip tests compare against.
# With no arguments it runs the whole suite: `cargo test` (lib, binaries, integration tests,
# doctests), the ggml oracle again in release mode (where ggml's debug asserts don't stop the
# checks at huge magnitudes), and the aarch64 kernel tiers under qemu (tools/test-aarch64.sh).
# With arguments, only `cargo test ARGS` (e.g. `tools/test.sh --test ggml_oracle`).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
# (libclang itself: libclang-cpp, which some images carry alone, does not serve bindgen)
compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null || compgen -G "/usr/lib/*/libclang-[0-9]*.so*" >/dev/null || missing+=(libclang-dev)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  echo "tools/test.sh: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! .venv/bin/python -c "import gguf, numpy, sentencepiece, PIL" >/dev/null 2>&1; then
  echo "tools/test.sh: creating .venv with the gguf package" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "gguf==0.19.0" "numpy<3" "sentencepiece" "pillow==13.0.0"
fi
export LLAVA_PYTHON="$PWD/.venv/bin/python"

if (($#)); then
  exec cargo test "$@"
fi
cargo test
cargo test --release --test ggml_oracle
tools/test-aarch64.sh
