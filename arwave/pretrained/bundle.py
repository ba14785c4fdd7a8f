"""Export a trained run into a bundle (`arwave export RUN NAME`, `scripts/train-pretrained.sh NAME`):
config.json, weights (EMA when kept; fp16 or int8 on request) and card.json, written atomically."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import torch

from arwave.checkpoint import (
    INT8_SCALE,
    _atomic_dir,
    load_tensors,
    quantize_int8,
    read_config,
    resolve_run,
    save_tensors,
)
from arwave.config import run_config_to_json
from arwave.errors import ArwaveError
from arwave.paths import atomic_write_text
from arwave.pretrained import CARD, CONFIG, FP16_MAX, KNOWN, WEIGHTS, find, is_bundle, is_name, read_card, root, sha256
from arwave.registry import get_kind


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
    ema = ckpt / "ema.safetensors"
    return load_tensors(ema if ema.is_file() else ckpt / WEIGHTS)


def _check_parent(run_dir: Path, cfg, parent: str) -> None:
    """An AR run's own codec copy (RUN/<cfg.parent>) must be the bundled `parent` (same config, same
    weights up to the bundle's storage precision): the exported model decodes with the bundle."""
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
