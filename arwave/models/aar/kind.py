"""The `aar` kind: next-scale prediction (VAR-style) over the token maps of an msrq (SAT) codec.
Config and model in model.py, presets in presets.py, training in task.py."""

from __future__ import annotations

from pathlib import Path

from arwave.config import RunConfig
from arwave.models.aar.model import AAR, AARConfig, check_config
from arwave.models.aar.presets import PRESETS
from arwave.models.aar.task import AARTask
from arwave.models.codec_parent import load_parent_codec
from arwave.registry import Kind


def build_model(cfg: RunConfig, run_dir: Path | None = None) -> AAR:
    """The AAR of `cfg`; with a run folder whose config names a parent, its codec is loaded and attached."""
    check_config(cfg.model)
    codec = load_parent_codec(cfg, run_dir)
    return AAR(cfg.model, codec=codec)


KIND = Kind("aar", AARConfig, PRESETS, build_model, AARTask)
