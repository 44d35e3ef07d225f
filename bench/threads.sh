#!/usr/bin/env bash
# Thread-scaling benchmark of ld-nc (not a test: it prints a table). The workload is
# bench/threads.c: CPU-bound integer work split across T threads, the same total work for every T,
# built static with gcc for x86_64 and with riscv64-linux-gnu-gcc for riscv64. Each mode runs it
# with 1 and with 2 threads; the speed-up is seconds(1 thread) / seconds(2 threads), ~2 when the
# threads really run in parallel (this machine must have 2 idle cores for that).
#
# Modes:
#   native-x86_64            the x86_64 program
#   ld-nc-x86_64             target/release/ld-nc PROG (copy-through backend)
#   qemu-x86_64              full emulation with qemu-user, if installed
#   native-riscv64(qemu)     the riscv64 build under qemu-riscv64 (qemu-user runs threads in parallel)
#   ld-nc-riscv64(qemu)      riscv64 ld-nc under qemu-riscv64 running the x86_64 program
#   ld-nc-rv64 TSO=off       the same with LDNC_TSO=off (no fences for x86's store order)
#   ld-nc-rv64 TSO=fence     the same with LDNC_TSO=fence (fences even while single-threaded)
# The last two rows measure the cost of the fences: their 1-thread ratio is the cost a
# single-threaded program would pay if fenced, their 2-thread ratio the multi-threaded slowdown.
# (qemu-riscv64 on x86_64 runs riscv64 fences as x86 barriers: a ratio, not a hardware figure.)
# A mode that cannot run, or whose output differs from the native x86_64 output, prints
# "failed: <reason>" and the table goes on.
set -uo pipefail

usage() {
  cat <<'EOF2'
usage: bench/threads.sh [-n RUNS] [-s SCALE] [-t TIMEOUT] [-m MODES] [--build-ldnc]
  -n RUNS        runs per mode and thread count; the median is reported (default 3)
  -s SCALE       work: SCALE*64 units of 20000 hashing steps (default 50: ~0.15 s natively on x86_64
                 with 1 thread; ld-nc-riscv64 under qemu takes 10-100 times longer)
  -t TIMEOUT     seconds before one run is abandoned (default 600)
  -m MODES       comma-separated subset of: native-x86_64, ld-nc-x86_64, qemu-x86_64,
                 native-riscv64, ld-nc-riscv64, tso (the TSO=off/fence pair) (default all)
  --build-ldnc   first run `cargo build --release -p ld-nc` for x86_64 and riscv64
Environment: LDNC_X86 / LDNC_RV override the ld-nc binaries (default: target/release/ld-nc and
target/riscv64gc-unknown-linux-gnu/release/ld-nc under CARGO_TARGET_DIR or ./target).
EOF2
}

runs=3 scale=50 limit=600 build=0 modes=all
while (($#)); do
  case "$1" in
    -n) runs="${2:?}"; shift 2 ;;
    -s) scale="${2:?}"; shift 2 ;;
    -t) limit="${2:?}"; shift 2 ;;
    -m) modes="${2:?}"; shift 2 ;;
    --build-ldnc) build=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ && "$scale" =~ ^[1-9][0-9]*$ && "$limit" =~ ^[1-9][0-9]*$ ]] || { usage >&2; exit 2; }
want() { [[ "$modes" == all || ",$modes," == *",$1,"* ]]; }

root="$(cd "$(dirname "$0")/.." && pwd)"
tgt="${CARGO_TARGET_DIR:-$root/target}"
out="$tgt/bench/threads"
mkdir -p "$out"
src="$root/bench/threads.c"
rv=riscv64gc-unknown-linux-gnu
ldnc_x86="${LDNC_X86:-$tgt/release/ld-nc}"
ldnc_rv="${LDNC_RV:-$tgt/$rv/release/ld-nc}"
qemu_rv=(qemu-riscv64 -L /usr/riscv64-linux-gnu)

if ((build)); then
  (cd "$root" && cargo build --release -p ld-nc) || echo "bench: x86_64 ld-nc build failed" >&2
  (cd "$root" && cargo build --release -p ld-nc --target $rv) || echo "bench: riscv64 ld-nc build failed" >&2
fi

x86_prog="$out/threads-x86_64"
rv_prog="$out/threads-riscv64"
x86_err="" rv_err=""
gcc -static -O2 -pthread -o "$x86_prog" "$src" 2>"$out/build-x86_64.log" \
  || x86_err="gcc build failed (see $out/build-x86_64.log)"
riscv64-linux-gnu-gcc -static -O2 -pthread -o "$rv_prog" "$src" 2>"$out/build-riscv64.log" \
  || rv_err="riscv64-linux-gnu-gcc build failed (see $out/build-riscv64.log)"

load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
expected="$out/expected.txt"
if [[ -z "$x86_err" ]]; then
  "$x86_prog" 1 "$scale" >"$expected" 2>/dev/null || x86_err="native x86_64 run failed"
fi

