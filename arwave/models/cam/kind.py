"""The `cam` kind: the continuous autoregressive family (CAM, MAR-RF, MAR, GIVT, GIVT+noise).

The names of SPEC §3 are switches of one config:

    CAM         head="rf"    noise_aug=True          MAR-RF   head="rf"    noise_aug=False
    MAR         head="ddpm"  noise_aug=False         GIVT     head="gmm"   noise_aug=False
    GIVT+noise  head="gmm"   noise_aug=True

Config and model in model.py, presets in presets.py, training in task.py.
"""

from __future__ import annotations

from pathlib import Path

from arwave.config import RunConfig
from arwave.errors import ArwaveError
from arwave.models.cam.model import CAM, CAMConfig, check_config
from arwave.models.cam.presets import PRESETS
from arwave.models.cam.task import CAMTask
from arwave.models.codec_parent import load_parent_codec
from arwave.registry import Kind


def build_model(cfg: RunConfig, run_dir: Path | None = None) -> CAM:
    """The CAM of `cfg`; with a run folder whose config names a parent, its codec is loaded and attached."""
    check_config(cfg.model)
    codec = load_parent_codec(cfg, run_dir)
    if codec is not None and getattr(codec, "latent_dim", cfg.model.latent_dim) != cfg.model.latent_dim:
        raise ArwaveError(f"{run_dir}: codec latent_dim {codec.latent_dim} != cam latent_dim {cfg.model.latent_dim}")
    return CAM(
        cfg.model,
        codec,
        sample_rate=cfg.data.sample_rate,
        channels=cfg.data.channels,
        hop=getattr(codec, "hop", None) or cfg.model.hop,
    )


KIND = Kind("cam", CAMConfig, PRESETS, build_model, CAMTask)
