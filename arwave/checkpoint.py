"""Run folders and checkpoints: safetensors weights + JSON, written atomically, loaded without pickle.

Layout of a run folder:

    RUN/config.json                      resolved RunConfig (written before training starts)
    RUN/checkpoints/step-0000200/        one complete checkpoint; a folder is renamed into place
        model.safetensors                only after every file in it is written, so a crash mid-save
        ema.safetensors (optional)       leaves the previous checkpoint untouched
        critic.safetensors (optional)
        optim.safetensors + state.json   optimiser tensors; step, data position, optimiser scalars
    RUN/metrics.csv, RUN/loss.png        training log
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from arwave.errors import ArwaveError
from arwave.paths import atomic_write_text, missing_reason, replacing

CHECKPOINTS = "checkpoints"


class CheckpointError(ArwaveError):
    pass


# ---------------------------------------------------------------------------------------------------
# tensor files


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """safetensors file written to a temp name, then renamed. Shared storage is copied so it saves."""
    with replacing(path) as tmp:
        save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        return load_file(str(path), device=str(device))
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None


# ---------------------------------------------------------------------------------------------------
# optimiser state <-> (tensors, json) without pickle


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for pid, entries in state["state"].items():
        meta["state"][str(pid)] = {}
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{name}"] = value
                meta["state"][str(pid)][name] = "__tensor__"
            else:
                meta["state"][str(pid)][name] = value
    return tensors, meta


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state = {}
    for pid, entries in meta["state"].items():
        state[int(pid)] = {
            name: tensors[f"{pid}.{name}"] if value == "__tensor__" else value for name, value in entries.items()
        }
    return {"state": state, "param_groups": meta["param_groups"]}


@contextmanager
def _atomic_dir(final: Path, prefix: str):
    """Yield a temporary folder beside `final`; on success it replaces `final` in one rename, on any
    failure it is removed and `final` is left as it was."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=prefix))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------------
# checkpoint folders


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:08d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of an interrupted save are ignored)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / "state.json").is_file()]
    return sorted(done, key=lambda p: p.name)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def remove_stale_temp(run_dir: str | Path) -> list[Path]:
    """Remove the temp folders (`checkpoints/.tmp-step-*`) that a killed save left behind. Only the
    training process of a run calls this, at its start, so no save is in progress."""
    root = Path(run_dir) / CHECKPOINTS
    stale = sorted(root.glob(".tmp-step-*")) if root.is_dir() else []
    for p in stale:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return stale


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding NaN or inf (a checkpoint is never written from those)."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def save_checkpoint(
    run_dir: str | Path, step: int, files: dict[str, dict[str, torch.Tensor]], state: dict, keep: int = 2
) -> Path:
    """Write `files` (name -> tensors) and `state.json` into a temp folder, fsync, rename into place,
    then prune old checkpoints beyond `keep` (the one just written is always among those kept)."""
    final = checkpoint_dir(run_dir, step)
    with _atomic_dir(final, prefix=f".tmp-{final.name}-") as tmp:
        for name, tensors in files.items():
            save_tensors(tmp / f"{name}.safetensors", tensors)
        atomic_write_text(tmp / "state.json", json.dumps(state, indent=2))
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def resolve_run(path: str | Path) -> tuple[Path, Path]:
    """(run folder, checkpoint folder) for a run folder or a checkpoint folder inside one. A bundled
    pretrained model (`arwave.pretrained`: a bare name, when no folder of that name exists, or its
    folder) is its own checkpoint folder: (bundle, bundle)."""
    from arwave import pretrained

    path = Path(path)
    if not path.exists():
        bundle = pretrained.find(path)
        if bundle is not None:
            return bundle, bundle
        reason = missing_reason(path)
        if not reason.startswith("no such"):
            raise CheckpointError(f"{path}: {reason}")
        hint = " (nor a bundled model: `arwave models` lists them)" if pretrained.is_name(path) else ""
        raise CheckpointError(f"{path}: no such run folder{hint}")
    if not path.is_dir():
        raise CheckpointError(f"{path}: a file, not a run folder")
    if pretrained.is_bundle(path):
        return path, path
    if (path / "state.json").is_file() and path.parent.name == CHECKPOINTS:
        return path.parent.parent, path
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: not an arwave run folder (no config.json)")
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise CheckpointError(f"{path}: run has no complete checkpoint yet")
    return path, ckpt


