"""Resume and DDP on the real model kinds (codec, cam, aar, nexttoken), not only on the toy kind:

- a run interrupted (Ctrl-C) after 2 of 3 steps and resumed ends bit-identical to an uninterrupted run:
  weights, optimiser state, EMA weights and the codec's critic;
- 2 processes (gloo) × batch 2 train the same weights as 1 process × batch 4.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from arwave import checkpoint as ckpt
from arwave.training.loop import train

sys.path.insert(0, str(Path(__file__).parent))
from kind_runs import CODECS, KINDS, config, prepare, run_ddp_safe  # noqa: E402


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return prepare(tmp_path_factory.mktemp("kinds"))


@pytest.fixture(autouse=True)
def _no_loss_plot(monkeypatch):
    """The end-of-run loss.png (matplotlib) would cost more than the training steps; not tested here."""
    import arwave.training.loop as loop

    monkeypatch.setattr(loop, "plot_metrics", lambda *args, **kwargs: None)


def task_class(kind):
    from arwave.codec.task import CodecTask
    from arwave.models.aar.task import AARTask
    from arwave.models.cam.task import CAMTask
    from arwave.models.nexttoken.task import NextTokenTask

    return {"codec": CodecTask, "cam": CAMTask, "aar": AARTask, "nexttoken": NextTokenTask}[kind]


def saved(run_dir):
    path = ckpt.latest_checkpoint(run_dir)
    return path.name, {p.stem: ckpt.load_tensors(p) for p in sorted(path.glob("*.safetensors"))}


@pytest.mark.parametrize("kind", KINDS)
def test_interrupted_and_resumed_run_is_bit_identical(kind, work, tmp_path):
    straight = train(config(kind, work), tmp_path / "straight", progress=False)

    cls = task_class(kind)
    loss = cls.loss

    def ctrl_c_at_step_2(self, model, batch, step):
        if step == 2:
            raise KeyboardInterrupt
        return loss(self, model, batch, step)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(cls, "loss", ctrl_c_at_step_2)
        train(config(kind, work), tmp_path / "resumed", progress=False)
    assert ckpt.latest_checkpoint(tmp_path / "resumed").name == "step-00000002"
    train(config(kind, work), tmp_path / "resumed", resume=True, progress=False)

    name_a, a = saved(straight)
    name_b, b = saved(tmp_path / "resumed")
    assert name_a == name_b == "step-00000003"
    expected = {"model", "optim", "ema"} | ({"critic"} if kind == "codec" else set())
    assert set(a) == set(b) == expected
    for file in a:
        assert a[file].keys() == b[file].keys()
        for k in a[file]:
            assert torch.equal(a[file][k], b[file][k]), f"{kind} {file}:{k}"


@pytest.mark.slow
def test_two_process_ddp_equals_single_process_for_every_kind(work, tmp_path):
    """Global batch 4 either way. ~20 s (one torchrun of 2 processes trains the four kinds in turn)."""
    for kind in KINDS:
        run_ddp_safe(kind, work, tmp_path / f"{kind}-single", batch=4)
        if CODECS[kind]:  # the AR runs' codec copies exist before the two ranks start (no race)
            ckpt.copy_run(work / CODECS[kind], tmp_path / f"{kind}-ddp" / "codec")
    here = Path(__file__).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(here.parent), str(here)])}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*torchrun, str(here / "kind_runs.py"), str(work), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for kind in KINDS:
        _, single = saved(tmp_path / f"{kind}-single")
        _, ddp = saved(tmp_path / f"{kind}-ddp")
        state = ckpt.latest_checkpoint(tmp_path / f"{kind}-ddp") / "state.json"
        assert '"world_size": 2' in state.read_text()
        for file in ("model", "ema"):
            for k, v in single[file].items():
                torch.testing.assert_close(ddp[file][k], v, rtol=1e-4, atol=1e-5, msg=f"{kind} {file}:{k}")
    # the critic: where its gradient is ~0, Adam's first steps (≈ lr·sign(g)) amplify float rounding of
    # the all-reduce, so a few elements (< 2 %) differ by up to one step (lr 3e-4); unsynchronised
    # gradients would move most elements by that much
    _, single = saved(tmp_path / "codec-single")
    _, ddp = saved(tmp_path / "codec-ddp")
    diff = torch.cat([(ddp["critic"][k] - v).abs().flatten() for k, v in single["critic"].items()])
    assert (diff > 1e-5).float().mean() < 0.02 and diff.max() < 3e-4
