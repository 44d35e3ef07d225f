#!/bin/sh
# Regenerate every manifest in sysroot/manifests/ from the fetched Debian headers, then print the
# report. Needs sysroot/fetch.sh to have run, and libclang (libclang-dev) on the build machine.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
cargo run -q -p abi --features generator --bin abi-gen -- regen "$@"
cargo run -q -p abi --features generator --bin abi-gen -- report
