#!/usr/bin/env bash
# The kernel tests on aarch64, from an x86-64 machine: cross-builds them and runs them under
# qemu-user twice, as a Cortex-A72 (NEON only: tiers scalar, neon) and as a Cortex-A76 (NEON +
# dotprod: tiers scalar, neon, neon-dotprod).
#   - installs the aarch64 Rust target, the cross gcc and libc (the ggml oracle's C and the
#     linker), qemu-user, and cmake/libclang-dev (the oracle's bindings), if missing;
#   - runs the kernel unit tests (`kernels::`, including the dotprod detection check) and
#     tests/kernels_tiers.rs (every tier this CPU supports against the scalar reference).
# Not run here (the scalar reference is portable Rust, checked against ggml on x86-64):
#   - tests/kernels_ggml.rs: ggml b2757's NEON vec_dot for Q4_0/Q8_0 asserts an even number of
#     blocks and aborts on the odd lengths the test uses;
#   - tests/ggml_oracle.rs: for NaN/infinite inputs ggml's C float-to-int casts give other bytes
#     on aarch64 (our reference mirrors x86-64), so its Q8_0/Q8_1 checks fail there.
# The ggml oracle still cross-compiles (its C with aarch64-linux-gnu-gcc), as every test target
# links it.
# Extra arguments go to every `cargo test` run after `--` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu

missing=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu)
[ -e "$sysroot/lib/libc.so.6" ] || missing+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null || compgen -G "/usr/lib/*/libclang*.so*" >/dev/null || missing+=(libclang-dev)
if ((${#missing[@]})); then
  echo "tools/test-aarch64.sh: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi

# .cargo/config.toml names the linker; these make the script independent of it.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc

runs=(
  "--lib|kernels::"
  "--test kernels_tiers|"
)

# Build everything once, then run it on each emulated CPU.
cargo test --target "$target" --no-run --lib --test kernels_tiers

for cpu in cortex-a72:0 cortex-a76:1; do
  name=${cpu%:*}
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot -cpu $name"
  # Checked by kernels::aarch64's tests: dotprod must be detected exactly on the A76.
  export LLAVA_EXPECT_DOTPROD=${cpu#*:}
  for run in "${runs[@]}"; do
    selection=${run%|*}
    filter=${run#*|}
    echo "== qemu $name: cargo test $selection $filter" >&2
    # shellcheck disable=SC2086 # $selection is two words on purpose
    cargo test --target "$target" $selection -- $filter "$@"
  done
done
