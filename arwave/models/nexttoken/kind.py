"""The `nexttoken` kind: a GPT baseline over rvq codec tokens (flat or MusicGen delay pattern).
Config and model in model.py, presets in presets.py, training in task.py."""

from __future__ import annotations

from pathlib import Path

from arwave.config import RunConfig
from arwave.models.codec_parent import load_parent_codec
from arwave.models.nexttoken.model import NextToken, NextTokenConfig, check_config
from arwave.models.nexttoken.presets import PRESETS
from arwave.models.nexttoken.task import NextTokenTask
from arwave.registry import Kind


def build_model(cfg: RunConfig, run_dir: Path | None = None) -> NextToken:
    check_config(cfg.model)
    codec = load_parent_codec(cfg, run_dir)
    return NextToken(cfg.model, codec=codec)


KIND = Kind("nexttoken", NextTokenConfig, PRESETS, build_model, NextTokenTask)
