"""AR models are built on a trained codec run. Each AR run keeps a copy of it in RUN/codec (so the run
folder is self-contained and `arwave.load(RUN)` needs nothing else), and encodings of the data are
cached in the SOURCE codec run, shared by every AR run trained on that codec. The codec may also be a
bundled pretrained codec named by its bundle name (`--codec codec-latent`); its encodings are cached
under the user cache (`arwave.pretrained.cache_dir`), never inside the package."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch.nn as nn

from arwave.codec.model import CodecFacts
from arwave.config import ConfigError, DataConfig, RunConfig
from arwave.device import pick_device
from arwave.errors import ArwaveError

CODEC_FOLDER = "codec"  # RUN/codec: the AR run's copy of its codec; its config's `parent`


@dataclasses.dataclass(frozen=True)
class AttachedCodec:
    """The codec an AR training run is built on, and where its encodings are cached: in the SOURCE codec
    run (shared by every AR run on that codec), keyed by its checkpoint."""

    codec: nn.Module  # on the training device
    facts: CodecFacts  # read once: everything the AR config takes from the codec
    cache_dir: Path
    cache_key: dict
    device: str


def attach_codec_run(cfg: RunConfig, run_dir: str | Path, kind: str, bottleneck: str) -> AttachedCodec:
    """Copy `cfg.model.codec_run` into RUN/codec (once), load it, check its bottleneck is the one `kind`
    models, and move it to the training device. `cfg` is not changed: the task resolves its config from
    the returned facts (`Config.with_codec`, `data_at_codec`, `resolved_config`)."""
    from arwave import pretrained
    from arwave.checkpoint import copy_run, latest_checkpoint, load, read_config, resolve_run

    run_dir = Path(run_dir)
    local = run_dir / CODEC_FOLDER
    codec_run = cfg.model.codec_run
    src = pretrained.locate(codec_run) if codec_run else None
    bundled = src is not None and pretrained.is_bundle(src)
    if codec_run:
        src_cfg = read_config(resolve_run(src)[0])  # a run with a checkpoint and a valid config, or one error
        # check what the run is before copying it, so a wrong --codec leaves nothing behind
        if src_cfg.kind != "codec":
            raise ArwaveError(
                f"{src}: a {src_cfg.kind} run, not a codec run: --codec needs a run of `arwave train codec`"
            )
        if src_cfg.model.bottleneck != bottleneck:
            raise ArwaveError(
                f"{kind}: {src} has a {src_cfg.model.bottleneck!r} bottleneck; "
                f"{kind} needs a codec trained with --set bottleneck={bottleneck}"
            )
        if not (local / "config.json").is_file():
            copy_run(src, local)
        elif not _same_run(src, local):
            raise ArwaveError(
                f"{local} is a copy of a different codec than {src} (config or checkpoint differ): an AR "
                "run stays tied to the codec it was trained on; give the same --codec or a new --out"
            )
    elif not (local / "config.json").is_file():
        raise ConfigError(f"{kind}: training needs a trained codec: add --codec RUN (or --set codec_run=RUN)")
    codec = load(local)
    cache_dir = pretrained.cache_dir(src) if bundled else (src if codec_run else local) / "cache"
    key = {
        "codec": (
            f"bundle:{src.name}:{pretrained.read_card(src).get('sha256', '')}"
            if bundled
            else str(src.resolve())
            if codec_run
            else "local"
        ),
        "checkpoint": latest_checkpoint(local).name,
    }
    if getattr(codec, "kind", None) != bottleneck:
        raise ArwaveError(
            f"{kind}: {codec_run or local} has a {getattr(codec, 'kind', '?')!r} bottleneck; "
            f"{kind} needs a codec trained with --set bottleneck={bottleneck}"
        )
    device = "cpu" if cfg.train.device == "cpu" else pick_device("auto").type
    return AttachedCodec(codec.to(device), codec.facts(), cache_dir, key, device)


def data_at_codec(data: DataConfig, facts: CodecFacts, segment_frames: int) -> DataConfig:
    """The data read at the codec's format, in segments of `segment_frames` latent frames (a new config)."""
    return dataclasses.replace(
        data, sample_rate=facts.sample_rate, channels=facts.channels, segment_seconds=facts.seconds(segment_frames)
    )


def resolved_config(cfg: RunConfig, model, data: DataConfig) -> RunConfig:
    """An AR run's resolved config (a new object; `cfg` is left as it was): the `model` section filled from
    the codec's facts and the data, the `data` section at the codec's format, parent = the codec copy."""
    return dataclasses.replace(cfg, parent=CODEC_FOLDER, model=model, data=data)


def _same_run(a: Path, b: Path) -> bool:
    """Same config and same latest checkpoint (what `copy_run` copies); for a bundle `a`, the copy's
    state.json names the bundle's weights digest."""
    import json

    from arwave import pretrained
    from arwave.checkpoint import latest_checkpoint

    cb = latest_checkpoint(b)
    if pretrained.is_bundle(a):
        state = json.loads((cb / "state.json").read_text()) if cb is not None else {}
        return (a / "config.json").read_text() == (b / "config.json").read_text() and state.get(
            "sha256"
        ) == pretrained.read_card(a).get("sha256")
    ca = latest_checkpoint(a)
    return (
        (a / "config.json").read_text() == (b / "config.json").read_text()
        and ca is not None
        and cb is not None
        and ca.name == cb.name
    )


def codec_data_config(codec_preset: str, batch_size: int) -> DataConfig:
    """Data settings of an AR preset: the rate, channels and window of the codec preset it trains on."""
    try:
        from arwave.registry import preset

        c = preset("codec", codec_preset).model
    except (ImportError, ArwaveError):
        return DataConfig(batch_size=batch_size)
    return DataConfig(
        sample_rate=c.sample_rate, channels=c.channels, segment_seconds=c.window_seconds, batch_size=batch_size
    )


def load_parent_codec(cfg: RunConfig, run_dir: str | Path | None) -> nn.Module | None:
    """The codec a trained AR run keeps in RUN/<cfg.parent>, or None (a fresh model has none yet)."""
    if run_dir is None or not cfg.parent:
        return None
    from arwave import pretrained
    from arwave.checkpoint import load

    local = Path(run_dir) / cfg.parent
    if not local.exists() and pretrained.is_name(cfg.parent) and pretrained.is_bundle(run_dir):
        return load(cfg.parent)  # a bundled AR model names its codec bundle
    return load(local)
