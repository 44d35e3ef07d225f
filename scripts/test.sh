#!/usr/bin/env bash
# The project's test command: every test on both hosts. x86_64 runs natively; the riscv64 build runs
# under qemu-user (the runner in .cargo/config.toml). Each step runs even if an earlier one failed,
# and the script fails if any did.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

export CARGO_TERM_COLOR=never
RV=riscv64gc-unknown-linux-gnu
failed=()
step() {
  echo "=== $*"
  "$@" || failed+=("$*")
}

# x86_64 host. ld-nc itself and the native oracle are built first: the tests run them.
step cargo build -p ld-nc
step cargo build -p ldnc-tests --bins
step cargo test --workspace
if grep -q '^generator' abi/Cargo.toml 2>/dev/null; then
  step cargo test -p abi --features generator
fi

# riscv64 host, under qemu-riscv64. Guest x86_64 programs and the x86_64 oracle still run natively
# when the riscv64 test binary spawns them.
export LDNC_ORACLE="${CARGO_TARGET_DIR:-$PWD/target}/debug/x86-oracle"
export LDNC_RUNNER="qemu-riscv64 -L /usr/riscv64-linux-gnu"
# Dynamic x86_64 programs need their interpreter and libraries; ld-nc has no default guest root on
# riscv64, and here they are installed at their usual paths (qemu's -L only redirects paths that
# exist under its prefix).
export LDNC_GUEST_ROOT="${LDNC_GUEST_ROOT:-/}"
step cargo build -p ld-nc --target $RV
step cargo test --workspace --target $RV

if ((${#failed[@]})); then
  echo "FAILED steps:"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "all test steps passed"
