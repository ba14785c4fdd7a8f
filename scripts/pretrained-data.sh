#!/usr/bin/env bash
# The training data of the bundled models (docs/data.md, "The training data of the bundled models"):
#   data/corpus-fluid/manifest.jsonl   the built-in corpus, 40 min, rendered with FluidR3_GM
#   data/corpus-fluid-big/manifest.jsonl  the same corpus at 240 min (the cam and aar fine-tunes)
#   data/music24k.jsonl                real game music (Debian's supertux/hedgewars/extremetuxracer data)
#   data/codec-train.jsonl             both: what the codecs train on
# Usage: bash scripts/pretrained-data.sh [DATA_DIR=data]   (installs the Debian packages when run as root)
set -euo pipefail
DATA=${1:-data}
ARWAVE=${ARWAVE:-python3 -m arwave}
if [[ $(id -u) == 0 ]] && ! [[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 && -d /usr/share/games/hedgewars ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fluid-soundfont-gm supertux-data hedgewars-data extremetuxracer-data
fi
mkdir -p "$DATA"
$ARWAVE data corpus --out "$DATA/corpus-fluid" --minutes 40 --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2
# the same corpus at 240 min (prefix-stable: its first 154 files are corpus-fluid's): cam and aar fine-tunes
$ARWAVE data corpus --out "$DATA/corpus-fluid-big" --minutes 240 --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2
bash "$(dirname "$0")/game-music.sh" "$DATA/music24k"
$ARWAVE data prepare "$DATA/music24k" --out "$DATA/music24k.jsonl"
cat "$DATA/music24k.jsonl" "$DATA/corpus-fluid/manifest.jsonl" > "$DATA/codec-train.jsonl"
echo "training data in $DATA: codec-train.jsonl (codecs), corpus-fluid/manifest.jsonl (generators, classifier)"
