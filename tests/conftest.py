"""Test-session settings: one intra-op thread (tiny tensors gain nothing from two, and two threads on
a machine whose other core is busy can be tens of times slower), and a private cache folder so tests
never touch ~/.cache/arwave."""

import os
import tempfile

import pytest
import torch

from arwave.checkpoint import save_checkpoint
from arwave.config import run_config_to_json
from arwave.registry import get_kind, preset

os.environ.setdefault("ARWAVE_CACHE", tempfile.mkdtemp(prefix="arwave-test-cache-"))


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test starts single-threaded, whatever an earlier test (or a bench it ran) set."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cam_run(tmp_path_factory):
    """RUN/config.json + RUN/checkpoints/..., and the codec as RUN/codec (parent = "codec")."""
    run = tmp_path_factory.mktemp("cli") / "cam"
    codec_cfg = preset("codec", "tiny-continuous")
    torch.manual_seed(0)
    codec = get_kind("codec").build_model(codec_cfg, None)
    (run / "codec").mkdir(parents=True)
    (run / "codec" / "config.json").write_text(run_config_to_json(codec_cfg))
    save_checkpoint(run / "codec", 0, {"model": codec.state_dict()}, {"step": 0})
    cfg = preset("cam", "tiny")
    cfg.parent = "codec"
    cfg.model.num_classes, cfg.model.label_names = 2, ["high", "low"]
    model = get_kind("cam").build_model(cfg, None)
    (run / "config.json").write_text(run_config_to_json(cfg))
    save_checkpoint(run, 1, {"model": model.state_dict()}, {"step": 1})
    return run


@pytest.fixture(scope="module")
def no_installed_bundles(tmp_path_factory):
    """Hide the bundles the package ships (servers list them by default) for tests that serve their own runs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARWAVE_PRETRAINED_DIR", str(tmp_path_factory.mktemp("no-bundles")))
        yield
