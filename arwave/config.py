"""Typed configuration: dataclasses, named presets, `--set key=value` overrides, JSON round trip.

Every run is described by one `RunConfig` = which model kind + its model config + data + training.
Each model kind's config dataclass lives beside its model and is named in `arwave.registry`, with its
presets (`tiny`, `small`, `paper`); this file only knows the generic parts and imports no kind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from arwave.errors import ArwaveError


class ConfigError(ArwaveError, ValueError):
    """A bad configuration key or value (named in the message)."""


# ---------------------------------------------------------------------------------------------------
# what a field allows: its annotated type, plus an optional rule in the dataclass's `LIMITS` ClassVar.
# Numbers without a rule must be finite and >= 0 (no size, rate, weight or count here is negative).


@dataclass(frozen=True)
class Range:
    """lo <= x <= hi (an open end excludes the bound); every value must also be finite."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def allows(self, x) -> bool:
        return (
            math.isfinite(x)
            and (x > self.lo if self.lo_open else x >= self.lo)
            and (x < self.hi if self.hi_open else x <= self.hi)
        )

    def __str__(self) -> str:
        if self.lo == -math.inf and self.hi == math.inf:
            return "a finite number"
        if self.hi == math.inf:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        if self.lo == -math.inf:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


@dataclass(frozen=True)
class OneOf:
    """A string from a fixed list (or matching one of the `patterns`, regular expressions)."""

    choices: tuple[str, ...]
    patterns: tuple[str, ...] = ()

    def allows(self, x) -> bool:
        return x in self.choices or any(re.fullmatch(p, x) for p in self.patterns)

    def __str__(self) -> str:
        return "one of " + ", ".join(self.choices)


def at_least(lo: float) -> Range:
    return Range(lo)


def above(lo: float) -> Range:
    return Range(lo, lo_open=True)


def between(lo: float, hi: float, hi_open: bool = False) -> Range:
    return Range(lo, hi, hi_open=hi_open)


ANY_NUMBER = Range()
NON_NEGATIVE = at_least(0)


@dataclass
class DataConfig:
    """Where the audio comes from and how it is cut into training examples."""

    manifest: str = ""  # manifest.jsonl from `arwave data prepare` / `arwave data corpus`; "" = built-in corpus
    corpus_dir: str = ""  # where the built-in corpus lives ("" = ~/.cache/arwave/corpus)
    corpus_minutes: float = 6.0  # size of the built-in corpus to render if it is missing
    sample_rate: int = 48000
    channels: int = 2
    segment_seconds: float = 1.0  # crop length served to the model
    batch_size: int = 8  # per process
    num_workers: int = 0
    label_key: str = "label"  # manifest field used for class conditioning / classifier targets
    label_names: list[str] = field(default_factory=list)  # fixed class list (label ids index it; other
    # labels count as unlabelled); [] = the manifest's sorted labels. A
    # fine-tune (`--init-from`) sets it to the source model's classes

    LIMITS: ClassVar[dict] = {
        "corpus_minutes": above(0),
        "sample_rate": at_least(1),
        "channels": at_least(1),
        "segment_seconds": above(0),
        "batch_size": at_least(1),
    }


@dataclass
class TrainConfig:
    """One training loop for every model (see arwave.training.loop)."""

    max_steps: int = 1000
    minutes: float = 0.0  # wall-clock budget; 0 = no budget (stop at max_steps)
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    warmup_steps: int = 100
    lr_min_ratio: float = 0.1  # cosine decays to lr * lr_min_ratio
    grad_clip: float = 1.0  # 0 = off
    ema_decay: float = 0.0  # 0 = no EMA weights
    critic_lr: float = 3e-4  # adversary (codec discriminator) learning rate
    critic_betas: tuple[float, float] = (0.5, 0.9)
    seed: int = 0
    log_every: int = 10
    val_every: int = 200
    val_batches: int = 4
    ckpt_every: int = 200
    keep_checkpoints: int = 2
    device: str = "auto"  # auto | cpu | cuda
    mixed_precision: bool = False  # bf16 autocast, used on GPU only
    compile: bool = False
    # top-level parts of the model held fixed (e.g. "encoder,bottleneck" of a codec: a decoder-only
    # fine-tune keeps every latent/token the same, so generators trained on them stay valid). Frozen
    # parts get no gradient and stay in eval mode (no codebook EMA updates or dead-code resets)
    freeze: tuple[str, ...] = ()
    threads: int = 0  # torch intra-op threads; 0 = torch's default (all cores)
    accumulate: int = 1  # micro-batches of data.batch_size summed into one optimiser step
    print_every: int = 0  # `arwave train` prints a progress line every N steps; 0 = every log_every
    sample_every: int = 0  # audio samples (RUN/samples + TensorBoard) every N steps; 0 = at each checkpoint
    tensorboard: bool = True  # TensorBoard event files in RUN/tensorboard/ beside metrics.csv

    LIMITS: ClassVar[dict] = {
        "accumulate": at_least(1),
        "lr": above(0),
        "betas": between(0, 1, hi_open=True),
        "lr_min_ratio": between(0, 1),
        "ema_decay": between(0, 1, hi_open=True),
        "critic_lr": above(0),
        "critic_betas": between(0, 1, hi_open=True),
        "seed": ANY_NUMBER,
        "log_every": at_least(1),
        "val_batches": at_least(1),
        "device": OneOf(("auto", "cpu", "cuda"), (r"cuda:\d+",)),
    }


