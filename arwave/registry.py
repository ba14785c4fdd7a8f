"""Model kinds: each trainable kind (codec, cam, aar, nexttoken, classifier) names its config class,
presets, model builder and training task. The CLI, `arwave.load` and the training loop only talk to
this registry, so a new kind needs no edits elsewhere.

A kind is one line of `_MODULES`: the module whose `KIND` describes it (imported on first use, so
`arwave --help` stays fast). `register` adds a kind defined elsewhere (tests do).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from arwave.config import ConfigError, DataConfig, RunConfig, TrainConfig, from_dict, validate_config
from arwave.errors import ArwaveError

if TYPE_CHECKING:
    import torch.nn as nn

    from arwave.training.task import Task

# kind name -> module whose KIND describes it
_MODULES = {
    "codec": "arwave.codec.kind",
    "cam": "arwave.models.cam.kind",
    "aar": "arwave.models.aar.kind",
    "nexttoken": "arwave.models.nexttoken.kind",
    "classifier": "arwave.evaluation.classifier_kind",
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
            register(importlib.import_module(_MODULES[name]).KIND)
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


def check_run_config(cfg: RunConfig, source: str = "config") -> RunConfig:
    """`validate_config`, and the model section is the config class of `cfg.kind`."""
    if not isinstance(cfg.kind, str):
        raise ConfigError(f"{source}: kind = {cfg.kind!r}: must be a string")
    kind = get_kind(cfg.kind)
    if not isinstance(cfg.model, kind.config_cls):
        raise ConfigError(
            f"{source}: model must be a {kind.config_cls.__name__} for kind {cfg.kind!r}, "
            f"got {type(cfg.model).__name__}"
        )
    return validate_config(cfg, source)


def run_config_from_dict(data: dict, source: str = "config") -> RunConfig:
    """A checked RunConfig from parsed JSON; any missing, unknown or mistyped field is one ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
    for key in ("kind", "model"):
        if key not in data:
            raise ConfigError(f"{source}: missing {key!r}")
    if not isinstance(data["kind"], str):
        raise ConfigError(f"{source}: kind = {json.dumps(data['kind'])}: must be a string")
    kind = get_kind(data["kind"])
    cfg = RunConfig(
        kind=data["kind"],
        preset=data.get("preset", "custom"),
        model=from_dict(kind.config_cls, data["model"], f"{source}: model"),
        data=from_dict(DataConfig, data.get("data", {}), f"{source}: data"),
        train=from_dict(TrainConfig, data.get("train", {}), f"{source}: train"),
        parent=data.get("parent", ""),
        init_from=data.get("init_from", ""),
    )
    unknown = sorted(set(data) - {"kind", "preset", "model", "data", "train", "parent", "init_from"})
    if unknown:
        raise ConfigError(f"{source}: unknown keys {unknown}")
    return check_run_config(cfg, source)