# time_runs NAME THREADS CMD…: median seconds of RUNS runs of `CMD THREADS SCALE` in the
# variable `t`, or a reason in `why`.
time_runs() {
  local name="$1" threads="$2"
  shift 2
  local times=() i t0 t1 rc
  t="" why=""
  for ((i = 0; i < runs; i++)); do
    t0=$(date +%s.%N)
    timeout -s KILL "$limit" "$@" "$threads" "$scale" >"$out/$name-$threads.out" 2>"$out/$name-$threads.err"
    rc=$?
    t1=$(date +%s.%N)
    if ((rc == 137)); then why="timed out after ${limit}s"; return; fi
    if ((rc != 0)); then why="exit status $rc: $(head -c 200 "$out/$name-$threads.err" | tr '\n' ' ')"; return; fi
    if ! cmp -s "$out/$name-$threads.out" "$expected"; then
      why="output differs from native x86_64 (see $out/$name-$threads.out)"
      return
    fi
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')")
  done
  t=$(printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
}

declare -A one two fail
order=()
# run_mode NAME CMD…: times CMD with 1 and 2 threads, unless pre_fail says why it cannot run.
run_mode() {
  local name="$1"
  shift
  order+=("$name")
  if [[ -n "${pre_fail:-}" ]]; then fail["$name"]="$pre_fail"; pre_fail=""; return; fi
  time_runs "$name" 1 "$@"
  if [[ -n "$why" ]]; then fail["$name"]="1 thread: $why"; return; fi
  one["$name"]="$t"
  time_runs "$name" 2 "$@"
  if [[ -n "$why" ]]; then fail["$name"]="2 threads: $why"; return; fi
  two["$name"]="$t"
}
need() { # need FILE REASON: sets pre_fail when FILE is not executable
  [[ -x "$1" ]] || pre_fail="$2"
}
pre_fail=""
no_qemu_rv() { command -v qemu-riscv64 >/dev/null || pre_fail="qemu-riscv64 not installed (Debian package qemu-user)"; }

if want native-x86_64; then
  pre_fail="$x86_err"
  run_mode native-x86_64 "$x86_prog"
fi
if want ld-nc-x86_64; then
  pre_fail="$x86_err"; [[ -n "$pre_fail" ]] || need "$ldnc_x86" "not built: $ldnc_x86 (cargo build --release -p ld-nc, or --build-ldnc)"
  run_mode ld-nc-x86_64 "$ldnc_x86" "$x86_prog"
fi
if want qemu-x86_64; then
  pre_fail="$x86_err"; [[ -n "$pre_fail" ]] || command -v qemu-x86_64 >/dev/null || pre_fail="not installed (Debian package qemu-user)"
  run_mode qemu-x86_64 qemu-x86_64 "$x86_prog"
fi
if want native-riscv64; then
  pre_fail="$rv_err"; [[ -n "$pre_fail" ]] || [[ -z "$x86_err" ]] || pre_fail="no native x86_64 output to check against"
  [[ -n "$pre_fail" ]] || no_qemu_rv
  run_mode "native-riscv64(qemu)" "${qemu_rv[@]}" "$rv_prog"
fi
rv_ldnc_ready() {
  pre_fail="$x86_err"; [[ -n "$pre_fail" ]] || need "$ldnc_rv" "not built: $ldnc_rv (cargo build --release -p ld-nc --target $rv, or --build-ldnc)"
  [[ -n "$pre_fail" ]] || no_qemu_rv
}
if want ld-nc-riscv64; then
  rv_ldnc_ready
  run_mode "ld-nc-riscv64(qemu)" "${qemu_rv[@]}" "$ldnc_rv" "$x86_prog"
fi
if want tso; then
  rv_ldnc_ready
  run_mode "ld-nc-rv64 TSO=off" env LDNC_TSO=off "${qemu_rv[@]}" "$ldnc_rv" "$x86_prog"
  rv_ldnc_ready
  run_mode "ld-nc-rv64 TSO=fence" env LDNC_TSO=fence "${qemu_rv[@]}" "$ldnc_rv" "$x86_prog"
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "bench/threads.c scale $scale ($(head -c 40 "$expected" 2>/dev/null | awk '{print $2}') units), median of $runs run(s), $(nproc) CPUs"
echo "speed-up = seconds with 1 thread / seconds with 2 threads (same total work); it needs 2 idle"
echo "cores: load average ${load_start:-?} at the start, $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) at the end"
echo "(riscv64 rows run under qemu-riscv64 on $(uname -m): compare ratios, not seconds)"
printf '%-22s %10s %10s  %s\n' mode "1 thread" "2 threads" speed-up
printf '%-22s %10s %10s  %s\n' ---- -------- --------- --------
for m in "${order[@]}"; do
  if [[ -n "${fail[$m]:-}" ]]; then
    case "${fail[$m]}" in
      "not installed"*) printf '%-22s %10s %10s  %s\n' "$m" - - "${fail[$m]}" ;;
      *) printf '%-22s %10s %10s  %s\n' "$m" - - "failed: ${fail[$m]}" ;;
    esac
    continue
  fi
  printf '%-22s %10s %10s  %sx\n' "$m" "${one[$m]}" "${two[$m]}" "$(ratio "${one[$m]}" "${two[$m]}")"
done
off="ld-nc-rv64 TSO=off" fence="ld-nc-rv64 TSO=fence"
if [[ -n "${one[$off]:-}" && -n "${two[$off]:-}" && -n "${one[$fence]:-}" && -n "${two[$fence]:-}" ]]; then
  echo
  echo "cost of the riscv64 fences (LDNC_TSO=fence seconds / LDNC_TSO=off seconds):"
  echo "  1 thread: $(ratio "${one[$fence]}" "${one[$off]}")x   2 threads: $(ratio "${two[$fence]}" "${two[$off]}")x"
fi
