"""Typed configuration: dataclasses, named presets, `--set key=value` overrides, JSON round trip.

Every run is described by one `RunConfig` = which model kind + its model config + data + training.
Each model kind registers its model-config dataclass and presets (`tiny`, `small`, `paper`) in
`arwave.registry`; this file only knows the generic parts.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any


from arwave.errors import ArwaveError


class ConfigError(ArwaveError, ValueError):
    """A bad configuration key or value (named in the message)."""


@dataclass
class DataConfig:
    """Where the audio comes from and how it is cut into training examples."""
    manifest: str = ""              # manifest.jsonl from `arwave data prepare` / `arwave data corpus`; "" = built-in corpus
    corpus_dir: str = ""            # where the built-in corpus lives ("" = ~/.cache/arwave/corpus)
    corpus_minutes: float = 6.0     # size of the built-in corpus to render if it is missing
    sample_rate: int = 48000
    channels: int = 2
    segment_seconds: float = 1.0    # crop length served to the model
    batch_size: int = 8             # per process
    num_workers: int = 0
    label_key: str = "label"        # manifest field used for class conditioning / classifier targets


@dataclass
class TrainConfig:
    """One training loop for every model (see arwave.training.loop)."""
    max_steps: int = 1000
    minutes: float = 0.0            # wall-clock budget; 0 = no budget (stop at max_steps)
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    warmup_steps: int = 100
    lr_min_ratio: float = 0.1       # cosine decays to lr * lr_min_ratio
    grad_clip: float = 1.0          # 0 = off
    ema_decay: float = 0.0          # 0 = no EMA weights
    critic_lr: float = 3e-4         # adversary (codec discriminator) learning rate
    critic_betas: tuple[float, float] = (0.5, 0.9)
    seed: int = 0
    log_every: int = 10
    val_every: int = 200
    val_batches: int = 4
    ckpt_every: int = 200
    keep_checkpoints: int = 2
    device: str = "auto"            # auto | cpu | cuda
    mixed_precision: bool = False   # bf16 autocast, used on GPU only
    compile: bool = False
    threads: int = 0                # torch intra-op threads; 0 = torch's default (all cores)


@dataclass
class RunConfig:
    kind: str                       # codec | cam | aar | nexttoken | classifier
    preset: str
    model: Any                      # the kind's model config dataclass
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    parent: str = ""                # run this one builds on (the codec for AR models), relative to the run


# ---------------------------------------------------------------------------------------------------
# overrides

def _coerce(value: str, typ: Any, key: str) -> Any:
    """Parse a command-line string into the annotated type of a dataclass field."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    try:
        if typ is bool:
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if typ is int:
            return int(value)
        if typ is float:
            return float(value)
        if typ is str:
            return value
        if origin in (tuple, list):
            parts = [p for p in value.strip("()[]").split(",") if p.strip()]
            inner = args[0] if args else str
            items = [_coerce(p.strip(), inner, key) for p in parts]
            return tuple(items) if origin is tuple else items
        if origin is typing.Union or str(origin) == "types.UnionType":
            for a in args:
                if a is type(None):
                    if value.lower() in ("none", "null"):
                        return None
                    continue
                try:
                    return _coerce(value, a, key)
                except ConfigError:
                    pass
        return json.loads(value)
    except (ValueError, json.JSONDecodeError):
        raise ConfigError(f"--set {key}={value}: cannot read {value!r} as {getattr(typ, '__name__', typ)}") from None


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply `a.b=c` strings. Top-level names of the model config may be given without `model.`."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key=value")
        key, value = item.split("=", 1)
        path = key.strip().split(".")
        if path[0] not in ("model", "data", "train", "parent") and hasattr(cfg.model, path[0]):
            path = ["model", *path]
        obj: Any = cfg
        for name in path[:-1]:
            if not dataclasses.is_dataclass(obj) or not hasattr(obj, name):
                raise ConfigError(f"--set {key}: no section {name!r}")
            obj = getattr(obj, name)
        name = path[-1]
        fields = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"--set {key}: unknown key {name!r} (known here: {known})")
        hints = typing.get_type_hints(type(obj))
        setattr(obj, name, _coerce(value, hints[name], key))
    return cfg


# ---------------------------------------------------------------------------------------------------
# JSON round trip

def to_dict(cfg: Any) -> Any:
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def from_dict(cls: type, data: dict) -> Any:
    """Build dataclass `cls` from a dict, recursively; unknown keys are an error, missing keys default."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        typ = hints[name]
        if dataclasses.is_dataclass(typ) and isinstance(value, dict):
            value = from_dict(typ, value)
        elif typing.get_origin(typ) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def run_config_to_json(cfg: RunConfig) -> str:
    return json.dumps(to_dict(cfg), indent=2)


def run_config_from_dict(data: dict) -> RunConfig:
    from arwave.registry import get_kind
    kind = get_kind(data["kind"])
    return RunConfig(
        kind=data["kind"],
        preset=data.get("preset", "custom"),
        model=from_dict(kind.config_cls, data["model"]),
        data=from_dict(DataConfig, data.get("data", {})),
        train=from_dict(TrainConfig, data.get("train", {})),
        parent=data.get("parent", ""),
    )
