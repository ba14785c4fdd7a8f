"""The `codec` kind: config and model in model.py, presets in presets.py, training in task.py."""

from __future__ import annotations

from pathlib import Path

from arwave.codec.model import Codec, CodecConfig
from arwave.codec.presets import PRESETS
from arwave.codec.task import CodecTask
from arwave.config import RunConfig
from arwave.registry import Kind


def build_model(cfg: RunConfig, run_dir: Path | None = None) -> Codec:
    return Codec(cfg.model)


KIND = Kind("codec", CodecConfig, PRESETS, build_model, CodecTask)
