"""Fine-tuning: a NEW run that starts from the weights of a bundled model or of another run.

`arwave train KIND --init-from NAME|RUN` builds its config from the source's own config.json (model,
data and train sections; the model section must keep the source's architecture), records the source
in `RunConfig.init_from`, and the training loop loads the source's weights (the EMA weights when the
source kept them, as `arwave.load` does) into the fresh model at step 0. The optimiser, the LR
schedule, the step count and the EMA start anew. An AR model keeps the codec of its source (the
bundled codec a bundle names, or the codec copy inside a source run), so its tokens/latents mean what
the weights learnt. A class-conditioned model (and the classifier) keeps the source's classes:
`data.label_names` fixes the label list, so label ids mean the same classes; files whose label is
not one of them train the "no class" path (the classifier ignores them).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from pathlib import Path

import torch.nn as nn

from arwave.config import ConfigError, RunConfig
from arwave.errors import ArwaveError, ArwaveWarning

# model fields the training task fills from the data or the codec, not chosen by the user
_FILLED = {
    "codec_run",
    "label_names",
    "num_classes",
    "latent_scale",
    "latent_dim",
    "hop",
    "scales",
    "vocab_size",
    "levels",
    "embed_dim",
    "context_frames",
}


def _source(ref: str | Path) -> tuple[Path, Path, RunConfig]:
    """(run or bundle folder, checkpoint folder, config) of a fine-tune's source."""
    from arwave.checkpoint import read_config, resolve_run

    run_dir, ckpt = resolve_run(ref)
    return run_dir, ckpt, read_config(run_dir)


def finetune_config(ref: str | Path, kind: str) -> RunConfig:
    """The config a fine-tune of `ref` starts from: the source's, with `init_from` = ref (a bundled
    name stays a name), no parent yet (training attaches the codec), the source's codec as
    `model.codec_run`, and the source's classes fixed in `data.label_names`."""
    from arwave import pretrained

    run_dir, _, src = _source(ref)
    if src.kind != kind:
        raise ArwaveError(
            f"--init-from {ref}: a {src.kind} model, not {kind}; fine-tune it with "
            f"`arwave train {src.kind} --init-from {ref}`"
        )
    cfg = copy.deepcopy(src)
    cfg.init_from = pretrained.run_ref(ref)
    cfg.parent = ""
    if hasattr(cfg.model, "codec_run"):
        cfg.model.codec_run = source_codec(run_dir, src)
    names = list(getattr(cfg.model, "label_names", []) or [])
    if names:
        cfg.data.label_names = names
    return cfg


def source_codec(run_dir: Path, src: RunConfig) -> str:
    """What `model.codec_run` names for a fine-tune of the AR run/bundle in `run_dir`: a bundle's
    codec bundle by name, or the source run's own codec copy (RUN/codec) by absolute path."""
    from arwave import pretrained

    if not src.parent:
        raise ArwaveError(f"{run_dir}: this {src.kind} run has no codec (config parent is empty): it was never trained")
    if pretrained.is_bundle(run_dir):
        return src.parent  # a bundle names its codec bundle
    return str((run_dir / src.parent).resolve())


def check_codec_kept(cfg: RunConfig) -> None:
    """A fine-tuned AR model decodes with its source's codec: --codec / codec_run may not change it."""
    if not cfg.init_from or not hasattr(cfg.model, "codec_run"):
        return
    run_dir, _, src = _source(cfg.init_from)
    keep = source_codec(run_dir, src)
    if cfg.model.codec_run != keep:
        raise ConfigError(
            f"--init-from {cfg.init_from}: a fine-tune keeps the codec its source was trained on "
            f"({keep}); drop --codec / model.codec_run"
        )


def check_source(cfg: RunConfig) -> None:
    """Everything about a fine-tune's source that can fail, checked before any file is written: its
    kind, that the codec is kept, that its weights fit the model `cfg` describes, and `train.freeze`."""
    from arwave.registry import get_kind

    check_codec_kept(cfg)
    model = get_kind(cfg.kind).build_model(copy.deepcopy(cfg), None)
    init_weights(cfg, model)
    freeze(model, cfg.train.freeze)


