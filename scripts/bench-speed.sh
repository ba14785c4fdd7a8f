#!/usr/bin/env bash
# Issue 16's speed figures on a quiet machine (docs/benchmarks.md, "Generation speed on 2 cores").
# Run with nothing else on the machine (check `uptime`): every figure depends on it. About 6 minutes.
# Each command's output lands in $OUT (default bench-out/speed); the last line of each is its JSON.
set -euo pipefail
OUT=${OUT:-bench-out/speed}
mkdir -p "$OUT"
run() { local name=$1; shift; echo "== $name: $*"; "$@" 2>&1 | tee "$OUT/$name.txt"; }
uptime | tee "$OUT/uptime.txt"
run floors       arwave bench profile --model cam --preset small --codec cpu --seconds 1 --floors --threads 1 --json
run floors2      arwave bench profile --model cam --preset small --codec cpu --seconds 1 --floors --threads 2 --json
for t in 1 2; do
  for p in float32 int8; do
    run "cam-paper-$p-t$t" arwave bench cam --preset paper --head rf --batch 1 --codec cpu --frames 24 --precision $p --threads $t --json
  done
  run "cam-small-t$t" arwave bench cam --preset small --head rf --batch 1,16 --codec cpu --threads $t --json
done
for p in float32 int8; do
  run "nextscale-$p" arwave bench nextscale-vs-nexttoken --preset small --seconds 10 --batch 1 --codec cpu --precision $p --threads 1 --repeats 1 --json
done
# the paper-size CAM's time per part (rf head, int8 as `auto` picks it)
run "profile-cam-paper" arwave bench profile --model cam --preset paper --codec cpu --seconds 2 --precision int8 --threads 1
# batch 16 (4 s: next-token at batch 16 over 10 s would take minutes)
run "nextscale-b16-int8" arwave bench nextscale-vs-nexttoken --preset small --seconds 4 --batch 16 --codec cpu --precision int8 --threads 1 --repeats 1 --json
for m in cam aar nexttoken; do  # the bundled models, as a user runs them (1 thread, --precision auto)
  run "generate-$m" bash -c "time arwave generate $m --class piano --seconds 10 --seed 0 --out $OUT/$m.wav --overwrite --quiet"
done
uptime | tee -a "$OUT/uptime.txt"
