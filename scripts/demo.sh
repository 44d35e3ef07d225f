#!/usr/bin/env bash
# The main job on the built-in example: an x86_64 program that transcodes audio (tests/demo/
# transcode.c: WAV → mono, resampled, normalised, IMA ADPCM), run natively and under ld-nc, with
# both times and a byte-for-byte check of the output. `--riscv64` adds the riscv64 build of ld-nc
# under qemu-riscv64 beside the same program compiled natively for riscv64 (also under qemu).
# DEMO_SECONDS (default 60) and DEMO_RUNS (default 3) set the audio length and timed runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null

seconds=${DEMO_SECONDS:-60}
riscv=0
[ "${1:-}" = "--riscv64" ] && riscv=1

tgt=${CARGO_TARGET_DIR:-target}
out=$tgt/demo
mkdir -p "$out"
cargo build --release -q -p ld-nc
gcc -static -O2 -o "$out/transcode" tests/demo/transcode.c -lm
"$out/transcode" make "$out/in.wav" "$seconds" >/dev/null

now() { date +%s.%N; }
runs=${DEMO_RUNS:-3}
timed() { # label, output file, command...: the best of $runs wall-clock times
  local label=$1 file=$2; shift 2
  local best="" t0 t1 i
  for ((i = 0; i < runs; i++)); do
    t0=$(now)
    if ! "$@" run "$out/in.wav" "$file" >"$file.log" 2>&1; then
      printf '%-34s   failed: %s\n' "$label" "$(tail -n 1 "$file.log")"
      return
    fi
    t1=$(now)
    best=$(python3 -c "print(min(x for x in [$t1 - $t0, ${best:-1e9}]))")
  done
  printf '%-34s %8s s   %s\n' "$label" "$(python3 -c "print(f'{$best:.3f}')")" "$(grep fnv1a "$file.log" || echo '?')"
}

echo "transcoding ${seconds}s of 44.1 kHz stereo audio to 22.05 kHz mono IMA ADPCM (best of $runs runs)"
timed "native x86_64" "$out/native.wav" "$out/transcode"
timed "ld-nc (x86_64 host)" "$out/ldnc.wav" "$tgt/release/ld-nc" "$out/transcode"
if cmp -s "$out/native.wav" "$out/ldnc.wav"; then echo "outputs identical"; else echo "OUTPUTS DIFFER"; fi

if [ $riscv = 1 ]; then
  rv=riscv64gc-unknown-linux-gnu
  cargo build --release -q -p ld-nc --target $rv
  riscv64-linux-gnu-gcc -static -O2 -o "$out/transcode-rv" tests/demo/transcode.c -lm
  timed "native riscv64 (qemu-riscv64)" "$out/native-rv.wav" qemu-riscv64 "$out/transcode-rv"
  timed "ld-nc riscv64 (qemu-riscv64)" "$out/ldnc-rv.wav" \
    qemu-riscv64 -L /usr/riscv64-linux-gnu "$tgt/$rv/release/ld-nc" "$out/transcode"
  if cmp -s "$out/native.wav" "$out/ldnc-rv.wav"; then echo "riscv64 output identical"; else echo "RISCV64 OUTPUT DIFFERS"; fi
fi
