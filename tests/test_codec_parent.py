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
    before = run_config_to_json(cfg)
    attached = attach_codec_run(cfg, cam_run, "cam", "continuous")
    assert attached.codec.kind == "continuous" and attached.device == "cpu"
    assert attached.facts == attached.codec.facts() and attached.facts.bottleneck == "continuous"
    assert run_config_to_json(cfg) == before  # the caller's config is never changed

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


@pytest.mark.parametrize("kind", ["cam", "aar", "nexttoken"])
def test_ar_task_resolves_a_new_config_from_the_codec_facts(kind, tmp_path):
    """The task reads the codec's facts once into a NEW config (the one the loop writes); the user's
    config is left as it was, and the model is built from the resolved one."""
    from kind_runs import CODECS, config, prepare

    from arwave.checkpoint import load

    work = prepare(tmp_path / "work")
    cfg = config(kind, work)
    before = run_config_to_json(cfg)
    task = get_kind(kind).build_task(cfg, tmp_path / "run")
    assert run_config_to_json(cfg) == before
    resolved, facts = task.config, load(work / CODECS[kind]).facts()
    assert resolved.parent == "codec" and resolved is not cfg
    assert (resolved.data.sample_rate, resolved.data.channels) == (facts.sample_rate, facts.channels)
    m = resolved.model
    model_config = task.model.cam if kind == "cam" else task.model.cfg
    assert model_config == m
    if kind == "cam":
        assert (m.latent_dim, m.hop, m.label_names) == (facts.latent_dim, facts.hop, ["high", "low"])
        assert m.latent_scale > 0 and resolved.data.segment_seconds == facts.seconds(m.context)
    elif kind == "aar":
        assert (tuple(m.scales), m.vocab_size) == (facts.scales, facts.codebook_size) and m.num_classes >= 1
        assert resolved.data.segment_seconds == facts.seconds(facts.window_frames)
    else:
        assert (m.levels, m.vocab_size, m.context_frames) == (facts.levels, facts.codebook_size, facts.window_frames)
