#!/usr/bin/env bash
# Installs everything ld-nc needs to build, test and demo on a fresh Debian machine that has only
# Rust, gcc and Python: g++ and binutils (C++ guest programs, objdump), the riscv64 cross toolchain and qemu-user (riscv64 is tested under
# emulation), musl-gcc and busybox-static (guest test programs), libclang (the manifest generator),
# and Rust's riscv64 target; it downloads (never installs) Debian's static x86_64 Go programs that
# tests/tests/go.rs runs (sysroot/fetch-guest-bins.sh). Safe to run twice: it installs only what is
# missing.
set -euo pipefail

packages=(
  g++ binutils
  gcc-riscv64-linux-gnu libc6-dev-riscv64-cross qemu-user
  musl-tools busybox-static
  libclang-dev clang
  binutils-riscv64-linux-gnu
  sqlite3 python3-minimal perl-base
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present"
fi

if ! rustup target list --installed | grep -qx riscv64gc-unknown-linux-gnu; then
  echo "setup: adding Rust target riscv64gc-unknown-linux-gnu"
  rustup target add riscv64gc-unknown-linux-gnu
fi
# Debian's static Go programs for the `go` test, unpacked under sysroot/cache/ (gitignored).
sh "$(dirname "$0")/../sysroot/fetch-guest-bins.sh"
echo "setup: done"