def copy_run(src: str | Path, dst: str | Path) -> Path:
    """Copy a run (config.json + its latest checkpoint's weights, no optimiser state) to `dst`, atomically.
    AR runs keep a copy of their codec this way, so a run folder is self-contained."""
    from arwave import pretrained

    src, ckpt = resolve_run(src)
    dst = Path(dst)
    bundle = ckpt == src  # a bundled model: weights beside its config, no state.json
    step_name = pretrained.checkpoint_name(src) if bundle else ckpt.name
    with _atomic_dir(dst, prefix=f".{dst.name}-") as tmp:
        shutil.copy2(src / "config.json", tmp / "config.json")
        (tmp / CHECKPOINTS / step_name).mkdir(parents=True)
        for name in ("model.safetensors", "ema.safetensors", "state.json"):
            if (ckpt / name).is_file():
                shutil.copy2(ckpt / name, tmp / CHECKPOINTS / step_name / name)
        if bundle:
            atomic_write_text(tmp / CHECKPOINTS / step_name / "state.json", json.dumps(pretrained.copy_state(src)))
    return dst


def read_config(run_dir: str | Path):
    """The checked RunConfig of a run: a missing, unparsable or mistyped config.json is one clear error."""
    from arwave.registry import run_config_from_dict

    path = Path(run_dir) / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise CheckpointError(f"{path}: unreadable config ({err})") from None
    return run_config_from_dict(data, source=str(path))


def read_state(ckpt: str | Path) -> dict:
    """A checkpoint's state.json (a JSON object with an integer `step`), or one clear error."""
    path = Path(ckpt) / "state.json"
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint state ({err})") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) or isinstance(state.get("step"), bool):
        raise CheckpointError(f"{path}: not a checkpoint state (needs an object with an integer 'step')")
    return state


INT8_SCALE = "::int8_row_scale"  # suffix of the per-row scales of an int8-stored weight (bundles)


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight-only int8 storage of a (rows, ...) float tensor: q = round(w / s), s = max|w_row| / 127 per
    row (symmetric). Returns (q int8, s float16 (rows,)). `dequantize_tensors` undoes it (error ≤ s/2)."""
    rows = w.float().reshape(w.shape[0], -1)
    # the stored (float16) scale is what dequantizes, so quantize with it; rounded up so |q| <= 127
    scale = ((rows.abs().amax(dim=1) / 127.0).clamp_min(1e-7) * (1 + 2**-10)).half()
    q = torch.round(rows / scale.float()[:, None]).clamp(-127, 127).to(torch.int8).reshape(w.shape)
    return q, scale


def dequantize_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Bundles store weights as float16, or int8 with per-row scales (`quantize_int8`): all back to float32."""
    out = {}
    for k, v in tensors.items():
        if k.endswith(INT8_SCALE):
            continue
        scale = tensors.get(k + INT8_SCALE)
        if scale is not None and v.dtype == torch.int8:
            v = (v.float().reshape(v.shape[0], -1) * scale.float()[:, None]).reshape(v.shape)
        elif v.dtype == torch.float16:
            v = v.float()
        out[k] = v
    return out


def load_weights(
    module: torch.nn.Module, path: str | Path, device: str | torch.device = "cpu", strict: bool = True
) -> None:
    """`module.load_state_dict` from a safetensors file; wrong names or shapes are one CheckpointError."""
    tensors = dequantize_tensors(load_tensors(path, device))  # fp16 / int8 bundles -> float32
    try:
        missing, unexpected = module.load_state_dict(tensors, strict=False)
    except RuntimeError as err:  # size mismatch (torch lists every tensor; the first says enough)
        lines = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
        raise CheckpointError(f"{path}: weights do not match the config ({lines[0] if lines else err})") from None
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"{path}: weights do not match the config (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )


def load(path: str | Path, device: str | torch.device = "cpu", ema: bool = True):
    """Load any trained run (codec, AR model, classifier) from its folder, or a bundled pretrained model
    by name (`arwave models`). Never unpickles.

    Uses the EMA weights when the run kept them (and `ema` is true). The model is returned in eval
    mode, with `.run_dir` and `.config` attributes.
    """
    from arwave.registry import get_kind

    run_dir, ckpt = resolve_run(path)
    cfg = read_config(run_dir)
    model = get_kind(cfg.kind).build_model(cfg, run_dir)
    weights = ckpt / ("ema.safetensors" if ema and (ckpt / "ema.safetensors").is_file() else "model.safetensors")
    load_weights(model, weights)
    model.run_dir = run_dir
    model.config = cfg
    return model.to(device).eval()
