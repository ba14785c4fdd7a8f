#!/usr/bin/env bash
# Train (or continue) one bundled pretrained model, then export it into the package (docs/pretrained.md).
#
#   scripts/train-pretrained.sh NAME [SESSION_MINUTES]
#
# NAME: codec-latent codec-sat codec-rvq cam aar nexttoken instrument-classifier (see TRAIN below).
# Resumable across sessions: the run lives in $RUNS/NAME. The first call starts it with the command of
# TRAIN[NAME]; every later call continues it with `arwave train KIND --out RUN --resume` (same config,
# same step-based LR schedule). A call trains for at most SESSION_MINUTES (default 60; 0 = until the
# preset's max_steps), then stops the way Ctrl-C does (a checkpoint at the current step), and exports the
# latest checkpoint as arwave/pretrained/NAME (config.json, model.safetensors, card.json). Run it again to
# train further. AR models train on their bundled codec, so export the codec first (codec-latent before
# cam, codec-sat before aar, codec-rvq before nexttoken). A RUN/quality.json (one JSON object of measured
# figures) is copied into the model card.
#
# Environment: RUNS (default runs/pretrained), ARWAVE (default "python -m arwave"), EXPORT_FLAGS (default
# --fp16), DRY_RUN=1 (print the commands only), ARWAVE_PRETRAINED_DIR (export elsewhere than the package).
set -euo pipefail

# One row per bundled model: the arguments of `arwave train` that start its run. The data comes from
# scripts/pretrained-data.sh (data/codec-train.jsonl: game music + corpus; data/corpus-fluid: the corpus).
# Each model card (`arwave models`) records the exact history of the bundled weights (steps, resumes).
declare -A TRAIN=(
  [codec-latent]="codec --preset cpu-continuous --data data/codec-train.jsonl --set train.threads=1"
  [codec-sat]="codec --preset cpu-msrq --data data/codec-train.jsonl --set train.threads=1 --max-steps 3500"
  [codec-rvq]="codec --preset cpu-rvq --data data/codec-train.jsonl --set train.threads=1 --max-steps 3500"
  [cam]="cam --preset small --codec codec-latent --data data/corpus-fluid/manifest.jsonl --set conditional=true --set train.minutes=0 --set train.threads=1 --max-steps 2500"
  [aar]="aar --preset small --codec codec-sat --data data/corpus-fluid/manifest.jsonl --set train.minutes=0 --set train.threads=1 --max-steps 1500"
  [nexttoken]="nexttoken --preset small --codec codec-rvq --data data/corpus-fluid/manifest.jsonl --set train.minutes=0 --set train.threads=1 --max-steps 1500"
  [instrument-classifier]="classifier --preset small --data data/corpus-fluid/manifest.jsonl --set train.ema_decay=0 --set train.threads=1 --max-steps 3000"
)
ORDER="codec-latent codec-sat codec-rvq cam aar nexttoken instrument-classifier"

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then usage; exit 0; fi
NAME=$1
MINUTES=${2:-60}
if [[ -z ${TRAIN[$NAME]+x} ]]; then
  echo "train-pretrained: unknown model '$NAME' (known: $ORDER)" >&2
  exit 2
fi
ROW=${TRAIN[$NAME]}
if [[ $ROW == *PLACEHOLDER* ]]; then
  echo "train-pretrained: the training command of $NAME is not set yet: fill TRAIN[$NAME] in $0" >&2
  exit 2
fi
read -r -a ARGS <<< "$ROW"
KIND=${ARGS[0]}
RUNS=${RUNS:-runs/pretrained}
RUN=$RUNS/$NAME
read -r -a ARWAVE_CMD <<< "${ARWAVE:-python -m arwave}"
read -r -a EXPORT <<< "${EXPORT_FLAGS-"--fp16"}"

if compgen -G "$RUN/checkpoints/step-*/state.json" > /dev/null; then
  TRAIN_CMD=("${ARWAVE_CMD[@]}" train "$KIND" --out "$RUN" --resume)
else
  TRAIN_CMD=("${ARWAVE_CMD[@]}" train "${ARGS[@]}" --out "$RUN")
fi
FIRST="arwave train $ROW --out $RUN"
EXPORT_CMD=("${ARWAVE_CMD[@]}" export "$RUN" "$NAME" "${EXPORT[@]}"
            --command "$FIRST (continued with: scripts/train-pretrained.sh $NAME)")
if [[ -f $RUN/quality.json ]]; then EXPORT_CMD+=(--quality "$RUN/quality.json"); fi

if [[ ${DRY_RUN:-0} == 1 ]]; then
  printf '%q ' "${TRAIN_CMD[@]}"; echo
  printf '%q ' "${EXPORT_CMD[@]}"; echo
  exit 0
fi
mkdir -p "$RUNS"
echo "== $NAME: ${TRAIN_CMD[*]} (at most $MINUTES min this session)"
status=0
if [[ $MINUTES == 0 ]]; then
  "${TRAIN_CMD[@]}" || status=$?
else
  # SIGINT = Ctrl-C: the training loop saves a checkpoint at the current step and exits
  timeout -s INT -k 300 "${MINUTES}m" "${TRAIN_CMD[@]}" || status=$?
fi
if [[ $status -ne 0 && $status -ne 124 && $status -ne 130 ]]; then
  echo "train-pretrained: training $NAME failed (exit $status)" >&2
  exit "$status"
fi
if ! compgen -G "$RUN/checkpoints/step-*/state.json" > /dev/null; then
  echo "train-pretrained: $RUN has no checkpoint yet (exit $status): nothing to export; run again" >&2
  exit 1
fi
echo "== $NAME: ${EXPORT_CMD[*]}"
"${EXPORT_CMD[@]}"
