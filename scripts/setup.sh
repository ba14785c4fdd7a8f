#!/usr/bin/env bash
# Set up arwave on a fresh CPU machine (no GPU, no internet beyond the package registries).
# torch goes first: `torch==2.13.0` resolves to the CPU build on disk, and every later install sees
# its requirement already met, so nothing pulls another torch or CUDA packages.
set -euo pipefail
PY=${PYTHON:-python3}
$PY -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "torch==2.13.0"
# tinysoundfont declares pyaudio (live playback only, fails to build here); aisfx pins old librosa/numpy
# it does not need for our use (we only read its bundled weights). Both are installed without deps.
$PY -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps "tinysoundfont==0.3.7" "aisfx==0.1.2"
$PY -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e ".[test]"
$PY - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"unexpected torch {torch.__version__}"
print(f"arwave set up: torch {torch.__version__}, {torch.get_num_threads()} threads")
PY
