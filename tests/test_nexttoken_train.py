"""Next-token baseline end to end: tiny rvq codec run + labelled files -> train a few steps -> load -> generate."""

import json

import pytest
import torch
from test_aar_train import make_codec_run, make_manifest

import arwave
from arwave.registry import preset


@pytest.mark.parametrize("pattern", ["flat", "delay"])
def test_train_load_generate(tmp_path, pattern):
    from arwave.training.loop import train

    codec_run = make_codec_run(tmp_path / "codec", "tiny-rvq")
    cfg = preset("nexttoken", "tiny")
    cfg.model.codec_run = str(codec_run)
    cfg.model.pattern = pattern
    cfg.model.context_frames = 20
    cfg.data.manifest = str(make_manifest(tmp_path / "data"))
    run = train(cfg, tmp_path / "nt", progress=False)

    saved = json.loads((run / "config.json").read_text())
    assert saved["parent"] == "codec" and saved["model"]["levels"] == 4 and saved["model"]["num_classes"] == 2
    model = arwave.load(run)
    assert type(model).__name__ == "NextToken"
    assert [p.name for p in (run / "samples").glob("*.wav")] == ["sample-00000004.wav"]  # at the checkpoint
    audio = model.generate(seconds=0.3, num=2, seed=0, class_label=1, cfg=1.0)  # 30 frames > 20-frame context
    assert audio.shape == (2, 1, 4800) and torch.isfinite(audio).all()
