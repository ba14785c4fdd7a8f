#!/usr/bin/env bash
# Real recorded music for training and evaluating codecs: the music folders of Debian's supertux-data,
# hedgewars-data and extremetuxracer-data, converted to 24 kHz mono WAV (one file per track, named
# GAME-TRACK.wav). Usage: bash scripts/game-music.sh OUT_DIR   (then `arwave data prepare OUT_DIR`).
set -euo pipefail
OUT=${1:?usage: scripts/game-music.sh OUT_DIR}
mkdir -p "$OUT"
python3 - "$OUT" <<'PY'
import glob, os, sys
import soundfile as sf, soxr
out = sys.argv[1]
srcs = sorted(glob.glob("/usr/share/games/supertux2/music/**/*.ogg", recursive=True)
              + glob.glob("/usr/share/games/hedgewars/Data/Music/*.ogg") + glob.glob("/usr/share/games/etr/music/*.ogg"))
if not srcs:
    sys.exit("no game music found: apt-get install supertux-data hedgewars-data extremetuxracer-data")
done = 0
for src in srcs:
    dst = os.path.join(out, f"{src.split('/')[4]}-{os.path.basename(src)[:-4]}.wav")
    x, sr = sf.read(src, dtype="float32", always_2d=True)
    if len(x) < 3 * sr:                       # jingles shorter than 3 s are left out
        continue
    if not os.path.exists(dst):
        tmp = dst + ".tmp.wav"
        sf.write(tmp, soxr.resample(x.mean(1), sr, 24000), 24000, subtype="PCM_16")
        os.replace(tmp, dst)
    done += 1
print(f"{done} tracks in {out}")
PY
