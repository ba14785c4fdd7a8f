"""The one training loop: DDP equivalence, exact resume after an interruption, crash-safe checkpoints."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import arwave
from arwave import checkpoint as ckpt
from arwave.errors import ArwaveError
from arwave.training.loop import lr_factor, train
from arwave.training.sampler import ResumableBatchSampler

sys.path.insert(0, str(Path(__file__).parent))
from toy_kind import register_toy, toy_preset  # noqa: E402

register_toy()


def weights(run_dir, name="model"):
    return ckpt.load_tensors(ckpt.latest_checkpoint(run_dir) / f"{name}.safetensors")


def test_lr_schedule_warmup_then_cosine():
    assert lr_factor(0, 4, 20, 0.1) == pytest.approx(0.25)
    assert lr_factor(3, 4, 20, 0.1) == pytest.approx(1.0)
    assert lr_factor(4, 4, 20, 0.1) == pytest.approx(1.0)
    assert lr_factor(12, 4, 20, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(20, 4, 20, 0.1) == pytest.approx(0.1)


def test_sampler_shards_union_equals_single_process_batch():
    single = iter(ResumableBatchSampler(20, 4, seed=3, rank=0, world=1))
    ranks = [iter(ResumableBatchSampler(20, 2, seed=3, rank=r, world=2)) for r in range(2)]
    for _ in range(12):  # crosses epoch boundaries
        one = next(single)
        two = next(ranks[0]) + next(ranks[1])
        assert sorted(one) == sorted(two)


def test_sampler_resumes_at_the_same_position():
    full = iter(ResumableBatchSampler(10, 3, seed=1))
    batches = [next(full) for _ in range(8)]
    resumed = iter(ResumableBatchSampler(10, 3, seed=1, start_step=5))
    assert [next(resumed) for _ in range(3)] == batches[5:]


def test_sampler_rejects_tiny_dataset():
    with pytest.raises(ArwaveError, match="fewer than one batch"):
        ResumableBatchSampler(3, 4)


def test_training_writes_config_metrics_plot_and_loads(tmp_path):
    cfg = toy_preset()
    run = train(cfg, tmp_path / "run", progress=False)
    assert json.loads((run / "config.json").read_text())["kind"] == "toy"
    text = (run / "metrics.csv").read_text()
    assert "train,loss" in text and "val,loss" in text
    assert (run / "loss.png").stat().st_size > 1000
    steps = [int(p.name.split("-")[1]) for p in ckpt.list_checkpoints(run)]
    assert steps == [5, 10, 15, 20]
    model = arwave.load(run)  # EMA weights by default
    ema = weights(run, "ema")
    torch.testing.assert_close(model.state_dict()["net.0.weight"], ema["net.0.weight"])
    # training reduced the loss
    rows = [line.split(",") for line in text.splitlines()[1:]]
    losses = [float(r[3]) for r in rows if r[1] == "train" and r[2] == "loss"]
    assert losses[-1] < losses[0]


def test_refuses_to_overwrite_a_trained_run(tmp_path):
    train(toy_preset(), tmp_path / "run", progress=False)
    with pytest.raises(ArwaveError, match="--resume"):
        train(toy_preset(), tmp_path / "run", progress=False)


def test_resume_after_interruption_matches_uninterrupted(tmp_path):
    cfg = toy_preset()
    cfg.model.noise = 0.1  # random draws in the loss must repeat after resume
    straight = train(cfg, tmp_path / "straight", progress=False)

    cfg_a = toy_preset()
    cfg_a.model.noise = 0.1
    cfg_a.model.interrupt_at = 13  # Ctrl-C in the middle of step 13
    with pytest.raises(KeyboardInterrupt):
        train(cfg_a, tmp_path / "interrupted", progress=False)
    assert ckpt.latest_checkpoint(tmp_path / "interrupted").name == "step-00000013"
    cfg_b = toy_preset()
    cfg_b.model.noise = 0.1
    train(cfg_b, tmp_path / "interrupted", resume=True, progress=False)
    for name in ("model", "ema", "optim"):
        a, b = weights(straight, name), weights(tmp_path / "interrupted", name)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=f"{name}:{k}")


def test_crash_mid_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    cfg = toy_preset()
    cfg.train.max_steps = 10
    run = train(cfg, tmp_path / "run", progress=False)
    before = weights(run)

    calls = {"n": 0}
    real = ckpt.save_tensors

    def dying_save(path, tensors, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:  # die after the first file of the new checkpoint
            raise OSError("disk full (simulated)")
        return real(path, tensors, metadata)

    monkeypatch.setattr(ckpt, "save_tensors", dying_save)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(run, 99, {"model": {"w": torch.ones(3)}, "optim": {"w": torch.ones(3)}}, {"step": 99})
    monkeypatch.undo()
    # a hard kill leaves a temp folder behind: it must be ignored too
    stray = run / "checkpoints" / ".tmp-step-00000100-x"
    stray.mkdir()
    (stray / "model.safetensors").write_bytes(b"partial")
    assert ckpt.latest_checkpoint(run).name == "step-00000010"
    for k, v in weights(run).items():
        torch.testing.assert_close(v, before[k])
    arwave.load(run)


def test_load_rejects_bad_folders(tmp_path):
    with pytest.raises(ArwaveError, match="no such run folder"):
        arwave.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArwaveError, match="no config.json"):
        arwave.load(tmp_path / "empty")


def test_load_never_unpickles(tmp_path, monkeypatch):
    run = train(toy_preset(), tmp_path / "run", progress=False)
    import pickle

    def forbidden(*a, **k):
        raise AssertionError("unpickling during load")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    arwave.load(run)


def test_two_process_ddp_equals_single_process_on_concatenated_batch(tmp_path):
    script = Path(__file__).parent / "toy_kind.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), str(Path(__file__).parent)])}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    subprocess.run(
        [*torchrun, str(script), str(tmp_path / "ddp"), "2", "12"],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "single"), "4", "12"],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    assert json.loads((ckpt.latest_checkpoint(tmp_path / "ddp") / "state.json").read_text())["world_size"] == 2
    init = initial_toy_weights()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
        assert (a[k] - init[k]).abs().max() > 1e-3, k  # and it really trained: every tensor moved


def initial_toy_weights(seed=0):
    """The toy model as `train` builds it: torch.manual_seed(train.seed + rank) right before the task."""
    from toy_kind import ToyConfig, ToyModel

    torch.manual_seed(seed)
    return ToyModel(ToyConfig()).state_dict()


def test_ema_weights_follow_the_recurrence(tmp_path):
    """θ_ema ← d_n·θ_ema + (1 − d_n)·θ after optimiser step n + 1, d_n = min(decay, (1 + n)/(10 + n)),
    starting from the initial weights."""
    cfg = toy_preset()
    cfg.train.max_steps, cfg.train.ckpt_every, cfg.train.keep_checkpoints, cfg.train.val_every = 4, 1, 10, 0
    run = train(cfg, tmp_path / "run", progress=False)
    steps = ckpt.list_checkpoints(run)
    assert [int(p.name.split("-")[1]) for p in steps] == [1, 2, 3, 4]
    prev = initial_toy_weights()
    for n, path in enumerate(steps):
        model, ema = (ckpt.load_tensors(path / f"{name}.safetensors") for name in ("model", "ema"))
        d = min(0.9, (1 + n) / (10 + n))
        for k in model:
            torch.testing.assert_close(ema[k], d * prev[k] + (1 - d) * model[k], rtol=1e-6, atol=1e-7)
        assert any(not torch.allclose(ema[k], model[k]) for k in model)
        prev = ema


def _noise_draws(cfg, run_dir):
    """What `torch.rand` gives inside the loss at each step of a toy run."""
    from toy_kind import ToyTask

    task, draws = ToyTask(cfg), []
    loss = task.loss

    def recording(model, batch, step):
        draws.append(float(torch.rand(())))
        return loss(model, batch, step)

    task.loss = recording
    train(cfg, run_dir, progress=False, task=task)
    return draws


def test_noise_draws_follow_the_seed(tmp_path):
    """Random draws inside the loss are a function of (train.seed, step): the same seed repeats them,
    another seed changes every one of them."""

    def cfg(seed):
        c = toy_preset()
        c.train.max_steps, c.train.seed, c.train.val_every, c.train.ckpt_every = 6, seed, 0, 0
        return c

    a = _noise_draws(cfg(0), tmp_path / "a")
    assert len(a) == 6 and len(set(a)) == 6
    assert _noise_draws(cfg(0), tmp_path / "b") == a
    b = _noise_draws(cfg(1), tmp_path / "c")
    assert all(x != y for x, y in zip(a, b))


def test_ema_warmup_follows_the_weights_early():
    """Update n uses decay min(decay, (1 + n) / (10 + n)): after 20 updates towards a constant the
    average is ≥ 90 % of the way there (a plain 0.999 would be at 1 − 0.999^20 ≈ 2 %)."""
    from arwave.training.loop import EMA

    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, 0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(20):
        ema.update(model)
    assert float(ema.model.weight) > 0.9
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10**6) == 0.999


def test_saved_ema_weights_are_trained_not_initial(tmp_path):
    """The loop's EMA (decay 0.999, as the classifier presets) after 20 steps: the saved EMA weights are
    much nearer the trained weights than the initialisation."""
    cfg = toy_preset()
    cfg.train.ema_decay = 0.999
    torch.manual_seed(cfg.train.seed)
    init = {k: v.clone() for k, v in get_kind_model(cfg).state_dict().items()}
    run = train(cfg, tmp_path / "run", progress=False)
    flat = lambda d: torch.cat([d[k].flatten() for k in sorted(init)])
    model, ema, start = flat(weights(run)), flat(weights(run, "ema")), flat(init)
    moved = (model - start).norm()
    assert moved > 0.1
    assert (ema - model).norm() < 0.3 * moved


def get_kind_model(cfg):
    from arwave.registry import get_kind

    return get_kind(cfg.kind).build_model(cfg, None)
