#!/usr/bin/env bash
# CPU-bound benchmark of ld-nc against native runs and other x86_64 emulators. Not a test: it prints
# a table. The workload is tests/programs/cpubench.c (hashing, qsort + merge sort, Mandelbrot,
# n-body), built static with gcc for x86_64 and with riscv64-linux-gnu-gcc for riscv64.
#
# Modes, and the native run each ratio is taken against:
#   native-x86_64            the x86_64 program                              (base of x86_64 modes)
#   ld-nc-x86_64             target/release/ld-nc PROG (copy-through backend)  vs native-x86_64
#   qemu-x86_64              full emulation with qemu-user                    vs native-x86_64
#   box64, fex               if installed                                      vs native-x86_64
#   native-riscv64 (qemu)    the riscv64 build under qemu-riscv64             (base of riscv64 modes)
#   ld-nc-riscv64 (qemu)     riscv64 ld-nc under qemu-riscv64 running the x86_64 program
#                                                                            vs native-riscv64
# riscv64 figures are taken under qemu-user on this machine: compare their ratio, not their seconds.
# A mode that cannot run, or whose output differs from the native x86_64 output, prints
# "failed: <reason>" and the table goes on.
set -uo pipefail

usage() {
  cat <<'EOF'
usage: bench/run.sh [-n RUNS] [-s SCALE] [-p PHASE] [-t TIMEOUT] [--build-ldnc]
  -n RUNS        runs per mode; the median is reported (default 3)
  -s SCALE       workload scale passed to cpubench (default 5: ~0.4 s natively on x86_64, a
                 couple of minutes per run for ld-nc-riscv64 under qemu while its FP is slow)
  -p PHASE       only one part of the workload: hash, sort, mandelbrot or nbody (default all)
  -t TIMEOUT     seconds before one run is abandoned (default 600)
  --build-ldnc   first run `cargo build --release -p ld-nc` for x86_64 and riscv64
Environment: LDNC_X86 / LDNC_RV override the ld-nc binaries (default: target/release/ld-nc and
target/riscv64gc-unknown-linux-gnu/release/ld-nc under CARGO_TARGET_DIR or ./target).
EOF
}

runs=3 scale=5 phase=all limit=600 build=0
while (($#)); do
  case "$1" in
    -n) runs="${2:?}"; shift 2 ;;
    -s) scale="${2:?}"; shift 2 ;;
    -p) phase="${2:?}"; shift 2 ;;
    -t) limit="${2:?}"; shift 2 ;;
    --build-ldnc) build=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ && "$scale" =~ ^[1-9][0-9]*$ && "$limit" =~ ^[1-9][0-9]*$ ]] || { usage >&2; exit 2; }