def init_weights(cfg: RunConfig, model: nn.Module, critic: nn.Module | None = None) -> None:
    """Load the weights of `cfg.init_from` into `model` (and the source run's critic into `critic`,
    when it kept one). Weights that do not fit are one error naming the model settings that differ."""
    from arwave.checkpoint import CheckpointError, load_weights

    run_dir, ckpt, src = _source(cfg.init_from)
    if src.kind != cfg.kind:
        raise ArwaveError(f"init_from {cfg.init_from}: a {src.kind} model, not {cfg.kind}")
    ema = ckpt / "ema.safetensors"
    weights = ema if ema.is_file() else ckpt / "model.safetensors"
    try:
        load_weights(model, weights)
    except CheckpointError as err:
        changed = model_changes(src, cfg)
        what = ("changed: " + ", ".join(changed)) if changed else str(err).split(": ", 1)[-1]
        raise ArwaveError(
            f"--init-from {cfg.init_from}: its weights do not fit this {cfg.kind} model ({what}); "
            "a fine-tune keeps the source's architecture: drop those model settings"
        ) from None
    if critic is not None and (ckpt / "critic.safetensors").is_file():
        load_weights(critic, ckpt / "critic.safetensors")


def freeze(model: nn.Module, names: tuple[str, ...] | list[str]) -> list[nn.Module]:
    """Hold the named top-level parts of `model` fixed: no gradient from now on. Returns those parts, for
    `train_mode` to keep in eval mode. An unknown name is an error listing the parts there are."""
    parts = dict(model.named_children())
    unknown = [n for n in names if n not in parts]
    if unknown:
        raise ConfigError(
            f"train.freeze: {', '.join(unknown)} is not a part of this model (its parts: {', '.join(parts)})"
        )
    held = [parts[n].requires_grad_(False) for n in dict.fromkeys(names)]
    if held and not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"train.freeze: {', '.join(names)} leaves nothing of the model to train")
    return held


def train_mode(model: nn.Module, held: list[nn.Module]) -> None:
    """model.train(), except the frozen parts, which stay in eval mode: a frozen codec bottleneck must
    not move its codebooks (EMA updates, dead-code resets) nor sample, or its tokens would change."""
    model.train()
    for part in held:
        part.eval()


def model_changes(src: RunConfig, cfg: RunConfig) -> list[str]:
    """`name: old -> new` for each model setting the user changed from the source's."""
    out = []
    for f in dataclasses.fields(cfg.model):
        if f.name in _FILLED or not hasattr(src.model, f.name):
            continue
        old, new = getattr(src.model, f.name), getattr(cfg.model, f.name)
        if old != new:
            out.append(f"model.{f.name}: {json.dumps(old, default=str)} -> {json.dumps(new, default=str)}")
    return out


def check_labels(cfg: RunConfig) -> None:
    """Warn when the data has labels outside the fixed class list of a fine-tune (they train the
    "no class" path of a generator and are ignored by the classifier)."""
    names = list(cfg.data.label_names)
    if not names or not cfg.data.manifest:
        return
    from arwave.data.manifest import read_manifest

    key = cfg.data.label_key
    found = sorted(
        {str(r[key]) for r in read_manifest(Path(cfg.data.manifest).expanduser()) if r.get(key) not in (None, "")}
    )
    other = [name for name in found if name not in names]
    if cfg.kind == "classifier" and not set(found) & set(names):
        raise ArwaveError(
            f"{cfg.data.manifest}: none of its labels ({', '.join(found) or 'none'}) is a class of "
            f"{cfg.init_from} ({', '.join(names)}): a fine-tuned classifier keeps its classes"
        )
    if other:
        what = "are ignored" if cfg.kind == "classifier" else 'train the model\'s "no class" path'
        warnings.warn(
            f"labels {', '.join(other)} of {cfg.data.manifest} are not classes of {cfg.init_from} "
            f"({', '.join(names)}): those files {what}",
            ArwaveWarning,
            stacklevel=2,
        )
