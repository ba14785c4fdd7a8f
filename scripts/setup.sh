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
# Chromium for the browser test of `arwave serve` (tests/test_serve_browser.py): Debian's package, installed
# only where it is missing and we are root (CI). Playwright drives this system browser; `playwright install`
# (a download from outside the package registries) is never used. A failed install only skips that test.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log=$(mktemp -t arwave-chromium-XXXXXX.log)
        ok=0
        for try in 1 2; do
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >"$log" 2>&1 && { ok=1; break; }
            sleep 5
        done
        [ "$ok" = 1 ] || echo "setup: chromium did not install (log: $log): the browser test will be skipped" >&2
    else
        echo "setup: no chromium (install it with: sudo apt-get install chromium): the browser test will be skipped" >&2
    fi
fi
$PY - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"unexpected torch {torch.__version__}"
print(f"arwave set up: torch {torch.__version__}, {torch.get_num_threads()} threads")
PY