@dataclass
class RunConfig:
    kind: str  # codec | cam | aar | nexttoken | classifier
    preset: str
    model: Any  # the kind's model config dataclass
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    parent: str = ""  # run this one builds on (the codec for AR models), relative to the run
    init_from: str = ""  # weights the run starts from (bundled name or run folder; "" = random
    # init): a fine-tune. Read once, at step 0; optimiser and schedule are fresh


# ---------------------------------------------------------------------------------------------------
# overrides


def _coerce(value: str, typ: Any, key: str) -> Any:
    """Parse a command-line string into the annotated type of a dataclass field (checked afterwards)."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
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
        return [_coerce(p.strip(), inner, key) for p in parts]
    if origin is typing.Union or str(origin) == "types.UnionType":
        for a in args:
            if a is type(None):
                if value.lower() in ("none", "null"):
                    return None
                continue
            try:
                return _coerce(value, a, key)
            except ValueError:
                pass
    return json.loads(value)


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply `a.b=c` strings. Top-level names of the model config may be given without `model.`.
    Each value is checked against its field (type and `LIMITS`) before it is set."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key=value")
        key, value = item.split("=", 1)
        path = key.strip().split(".")
        if path[0] not in ("model", "data", "train", "parent", "init_from") and hasattr(cfg.model, path[0]):
            path = ["model", *path]
        if path == ["kind"]:
            raise ConfigError(
                f"--set {item}: the model kind is chosen by the command (`arwave train KIND`), not by --set"
            )
        if len(path) == 1 and path[0] in ("model", "data", "train"):
            raise ConfigError(
                f"--set {item}: {path[0]} is a section; set one of its fields (e.g. {path[0]}.NAME=VALUE)"
            )
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
        typ, rule = _field_spec(type(obj), name)
        try:
            parsed = _coerce(value, typ, key)
        except (ValueError, json.JSONDecodeError):
            raise ConfigError(
                f"--set {item}: cannot read {value!r}; {'.'.join(path)} must be {_allowed(typ, rule)}"
            ) from None
        try:
            setattr(obj, name, _check(parsed, typ, rule))
        except _NotAllowed as bad:
            raise ConfigError(f"--set {item}: {'.'.join(path)} must be {bad}") from None
    return validate_config(cfg)


# ---------------------------------------------------------------------------------------------------
# config files: `arwave train KIND --config FILE.toml` (or a run's config.json)

SECTIONS = ("model", "data", "train")
FILE_KEYS = ("kind", "preset", "init_from", "parent", *SECTIONS)


def read_config_file(path: str | Path) -> dict:
    """A run's settings from a TOML file (or a JSON one, e.g. another run's config.json): top-level
    `kind`, `preset`, `init_from` and the sections [model], [data], [train] of config.json, each
    optional. Only the structure is checked here; `apply_values` checks each value against its field."""
    path = Path(path).expanduser()
    try:
        import tomllib
    except ImportError:  # Python 3.10: the stdlib reads TOML from 3.11 on
        if path.suffix != ".json":
            raise ConfigError(
                f"--config {path}: reading TOML needs Python 3.11 or later; give the settings as a .json file instead"
            ) from None
        tomllib = None
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"--config {path}: unreadable ({err})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, ValueError) as err:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'} ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of settings")
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown} (known: {', '.join(FILE_KEYS)})")
    for key in ("kind", "preset", "init_from", "parent"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{path}: {key} = {json.dumps(data[key], default=str)}: must be a string")
    for key in SECTIONS:
        if key in data and not isinstance(data[key], dict):
            raise ConfigError(f"{path}: {key} must be a section ([{key}]) of NAME = VALUE lines")
    return data


def apply_values(cfg: RunConfig, values: dict, source: str) -> RunConfig:
    """Set typed values (`{"model": {...}, "data": {...}, "train": {...}}`, as parsed from a config
    file) on `cfg`, each checked against its field's type and LIMITS; the error names `source`."""
    for section in SECTIONS:
        obj = getattr(cfg, section)
        for name, value in values.get(section, {}).items():
            fields = {f.name for f in dataclasses.fields(obj)}
            if name not in fields:
                raise ConfigError(f"{source}: [{section}] has no setting {name!r} (known: {', '.join(sorted(fields))})")
            typ, rule = _field_spec(type(obj), name)
            try:
                setattr(obj, name, _check(value, typ, rule))
            except _NotAllowed as bad:
                raise ConfigError(
                    f"{source}: {section}.{name} = {json.dumps(value, default=str)}: must be {bad}"
                ) from None
    if "parent" in values:
        cfg.parent = values["parent"]
    return validate_config(cfg, source)


