#!/usr/bin/env bash
# Cost of a bridged native call and of a callback round trip. Not a test: it prints a table.
# The guest program bench/bridge.c calls functions of a small native library (bench/native/
# benchlib.c, with its generated manifest) in loops — no arguments, six integers, three doubles —
# then glibc's strlen, then qsort with a guest comparator (native code calling guest code once per
# comparison), and prints nanoseconds per call for each.
#
# Rows:
#   native-x86_64          the program natively
#   ld-nc-x86_64 bridged   target/release/ld-nc, LDNC_BRIDGE=1: calls go to the native libraries
#   ld-nc-x86_64 emulated  target/release/ld-nc with the program's own ld.so: libc and the library
#                          are translated too (no bridge)
#   qemu-x86_64            full emulation with qemu-user
#   native-riscv64(qemu)   the program built for riscv64, under qemu-riscv64
#   ld-nc-riscv64(qemu)    the riscv64 ld-nc under qemu-riscv64, bridged to the riscv64 libraries
# riscv64 rows run under qemu-user on this machine: their figures are compared as a ratio to the
# native riscv64 row, not as times.
set -uo pipefail

usage() {
  echo "usage: bench/bridge.sh [-s SCALE] [--build-ldnc]   (SCALE: millions of calls per loop, default 5)"
}
scale=5 build=0
while (($#)); do
  case "$1" in
    -s) scale="${2:?}"; shift 2 ;;
    --build-ldnc) build=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ "$scale" =~ ^[1-9][0-9]*$ ]] || { usage >&2; exit 2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
tgt="${CARGO_TARGET_DIR:-$root/target}"
out="$tgt/bench/bridge"
rv=riscv64gc-unknown-linux-gnu
ldnc_x86="${LDNC_X86:-$tgt/release/ld-nc}"
ldnc_rv="${LDNC_RV:-$tgt/$rv/release/ld-nc}"
mkdir -p "$out/x86_64" "$out/riscv64"
if ((build)); then
  (cd "$root" && cargo build --release -p ld-nc && cargo build --release -p ld-nc --target $rv) || exit 1
fi

lib="$root/bench/native/benchlib.c"
gcc -O2 -shared -fPIC -o "$out/x86_64/libbenchlib.so" "$lib" || exit 1
riscv64-linux-gnu-gcc -O2 -shared -fPIC -o "$out/riscv64/libbenchlib.so" "$lib" || exit 1
gcc -O2 -I"$root/bench" -o "$out/bridge-x86_64" "$root/bench/bridge.c" -L"$out/x86_64" -lbenchlib || exit 1
riscv64-linux-gnu-gcc -O2 -I"$root/bench" -o "$out/bridge-riscv64" "$root/bench/bridge.c" -L"$out/riscv64" -lbenchlib || exit 1

bridge_env=(LDNC_BRIDGE=1 "LDNC_MANIFESTS=$root/bench/native")
qrv=(qemu-riscv64 -L /usr/riscv64-linux-gnu)
declare -A result
modes=()
run() { # run NAME CMD...: its output, or why it could not run
  local name="$1"; shift
  modes+=("$name")
  if result["$name"]="$(timeout 900 "$@" "$scale" 2>&1)"; then :; else result["$name"]="failed: ${result[$name]:0:200}"; fi
}
run native-x86_64 env "LD_LIBRARY_PATH=$out/x86_64" "$out/bridge-x86_64"
if [[ -x "$ldnc_x86" ]]; then
  run "ld-nc-x86_64 bridged" env "${bridge_env[@]}" "LDNC_HOST_LIBRARY_PATH=$out/x86_64" "$ldnc_x86" "$out/bridge-x86_64"
  run "ld-nc-x86_64 emulated" env "LD_LIBRARY_PATH=$out/x86_64" "$ldnc_x86" "$out/bridge-x86_64"
else
  modes+=("ld-nc-x86_64"); result[ld-nc-x86_64]="failed: not built: $ldnc_x86 (--build-ldnc)"
fi
if command -v qemu-x86_64 >/dev/null; then
  run qemu-x86_64 qemu-x86_64 -E "LD_LIBRARY_PATH=$out/x86_64" "$out/bridge-x86_64"
fi
run "native-riscv64(qemu)" "${qrv[@]}" -E "LD_LIBRARY_PATH=$out/riscv64" "$out/bridge-riscv64"
if [[ -x "$ldnc_rv" ]]; then
  run "ld-nc-riscv64(qemu)" env "${bridge_env[@]}" "LDNC_HOST_LIBRARY_PATH=$out/riscv64" "${qrv[@]}" "$ldnc_rv" "$out/bridge-x86_64"
else
  modes+=("ld-nc-riscv64(qemu)"); result["ld-nc-riscv64(qemu)"]="failed: not built: $ldnc_rv (--build-ldnc)"
fi

phases=(nop add6 fma3-double strlen qsort-callback)
value() { # value NAME PHASE: the ns figure of PHASE in NAME's output
  printf '%s\n' "${result[$1]}" | awk -v p="$2" 'index($0, p) == 1 { sub(p, ""); print $1; exit }'
}
echo
echo "bridged call cost, $scale million calls per loop (qsort: scale/20 million elements); ns per call"
printf '%-24s' mode; for p in "${phases[@]}"; do printf '%16s' "$p"; done; echo
for m in "${modes[@]}"; do
  printf '%-24s' "$m"
  if [[ "${result[$m]}" == failed:* ]]; then echo "  ${result[$m]}"; continue; fi
  for p in "${phases[@]}"; do
    v="$(value "$m" "$p")"
    if [[ "$m" == "ld-nc-riscv64(qemu)" ]]; then
      b="$(value "native-riscv64(qemu)" "$p")"
      v="$(awk -v a="$v" -v b="$b" 'BEGIN { if (b > 0) printf "%.1f (%.2fx)", a, a / b; else print a }')"
    fi
    printf '%16s' "$v"
  done
  echo
done
echo "(ld-nc-riscv64: in parentheses the ratio to native-riscv64 under the same qemu)"
