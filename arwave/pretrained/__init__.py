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
and `model.codec_run`), so loading it loads the codec bundle too. Bundles are written by `export`
(`arwave export RUN NAME`, `scripts/train-pretrained.sh NAME`). Nothing here unpickles.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

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


# ---------------------------------------------------------------------------------------------------
# export


def _half(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """float32 tensors as float16 where every value fits (others stay float32: e.g. codebook usage
    counts that exceed the float16 range). Returns (tensors, how many stayed float32)."""
    out, kept = {}, 0
    for k, v in tensors.items():
        if v.dtype == torch.float32 and v.numel():
            if bool(torch.isfinite(v).all()) and float(v.abs().max()) <= FP16_MAX:
                v = v.half()
            else:
                kept += 1
        out[k] = v
    return out, kept


INT8_MIN_ELEMENTS = 16384  # only large matrices are worth int8 (embeddings, linear layers)


def _int8(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Matrices of >= INT8_MIN_ELEMENTS elements as int8 + per-row float16 scales (`quantize_int8`), the
    rest float16 (`_half`). Returns (tensors, how many are int8). Buffers such as codebooks stay float16."""
    from arwave.checkpoint import INT8_SCALE, quantize_int8

    out, n = {}, 0
    for k, v in tensors.items():
        if v.dtype == torch.float32 and v.dim() >= 2 and v.numel() >= INT8_MIN_ELEMENTS and k.endswith("weight"):
            out[k], out[k + INT8_SCALE] = quantize_int8(v)
            n += 1
        else:
            out[k] = v
    half, _ = _half(out)
    return half, n


def _weights_used(run_dir: Path, ckpt: Path) -> dict[str, torch.Tensor]:
    """The weights `arwave.load` would use for a run: EMA when kept, else the raw ones."""
    from arwave.checkpoint import load_tensors

    ema = ckpt / "ema.safetensors"
    return load_tensors(ema if ema.is_file() else ckpt / WEIGHTS)


def _check_parent(run_dir: Path, cfg, parent: str) -> None:
    """An AR run's own codec copy (RUN/<cfg.parent>) must be the bundled `parent` (same config, same
    weights up to the bundle's storage precision): the exported model decodes with the bundle."""
    from arwave.checkpoint import load_tensors, resolve_run

    bundle = find(parent)
    if bundle is None:
        raise ArwaveError(f"--parent {parent}: no bundled model of that name under {root()} (export the codec first)")
    if read_card(bundle).get("kind") != "codec":
        raise ArwaveError(f"--parent {parent}: a {read_card(bundle).get('kind')!r} bundle, not a codec")
    local = run_dir / (cfg.parent or "codec")
    if not (local / CONFIG).is_file():
        raise ArwaveError(f"{run_dir}: no codec copy in {local} to compare with the bundled {parent}")
    if (local / CONFIG).read_text() != (bundle / CONFIG).read_text():
        raise ArwaveError(
            f"{run_dir} was trained on a different codec than the bundled {parent} (configs differ); "
            f"train it with --codec {parent}"
        )
    _, ckpt = resolve_run(local)
    mine, theirs = _weights_used(local, ckpt), load_tensors(bundle / WEIGHTS)
    same = mine.keys() == theirs.keys() and all(torch.equal(mine[k].to(theirs[k].dtype), theirs[k]) for k in theirs)
    if not same:
        raise ArwaveError(
            f"{run_dir} was trained on a different codec than the bundled {parent} (weights differ); "
            f"train it with --codec {parent}"
        )


def _portable_manifest(cfg) -> bool:
    """Record a training manifest under the current folder relative to it (`data/corpus.jsonl`, as
    scripts/pretrained-data.sh makes it), so a bundle's config names data that exists on any checkout
    that ran the script, not on the machine that trained it. True when the path changed."""
    manifest = Path(cfg.data.manifest) if cfg.data.manifest else None
    if manifest is None or not manifest.is_absolute() or not manifest.is_relative_to(Path.cwd()):
        return False
    cfg.data.manifest = str(manifest.relative_to(Path.cwd()))
    return True


def _describe_data(cfg) -> str:
    d = cfg.data
    where = f"manifest {d.manifest}" if d.manifest else f"built-in corpus ({d.corpus_minutes:g} min rendered)"
    return f"{where}, {d.sample_rate} Hz, {d.channels} channel(s)"


def export(
    run: str | Path,
    name: str,
    *,
    fp16: bool = False,
    int8: bool = False,
    parent: str | None = None,
    dest: str | Path | None = None,
    description: str | None = None,
    training_data: str | None = None,
    command: str | None = None,
    quality: dict | None = None,
) -> Path:
    """Write the bundle `name` (config.json, model.safetensors, card.json) from a trained run's latest
    checkpoint: EMA weights if the run kept them, no optimiser or critic state; fp16 on request.
    An AR run's bundle names its codec by the bundle `parent` (default: the known parent of `name`),
    which must hold the very codec the run trained on. Written atomically into `dest` (default `root()`)."""
    from arwave.checkpoint import _atomic_dir, read_config, resolve_run, save_tensors
    from arwave.config import run_config_to_json
    from arwave.paths import atomic_write_text
    from arwave.registry import get_kind

    if not is_name(name):
        raise ArwaveError(f"{name!r}: a bundle name is lower-case letters, digits, '.', '_' and '-'")
    run_dir, ckpt = resolve_run(run)
    if is_bundle(run_dir):
        raise ArwaveError(f"{run}: already a bundle; export a training run")
    cfg = read_config(run_dir)
    known = KNOWN.get(name)
    if known is not None and known.kind != cfg.kind:
        raise ArwaveError(f"{name} is a {known.kind} model; {run} is a {cfg.kind} run")
    tensors = _weights_used(run_dir, ckpt)
    model = get_kind(cfg.kind).build_model(cfg, None)  # checks the weights fit the config
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ArwaveError(
            f"{ckpt}: weights do not match the config (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    parameters = sum(p.numel() for p in model.parameters())
    is_ar = bool(cfg.parent)
    if is_ar:
        parent = parent or (known.parent if known else "")
        if not parent:
            raise ArwaveError(f"{run} is built on a codec: give the bundled codec it was trained on (--parent NAME)")
        _check_parent(run_dir, cfg, parent)
        cfg.parent = parent
        if hasattr(cfg.model, "codec_run"):
            cfg.model.codec_run = parent
    elif parent:
        raise ArwaveError(f"{run} is a {cfg.kind} run: it has no parent codec (drop --parent)")
    kept32 = n_int8 = 0
    if int8:
        tensors, n_int8 = _int8(tensors)
    elif fp16:
        tensors, kept32 = _half(tensors)
    state = json.loads((ckpt / "state.json").read_text()) if (ckpt / "state.json").is_file() else {}
    final = Path(dest).expanduser() / name if dest is not None else root() / name
    with _atomic_dir(final, prefix=f".{name}-") as tmp:
        portable = _portable_manifest(cfg)
        config_text = (run_dir / CONFIG).read_text() if not (is_ar or portable) else run_config_to_json(cfg)
        atomic_write_text(tmp / CONFIG, config_text)
        save_tensors(tmp / WEIGHTS, tensors)
        size = (tmp / WEIGHTS).stat().st_size
        fmt = "safetensors fp16" + (f" ({kept32} tensors fp32)" if kept32 else "") if fp16 else "safetensors fp32"
        if int8:
            fmt = f"safetensors int8 weight-only ({n_int8} matrices, per-row fp16 scales), the rest fp16"
        card = {
            "name": name,
            "kind": cfg.kind,
            "description": description or (known.description if known else f"{cfg.kind} model"),
            "parent": parent if is_ar else None,
            "parameters": int(parameters),
            "size_bytes": int(size),
            "format": fmt,
            "training_data": training_data or _describe_data(cfg),
            "training_command": command or f"(not recorded: exported from {run_dir})",
            "steps": int(state.get("step", 0)),
            "quality": dict(quality or {}),
            "weights": "ema" if (ckpt / "ema.safetensors").is_file() else "model",
            "sha256": sha256(tmp / WEIGHTS),
            "source": f"{run_dir.name}/{ckpt.relative_to(run_dir)}",
            "exported": datetime.date.today().isoformat(),
        }
        atomic_write_text(tmp / CARD, json.dumps(card, indent=2) + "\n")
    return final