# ---------------------------------------------------------------------------------------------------
# validation: one place that checks every field's type and range (`--set`, config.json, Python API)


class _NotAllowed(Exception):
    """Internal: carries the description of what the field allows."""


def _field_spec(cls: type, name: str) -> tuple[Any, Any]:
    """(annotated type, rule or None) of field `name` of dataclass `cls`."""
    return typing.get_type_hints(cls)[name], getattr(cls, "LIMITS", {}).get(name)


def _allowed(typ: Any, rule: Any) -> str:
    """What a field allows, in words (`must be ...`)."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if typ is bool:
        return "true or false"
    if typ in (int, float):
        rule = rule if rule is not None else NON_NEGATIVE
        what = "a whole number" if typ is int else "a number"
        return f"{what} {rule}" if rule != ANY_NUMBER else ("a whole number" if typ is int else "a finite number")
    if typ is str:
        return str(rule) if rule is not None else "a string"
    if origin in (tuple, list):
        inner = args[0] if args else str
        each = _allowed(inner, rule)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"{len(args)} values, each {each}"
        return f"a list, each item {each}"
    return getattr(typ, "__name__", str(typ))


def _check(value: Any, typ: Any, rule: Any) -> Any:
    """`value` normalised to `typ` (int -> float, list -> tuple), or _NotAllowed."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if typ is bool:
        if not isinstance(value, bool):
            raise _NotAllowed(_allowed(typ, rule))
        return value
    if typ in (int, float):
        ok_type = isinstance(value, int) and not isinstance(value, bool) or (typ is float and isinstance(value, float))
        if not ok_type or not (rule if rule is not None else NON_NEGATIVE).allows(value):
            raise _NotAllowed(_allowed(typ, rule))
        return float(value) if typ is float else value
    if typ is str:
        if not isinstance(value, str) or (rule is not None and not rule.allows(value)):
            raise _NotAllowed(_allowed(typ, rule))
        return value
    if origin in (tuple, list):
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        if not isinstance(value, (list, tuple)) or (fixed and len(value) != len(args)):
            raise _NotAllowed(_allowed(typ, rule))
        inner = args[0] if args else str
        try:
            items = [_check(v, inner, rule) for v in value]
        except _NotAllowed:
            raise _NotAllowed(_allowed(typ, rule)) from None
        return tuple(items) if origin is tuple else items
    if origin is typing.Union or str(origin) == "types.UnionType":
        for a in args:
            if a is type(None) and value is None:
                return None
            try:
                return _check(value, a, rule)
            except _NotAllowed:
                pass
        raise _NotAllowed(" or ".join(_allowed(a, rule) for a in args))
    return value


def validate_fields(obj: Any, prefix: str, source: str = "config") -> Any:
    """Check (and normalise) every field of dataclass `obj`; the error names source, field, value and rule."""
    for f in dataclasses.fields(obj):
        typ, rule = _field_spec(type(obj), f.name)
        value = getattr(obj, f.name)
        try:
            setattr(obj, f.name, _check(value, typ, rule))
        except _NotAllowed as bad:
            raise ConfigError(
                f"{source}: {prefix}{f.name} = {json.dumps(to_dict(value), default=str)}: must be {bad}"
            ) from None
    return obj


def validate_config(cfg: RunConfig, source: str = "config") -> RunConfig:
    """Type and range of every field of a resolved RunConfig (the kind's own cross-field checks run when
    its model is built; `registry.check_run_config` also checks the model section's class). `source`
    says where the values came from (a config.json path, `--set`)."""
    for name in ("kind", "preset", "parent", "init_from"):
        if not isinstance(getattr(cfg, name), str):
            raise ConfigError(f"{source}: {name} = {getattr(cfg, name)!r}: must be a string")
    if not dataclasses.is_dataclass(cfg.model):
        raise ConfigError(f"{source}: model must be a model config dataclass, got {type(cfg.model).__name__}")
    for section in ("data", "train"):
        expected = DataConfig if section == "data" else TrainConfig
        if not isinstance(getattr(cfg, section), expected):
            raise ConfigError(
                f"{source}: {section} must be a {expected.__name__}, got {type(getattr(cfg, section)).__name__}"
            )
    validate_fields(cfg.model, "model.", source)
    validate_fields(cfg.data, "data.", source)
    validate_fields(cfg.train, "train.", source)
    return cfg


# ---------------------------------------------------------------------------------------------------
# JSON round trip


def to_dict(cfg: Any) -> Any:
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def from_dict(cls: type, data: dict, where: str = "") -> Any:
    """Build dataclass `cls` from a dict, recursively; unknown keys are an error, missing keys default.
    Values are not checked here: `validate_config` does that for the whole RunConfig."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected an object of fields, got {json.dumps(data)[:60]}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown keys {sorted(unknown)}")
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
