"""An AR run keeps a copy of its codec in RUN/codec and stays tied to it."""

import pytest
import torch

from arwave.checkpoint import copy_run, save_checkpoint
from arwave.config import run_config_to_json
from arwave.errors import ArwaveError
from arwave.models.codec_parent import attach_codec_run
from arwave.registry import get_kind, preset


def test_same_codec_is_accepted_a_different_one_refused(cam_run, tmp_path):
    same = copy_run(cam_run / "codec", tmp_path / "same")
    cfg = preset("cam", "tiny")
    cfg.model.codec_run = str(same)
    codec, _, key, device = attach_codec_run(cfg, cam_run, "cam", "continuous")
    assert cfg.parent == "codec" and codec.kind == "continuous" and device == "cpu"

    other_cfg = preset("codec", "tiny-continuous")
    torch.manual_seed(1)
    other = get_kind("codec").build_model(other_cfg, None)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(run_config_to_json(other_cfg))
    save_checkpoint(tmp_path / "other", 7, {"model": other.state_dict()}, {"step": 7})
    cfg.model.codec_run = str(tmp_path / "other")
    with pytest.raises(ArwaveError, match="copy of a different codec"):
        attach_codec_run(cfg, cam_run, "cam", "continuous")


def test_wrong_bottleneck_is_refused(cam_run):
    cfg = preset("aar", "tiny")
    with pytest.raises(ArwaveError, match="bottleneck=msrq"):
        attach_codec_run(cfg, cam_run, "aar", "msrq")
