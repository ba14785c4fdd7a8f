"""A tiny model kind used to test the training loop itself (DDP equivalence, resume, checkpoints)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from arwave.config import ANY_NUMBER, DataConfig, RunConfig, TrainConfig
from arwave.registry import _KINDS, Kind, register
from arwave.training.task import Task


@dataclass
class ToyConfig:
    width: int = 16
    noise: float = 0.0  # random noise inside the loss (exercises RNG on resume)
    interrupt_at: int = -100  # raise KeyboardInterrupt inside loss() at this step (simulated Ctrl-C)
    items: int = 64

    LIMITS: ClassVar[dict] = {"interrupt_at": ANY_NUMBER}


class ToySet(torch.utils.data.Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 8, generator=g)
        self.y = (self.x @ torch.randn(8, 1, generator=g)).squeeze(-1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, item):
        index, seed = item
        shift = (seed % 7) / 70.0  # a "random crop" that depends on the seed only
        return {"x": self.x[index] + shift, "y": self.y[index]}


class ToyModel(nn.Module):
    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, cfg.width), nn.Tanh(), nn.Linear(cfg.width, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


class ToyTask(Task):
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg.model
        self.model = ToyModel(cfg.model)
        self.train_set = ToySet(cfg.model.items)
        self.val_set = ToySet(16)

    def loss(self, model, batch, step):
        if step == self.cfg.interrupt_at:
            raise KeyboardInterrupt
        pred = model(batch["x"])
        target = batch["y"] + self.cfg.noise * torch.randn_like(batch["y"])
        return ((pred - target) ** 2).mean(), {"mae": (pred - batch["y"]).abs().mean()}


def toy_preset() -> RunConfig:
    return RunConfig(
        kind="toy",
        preset="tiny",
        model=ToyConfig(),
        data=DataConfig(batch_size=4),
        train=TrainConfig(
            max_steps=20,
            lr=1e-2,
            warmup_steps=3,
            log_every=1,
            val_every=5,
            ckpt_every=5,
            keep_checkpoints=10,
            grad_clip=1.0,
            ema_decay=0.9,
        ),
    )


def register_toy():
    if "toy" not in _KINDS:
        register(
            Kind(
                "toy",
                ToyConfig,
                {"tiny": toy_preset},
                lambda cfg, run_dir: ToyModel(cfg.model),
                lambda cfg, run_dir: ToyTask(cfg),
            )
        )


if __name__ == "__main__":  # used by the DDP test under torchrun: python toy_kind.py RUN_DIR BATCH STEPS
    from arwave.training.loop import train

    register_toy()
    cfg = toy_preset()
    cfg.data.batch_size = int(sys.argv[2])
    cfg.train.max_steps = int(sys.argv[3])
    cfg.train.ema_decay = 0.0
    train(cfg, sys.argv[1], progress=False)
