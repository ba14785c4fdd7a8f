#!/usr/bin/env bash
# Re-measure every figure in docs/benchmarks.md. Each command's JSON lands in $OUT (default bench-out/).
# Run on an otherwise idle machine; figures are medians or best-of-N as each bench documents.
set -euo pipefail
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
run() { local name=$1; shift; echo "== $name: $*"; "$@" | tee "$OUT/$name.txt"; tail -n 1 "$OUT/$name.txt" > "$OUT/$name.json"; }
run corpus      arwave data corpus --minutes 10 --out "$OUT/corpus10" --json
run codec       arwave bench codec --seconds 10 --json
run cam-rt      arwave bench cam --preset tiny,small,paper --head rf --batch 1 --json
run cam-heads   arwave bench cam --preset small --head rf,gmm,ddpm --batch 1,16 --json
run cam-paper   arwave bench cam --preset paper --head rf,gmm,ddpm --batch 1,16 --frames 24 --json
run cam-tiny    arwave bench cam --preset tiny --head rf,gmm,ddpm --batch 1,16 --json
run nextscale   arwave bench nextscale-vs-nexttoken --preset small --seconds 10 --batch 1,16 --repeats 1 --json
for spec in "codec --preset small-msrq --steps 10" "codec --preset small-continuous --steps 10"; do
  run "train-$(echo $spec | tr ' ' '_' | tr -d -)" arwave bench train $spec --json
done
