"""Which device a model runs on: one rule for training, generation and the embedders."""

from __future__ import annotations

import torch

from arwave.errors import ArwaveError


def pick_device(name: str | torch.device | None = "auto", setting: str = "device") -> torch.device:
    """ "auto" (or None): the GPU when there is one, else the CPU. Asking for CUDA where there is none is
    an error that names the `setting` the user gave (a flag or a config field)."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ArwaveError(f"{setting} {name}: no CUDA device is available")
    return device
