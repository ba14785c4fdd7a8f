"""Bundled pretrained models, loaded offline by name wherever a run folder is accepted.

A bundle is a folder `arwave/pretrained/<name>/` inside the package (or under $ARWAVE_PRETRAINED_DIR,
which replaces the package folder: tests and exports elsewhere use it):

    config.json         the run's resolved RunConfig (the format of a run folder's config.json)
    model.safetensors   the weights (EMA weights when the run kept them; no optimiser state). fp16 is
                        allowed: `arwave.load` casts half-precision tensors back to float32
    card.json           the model card: description, parameters, size, format, training data, the exact
                        training command, steps, measured quality figures, sha256 of the weights

`arwave.load("cam")` (and every CLI argument that takes a run) resolves a name here when no folder of
that name exists (see `find`). An AR model's bundle names its codec by bundle name (config `parent`
and `model.codec_run`), so loading it loads the codec bundle too. Bundles are written by `bundle.export`
(`arwave export RUN NAME`, `scripts/train-pretrained.sh NAME`). Nothing here unpickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from arwave.errors import ArwaveError

ENV = "ARWAVE_PRETRAINED_DIR"
CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "card.json"
TRAIN_SCRIPT = "scripts/train-pretrained.sh"
FP16_MAX = 65504.0  # largest finite float16


@dataclass(frozen=True)
class Known:
    kind: str
    parent: str  # bundled codec an AR model decodes with ("" for none)
    description: str


# the models arwave ships (issues 10 and 11); their weights are added by scripts/train-pretrained.sh
KNOWN: dict[str, Known] = {
    "codec-latent": Known("codec", "", "continuous (latent) codec: the audio <-> latent frames CAM models"),
    "codec-sat": Known("codec", "", "multi-scale residual VQ codec (SAT): the token maps AAR models"),
    "codec-rvq": Known(
        "codec", "", "plain residual VQ codec, same encoder/decoder as codec-sat: tokens of the next-token baseline"
    ),
    "cam": Known("cam", "codec-latent", "CAM (rf head + noise augmentation) over codec-latent, class-conditioned"),
    "aar": Known("aar", "codec-sat", "AAR next-scale transformer over codec-sat, class-conditioned"),
    "nexttoken": Known("nexttoken", "codec-rvq", "next-token GPT baseline over codec-rvq, class-conditioned"),
    "instrument-classifier": Known(
        "classifier", "", "instrument classifier of the corpus: FAD embedder and ISc/KL posteriors"
    ),
}

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class NotBundled(ArwaveError):
    pass


def root() -> Path:
    """Where bundles live: $ARWAVE_PRETRAINED_DIR, else this package folder."""
    env = os.environ.get(ENV, "")
    return Path(env).expanduser() if env else Path(__file__).parent


def is_name(ref) -> bool:
    """A bare model name (no folder separators), as opposed to a path."""
    return isinstance(ref, (str, Path)) and bool(_NAME.match(str(ref))) and os.sep not in str(ref)


def is_bundle(path: str | Path) -> bool:
    path = Path(path)
    return all((path / f).is_file() for f in (CONFIG, WEIGHTS, CARD))


def not_bundled_message(name: str) -> str:
    return f"{name} is not bundled in this install; train it with {TRAIN_SCRIPT} {name}"


def find(ref) -> Path | None:
    """The bundle folder for `ref` when it is a bare name and no folder of that name exists here, else
    None (the caller treats `ref` as a path). A known name whose weights are missing is an error."""
    if not is_name(ref) or Path(ref).exists():
        return None
    folder = root() / str(ref)
    if is_bundle(folder):
        return folder
    if str(ref) in KNOWN:
        raise NotBundled(not_bundled_message(str(ref)))
    return None


def locate(ref: str | Path) -> Path:
    """A run folder or bundle folder for `ref` (a path, or a bundled name)."""
    return find(ref) or Path(ref).expanduser()


def run_ref(ref: str | Path) -> str:
    """What to store in a config for `ref`: a bundled name stays a name (it resolves on any install),
    a path becomes absolute."""
    return str(ref) if find(ref) is not None else str(Path(ref).expanduser().resolve())


def read_card(bundle: str | Path) -> dict:
    path = Path(bundle) / CARD
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ArwaveError(f"{path}: unreadable model card ({err})") from None


def checkpoint_name(bundle: str | Path) -> str:
    """The checkpoint folder name a copy of this bundle gets (`checkpoint.copy_run`)."""
    return f"step-{int(read_card(bundle).get('steps', 0)):08d}"


def copy_state(bundle: str | Path) -> dict:
    """state.json of a bundle's copy: its step, name and weights digest (to recognise it later)."""
    card = read_card(bundle)
    return {"step": int(card.get("steps", 0)), "bundle": Path(bundle).name, "sha256": card.get("sha256", "")}


def cache_dir(bundle: str | Path) -> Path:
    """Where encodings of data by a bundled codec are cached (never inside the installed package)."""
    from arwave.paths import cache_root

    card = read_card(bundle)
    return cache_root() / "pretrained" / f"{Path(bundle).name}-{card.get('sha256', '')[:12]}"


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------
# listing


def list_models() -> list[dict]:
    """Every known model (bundled or not) and every other bundle under `root()`, name order of KNOWN first."""
    base = root()
    names = list(KNOWN)
    if base.is_dir():
        names += sorted(p.name for p in base.iterdir() if p.name not in KNOWN and is_bundle(p))
    rows = []
    for name in names:
        folder = base / name
        known = KNOWN.get(name)
        if is_bundle(folder):
            card = read_card(folder)
            rows.append({"name": name, "bundled": True, "path": str(folder), **card})
        else:
            rows.append(
                {
                    "name": name,
                    "bundled": False,
                    "kind": known.kind,
                    "parent": known.parent or None,
                    "description": known.description,
                    "train": f"{TRAIN_SCRIPT} {name}",
                }
            )
    return rows
