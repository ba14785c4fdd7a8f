"""Load a model that generates audio and turn a user's sampling options into keyword arguments of its
`generate` / `stream`, with the checks that run before any work. `arwave generate`, `arwave stream`,
`arwave eval` and the web app (`arwave serve`) all go through here; messages name the CLI flags.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from arwave.config import at_least, between
from arwave.device import pick_device
from arwave.errors import ArwaveError

MAX_SECONDS = 600.0  # default --max-seconds: a longer request is far more often a typo than a wish

# CLI flag -> keyword argument of generate()/stream()
SAMPLING_FLAGS = {
    "prompt": "--prompt",
    "class_label": "--class",
    "embedding": "--embedding",
    "cfg": "--cfg",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "k_inf": "--k-inf",
    "head_steps": "--head-steps",
    "temperature": "--temperature",
}


def load_generator(run: str, device: str = "cpu", precision: str | None = None, threads: int | None = None):
    import arwave

    if threads is not None:
        if threads < 1:
            raise ArwaveError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    model = arwave.load(run, device=str(pick_device(device, "--device")))
    kind = getattr(getattr(model, "config", None), "kind", type(model).__name__)
    if not hasattr(model, "generate") or not getattr(model, "sample_rate", None):
        raise ArwaveError(f"{run}: a {kind} run does not generate audio (use a cam, aar or nexttoken run)")
    if precision == "auto":
        from arwave.models.quantize import auto_precision

        precision = auto_precision(model)
    if precision not in (None, "float32"):
        if not hasattr(model, "set_precision"):
            raise ArwaveError(f"{kind} models do not take --precision")
        model.set_precision(precision)
    return model


def resolve_class(model, label: str) -> int:
    """A class name from the model's label list, or an integer index."""
    names = list(getattr(model, "label_names", []) or [])
    if label in names:
        return names.index(label)
    try:
        return int(label)
    except ValueError:
        known = ", ".join(names) if names else "none: the model is unconditional"
        raise ArwaveError(f"--class {label}: unknown class (known: {known})") from None


def sampling_kwargs(model, args) -> dict:
    """The sampling options the user gave, checked against the model's `sampling_options`."""
    given = {k: getattr(args, k) for k in SAMPLING_FLAGS if getattr(args, k, None) is not None}
    check_sampling_values(given)
    supported = getattr(model, "sampling_options", None)
    if supported is not None:
        bad = [SAMPLING_FLAGS[k] for k in given if k not in supported]
        if bad:
            kind = getattr(getattr(model, "config", None), "kind", type(model).__name__)
            ok = " ".join(SAMPLING_FLAGS[k] for k in SAMPLING_FLAGS if k in supported) or "none"
            raise ArwaveError(f"{kind} models do not take {', '.join(bad)} (they take: {ok})")
    if "prompt" in given:
        from arwave.data.audio import load_audio

        given["prompt"] = load_audio(given["prompt"], sample_rate=model.sample_rate, channels=model.channels)
    if "class_label" in given:
        given["class_label"] = resolve_class(model, given["class_label"])
    if "embedding" in given:
        given["embedding"] = load_embedding(given["embedding"])
    return given


# numeric sampling option -> the values it allows (the same rules as the config fields they override)
_SAMPLING_RANGES = {
    "cfg": at_least(0),
    "top_k": at_least(0),
    "top_p": between(0, 1),
    "k_inf": between(0, 1, hi_open=True),
    "head_steps": at_least(1),
    "temperature": at_least(0),
}


def check_sampling_values(given: dict) -> None:
    """Numeric sampling options in range (finite; e.g. --temperature >= 0, --head-steps >= 1, --k-inf < 1)."""
    for name, value in given.items():
        rule = _SAMPLING_RANGES.get(name)
        if rule is not None and not rule.allows(value):
            raise ArwaveError(f"{SAMPLING_FLAGS[name]} {value:g}: must be {rule}")


def load_embedding(path: str) -> torch.Tensor:
    """A float vector (E,) or matrix (num, E) from .npy (no pickles) or a one-tensor .safetensors."""
    p = Path(path)
    if not p.is_file():
        raise ArwaveError(f"{p}: no such embedding file")
    try:
        if p.suffix == ".npy":
            return torch.from_numpy(np.load(p, allow_pickle=False)).float()
        if p.suffix == ".safetensors":
            from arwave.checkpoint import load_tensors

            tensors = load_tensors(p)
            if len(tensors) != 1:
                raise ArwaveError(f"{p}: expected one tensor, found {len(tensors)}")
            return next(iter(tensors.values())).float()
    except ValueError as err:
        raise ArwaveError(f"{p}: unreadable embedding ({err})") from None
    raise ArwaveError(f"{p}: embeddings are read from .npy or .safetensors files")


def check_seconds(seconds: float, max_seconds: float = MAX_SECONDS) -> None:
    """A finite, positive length no longer than `max_seconds` (which the user can raise)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ArwaveError(f"--seconds {seconds:g}: must be a finite number > 0")
    if not (max_seconds > 0):
        raise ArwaveError(f"--max-seconds {max_seconds:g}: must be > 0")
    if seconds > max_seconds:
        raise ArwaveError(
            f"--seconds {seconds:g} is over the limit of {max_seconds:g} s; "
            f"pass --max-seconds {seconds:g} if you mean it"
        )


def _available_bytes(device: str) -> int | None:
    """Free memory on `device` (MemAvailable on Linux CPUs), or None when it cannot be told."""
    if str(device).startswith("cuda"):
        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(num: int, seconds: float, model, device: str) -> None:
    """Refuse a batch whose audio alone would not fit: num × samples × channels × 4 bytes, times 8 for the
    decoder's work buffers (a floor, not an estimate of the whole model's needs)."""
    need = 8 * 4 * num * round(seconds * model.sample_rate) * model.channels
    free = _available_bytes(device)
    if free is not None and need > free:
        raise ArwaveError(
            f"--num {num} × {seconds:g} s needs at least {need / 1e9:.3g} GB of memory, more than the "
            f"{free / 1e9:.3g} GB free: generate fewer or shorter clips per call"
        )