[[ "$phase" =~ ^(all|hash|sort|mandelbrot|nbody)$ ]] || { usage >&2; exit 2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
tgt="${CARGO_TARGET_DIR:-$root/target}"
out="$tgt/bench"
mkdir -p "$out"
src="$root/tests/programs/cpubench.c"
rv=riscv64gc-unknown-linux-gnu
ldnc_x86="${LDNC_X86:-$tgt/release/ld-nc}"
ldnc_rv="${LDNC_RV:-$tgt/$rv/release/ld-nc}"
qemu_rv=(qemu-riscv64 -L /usr/riscv64-linux-gnu)

if ((build)); then
  (cd "$root" && cargo build --release -p ld-nc) || echo "bench: x86_64 ld-nc build failed" >&2
  (cd "$root" && cargo build --release -p ld-nc --target $rv) || echo "bench: riscv64 ld-nc build failed" >&2
fi

# Both builds keep floating-point contraction off so the riscv64 program computes (and prints)
# exactly what the x86_64 one does, which lets every mode be checked against one output.
x86_prog="$out/cpubench-x86_64"
rv_prog="$out/cpubench-riscv64"
x86_err="" rv_err=""
gcc -static -O2 -ffp-contract=off -o "$x86_prog" "$src" -lm 2>"$out/build-x86_64.log" \
  || x86_err="gcc build failed (see $out/build-x86_64.log)"
riscv64-linux-gnu-gcc -static -O2 -ffp-contract=off -o "$rv_prog" "$src" -lm 2>"$out/build-riscv64.log" \
  || rv_err="riscv64-linux-gnu-gcc build failed (see $out/build-riscv64.log)"

expected="$out/expected.txt"
if [[ -z "$x86_err" ]]; then
  "$x86_prog" "$scale" "$phase" >"$expected" 2>/dev/null || x86_err="native x86_64 run failed"
fi

# run_mode NAME BASE-NAME CMD…: times CMD RUNS times; stores the median in secs[NAME] or a reason
# in fail[NAME].
declare -A secs fail
order=()
run_mode() {
  local name="$1" base="$2"
  shift 2
  order+=("$name")
  bases["$name"]="$base"
  if [[ -n "${pre_fail:-}" ]]; then fail["$name"]="$pre_fail"; pre_fail=""; return; fi
  local times=() i t0 t1 rc
  for ((i = 0; i < runs; i++)); do
    t0=$(date +%s.%N)
    timeout "$limit" "$@" "$scale" "$phase" >"$out/$name.out" 2>"$out/$name.err"
    rc=$?
    t1=$(date +%s.%N)
    if ((rc == 124)); then fail["$name"]="timed out after ${limit}s"; return; fi
    if ((rc != 0)); then
      fail["$name"]="exit status $rc: $(head -c 200 "$out/$name.err" | tr '\n' ' ')"
      return
    fi
    if ! cmp -s "$out/$name.out" "$expected"; then
      fail["$name"]="output differs from native x86_64 (see $out/$name.out)"
      return
    fi
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')")
  done
  secs["$name"]=$(printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
}
declare -A bases
pre_fail=""

need() { # need FILE REASON: sets pre_fail when FILE is not executable
  [[ -x "$1" ]] || pre_fail="$2"
}

pre_fail="$x86_err"
run_mode native-x86_64 "" "$x86_prog"

pre_fail="$x86_err"; [[ -n "$pre_fail" ]] || need "$ldnc_x86" "not built: $ldnc_x86 (cargo build --release -p ld-nc, or --build-ldnc)"
run_mode ld-nc-x86_64 native-x86_64 "$ldnc_x86" "$x86_prog"

pre_fail="$x86_err"; [[ -n "$pre_fail" ]] || command -v qemu-x86_64 >/dev/null || pre_fail="not installed (Debian package qemu-user)"
run_mode qemu-x86_64 native-x86_64 qemu-x86_64 "$x86_prog"

box64_bin="$(command -v box64 || true)"
pre_fail="$x86_err"; [[ -n "$pre_fail" || -n "$box64_bin" ]] || pre_fail="not installed"
run_mode box64 native-x86_64 "${box64_bin:-box64}" "$x86_prog"

fex_bin="$(command -v FEXInterpreter || command -v FEXLoader || true)"
pre_fail="$x86_err"; [[ -n "$pre_fail" || -n "$fex_bin" ]] || pre_fail="not installed"
run_mode fex native-x86_64 "${fex_bin:-FEXInterpreter}" "$x86_prog"

pre_fail="$rv_err"; [[ -n "$pre_fail" ]] || [[ -z "$x86_err" ]] || pre_fail="no native x86_64 output to check against"
[[ -n "$pre_fail" ]] || command -v qemu-riscv64 >/dev/null || pre_fail="qemu-riscv64 not installed (Debian package qemu-user)"
run_mode "native-riscv64(qemu)" "" "${qemu_rv[@]}" "$rv_prog"

pre_fail="$x86_err"; [[ -n "$pre_fail" ]] || need "$ldnc_rv" "not built: $ldnc_rv (cargo build --release -p ld-nc --target $rv, or --build-ldnc)"
[[ -n "$pre_fail" ]] || command -v qemu-riscv64 >/dev/null || pre_fail="qemu-riscv64 not installed (Debian package qemu-user)"
run_mode "ld-nc-riscv64(qemu)" "native-riscv64(qemu)" "${qemu_rv[@]}" "$ldnc_rv" "$x86_prog"

echo
echo "cpubench scale $scale, phase $phase, median of $runs run(s); ratio = seconds / the native run of the same host"
echo "(riscv64 rows run under qemu-riscv64 on $(uname -m): compare ratios, not seconds)"
printf '%-22s %10s  %s\n' mode seconds "ratio"
printf '%-22s %10s  %s\n' ---- ------- -----
for m in "${order[@]}"; do
  if [[ "${fail[$m]:-}" == "not installed"* ]]; then
    printf '%-22s %10s  %s\n' "$m" - "${fail[$m]}"
    continue
  elif [[ -n "${fail[$m]:-}" ]]; then
    printf '%-22s %10s  %s\n' "$m" - "failed: ${fail[$m]}"
    continue
  fi
  b="${bases[$m]}"
  if [[ -z "$b" ]]; then
    ratio="1.00 (base)"
  elif [[ -n "${secs[$b]:-}" ]]; then
    ratio=$(awk -v a="${secs[$m]}" -v b="${secs[$b]}" 'BEGIN { if (b > 0) printf "%.2fx vs %s", a / b, "'"$b"'"; else print "-" }')
  else
    ratio="- ($b failed)"
  fi
  printf '%-22s %10s  %s\n' "$m" "${secs[$m]}" "$ratio"
done
