"""CodecTask smoke test: a few generator + critic steps on the tiny presets with synthetic audio."""

import dataclasses
import math

import pytest
import torch

from arwave.codec.presets import make_preset
from arwave.codec.task import CodecTask


class SineSet:
    """Synthetic dataset with the data contract: ds[(index, seed)] -> {"audio": (C, N), ...}."""

    def __init__(self, channels, samples, sample_rate, n=8):
        self.channels, self.samples, self.sample_rate, self.n = channels, samples, sample_rate, n

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        index, seed = key
        g = torch.Generator().manual_seed(index * 1000 + seed)
        t = torch.arange(self.samples) / self.sample_rate
        f = 110 * (1 + index % 4)
        wave = 0.4 * torch.sin(2 * math.pi * f * t + torch.rand(1, generator=g) * 6.28)
        wave = wave + 0.01 * torch.randn(self.samples, generator=g)
        return {"audio": wave.expand(self.channels, -1).clone(), "label": 0, "index": index}


def make_task(bottleneck, **changes):
    torch.manual_seed(0)
    cfg = make_preset("tiny", bottleneck)
    cfg.model = dataclasses.replace(cfg.model, **{"disc_start": 1, "disc_skip_every": 0, **changes})
    m = cfg.model
    ds = SineSet(m.channels, m.window_frames * m.hop, m.sample_rate)
    return CodecTask(cfg, None, datasets=(ds, ds)), ds


def batch_of(ds, step, size=3):
    return {"audio": torch.stack([ds[(i, step)]["audio"] for i in range(size)])}


class Sgd:
    """Plain SGD (torch.optim would import torch._dynamo: seconds of test time for nothing)."""

    def __init__(self, module, lr=1e-3):
        self.params, self.lr = list(module.parameters()), lr

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for p in self.params:
            if p.grad is not None:
                p.add_(p.grad, alpha=-self.lr)


def _grad_norm(module):
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("bottleneck", ["msrq", "continuous", "rvq"])
def test_codec_task_steps(bottleneck):
    task, ds = make_task(bottleneck)
    model, critic = task.model.train(), task.critic
    opt, copt = Sgd(model), Sgd(critic)
    for step in range(3):
        batch = batch_of(ds, step)
        loss, logs = task.loss(model, batch, step)
        assert torch.isfinite(loss) and all(math.isfinite(v) for v in logs.values())
        assert ("adv" in logs) == (step >= 1)  # warm-up: no adversarial terms at step 0
        opt.zero_grad()
        copt.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in critic.parameters())  # generator loss never trains the critic
        assert all(p.requires_grad for p in critic.parameters())  # ... and leaves it trainable
        assert _grad_norm(model.encoder.layers[0]) > 0 and _grad_norm(model.decoder.layers[-1]) > 0
        if bottleneck == "msrq":
            assert _grad_norm(model.bottleneck.msrq.phis) > 0
        opt.step()
        out = task.critic_loss(critic, batch, step)
        if step < 1:
            assert out is None
            continue
        closs, clogs = out
        assert torch.isfinite(closs)
        copt.zero_grad()
        closs.backward()
        assert _grad_norm(critic) > 0
        copt.step()
    assert "kl" in logs if bottleneck == "continuous" else "vq" in logs and "ppl_mean" in logs


def test_critic_skip_and_val_metrics():
    task, ds = make_task("msrq", disc_skip_every=3)
    batch = batch_of(ds, 0)
    task.loss(task.model, batch, 3)
    assert task.critic_loss(task.critic, batch, 3) is None  # SAT skips every third critic step
    task.loss(task.model, batch, 4)
    assert task.critic_loss(task.critic, batch, 4) is not None
    task.model.eval()
    with torch.no_grad():
        vals = task.val_metrics(task.model, batch)
    assert vals["mel_distance"] > 0 and "adv" not in vals and math.isfinite(vals["loss"])


def test_samples_write_a_reconstruction(tmp_path):
    from arwave.training.loop import write_samples

    task, _ = make_task("rvq")
    write_samples(task, task.model, tmp_path, 7)
    assert (tmp_path / "samples" / "recon-00000007.wav").is_file()
    assert (tmp_path / "samples" / "reference.wav").is_file()


def test_loudness_term_enters_the_loss_with_its_weight():
    plain, ds = make_task("continuous")
    loud, _ = make_task("continuous", w_loud=2.0)
    loud.model.load_state_dict(plain.model.state_dict())
    batch = batch_of(ds, 0)
    torch.manual_seed(1)
    total0, logs0 = plain.loss(plain.model, batch, step=0)
    torch.manual_seed(1)  # the same posterior sample
    total2, logs2 = loud.loss(loud.model, batch, step=0)
    assert logs0["loud"] > 0 and abs(logs0["loud"] - logs2["loud"]) < 1e-6
    assert abs(float(total2 - total0) - 2.0 * logs0["loud"]) < 1e-4
