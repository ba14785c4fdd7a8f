"""Model kinds: each trainable kind (codec, cam, aar, nexttoken, classifier) registers how to build its
model, its training task and its presets. The CLI, `arwave.load` and the training loop only talk to
this registry, so a new kind needs no edits elsewhere.

A kind lives in its own module (see `_MODULES`) that calls `register(Kind(...))` on import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from arwave.errors import ArwaveError

if TYPE_CHECKING:
    import torch.nn as nn

    from arwave.config import RunConfig
    from arwave.training.task import Task

# kind name -> module that registers it (imported lazily so `arwave --help` stays fast)
_MODULES = {
    "codec": "arwave.codec.kind",
    "cam": "arwave.models.cam.kind",
    "aar": "arwave.models.aar.kind",
    "nexttoken": "arwave.models.nexttoken.kind",
    "classifier": "arwave.evaluation.classifier",
}
KIND_NAMES = tuple(_MODULES)
PRESET_NAMES = ("tiny", "small", "paper")


@dataclass
class Kind:
    name: str
    config_cls: type  # the kind's model-config dataclass
    presets: dict[str, Callable[[], RunConfig]]  # tiny / small / paper -> full RunConfig
    build_model: Callable[[RunConfig, Path | None], nn.Module]  # (config, run dir or None)
    build_task: Callable[[RunConfig, Path], Task]  # (config, run dir) -> training task
    description: str = ""


_KINDS: dict[str, Kind] = {}


class KindNotAvailable(ArwaveError):
    pass


def register(kind: Kind) -> Kind:
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> Kind:
    if name not in _KINDS:
        if name not in _MODULES:
            raise KindNotAvailable(f"unknown model kind {name!r} (known: {', '.join(KIND_NAMES)})")
        try:
            importlib.import_module(_MODULES[name])
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith("arwave"):
                raise KindNotAvailable(f"model kind {name!r} is not built yet in this version of arwave") from None
            raise
    return _KINDS[name]


def preset(kind: str, name: str) -> RunConfig:
    k = get_kind(kind)
    if name not in k.presets:
        raise KindNotAvailable(f"{kind}: no preset {name!r} (known: {', '.join(k.presets)})")
    return k.presets[name]()
