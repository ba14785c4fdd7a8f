"""The contract between a model kind and the one training loop (`arwave.training.loop.train`).

A task owns the model (and optionally an adversary), the datasets, and the loss. The loop owns
everything else: devices, DDP, optimisers, schedules, EMA, clipping, logging, checkpoints, resume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from arwave.config import RunConfig


class Task:
    """Subclass per model kind. Attributes the loop reads:

    model      -- the nn.Module trained, EMA'd and saved as `model.safetensors`.
    critic     -- optional adversary (the codec's discriminator), saved as `critic.safetensors`.
    train_set  -- a Dataset; items are fetched with `train_set[(index, seed)]` where `seed` is a
                  deterministic int for random crops, so resumed and distributed runs see the same data.
    val_set    -- optional Dataset (items fetched with `val_set[(index, 0)]`).
    collate    -- optional DataLoader collate_fn.
    config     -- the run's resolved config, when the task resolves what the user's config leaves open (an
                  AR model's codec facts and classes): a new RunConfig, the one the loop trains with and
                  writes as RUN/config.json; None = the config the task was built from, unchanged.
    """

    model: nn.Module
    critic: nn.Module | None = None
    train_set: Dataset
    val_set: Dataset | None = None
    collate: Callable | None = None
    config: RunConfig | None = None

    def loss(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss for one batch. `model` may be DDP-wrapped: run the forward through it
        (`model(...)`) so gradients are synchronised. Returns (scalar loss, numbers to log)."""
        raise NotImplementedError

    def critic_loss(self, critic: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]] | None:
        """Adversary loss, called right after `loss` on the same batch (the task may keep what it
        needs from `loss`, detached). `critic` may be DDP-wrapped. Return None to skip this step."""
        return None

    def val_metrics(self, model: nn.Module, batch: Any) -> dict[str, float]:
        """Validation numbers for one batch (called under torch.no_grad, model unwrapped, eval mode)."""
        loss, logs = self.loss(model, batch, step=-1)
        return {"loss": float(loss), **logs}

    def on_checkpoint(self, model: nn.Module, run_dir, step: int) -> None:
        """Hook after each checkpoint (rank 0 only)."""

    def samples(self, model: nn.Module, step: int) -> dict[str, tuple[torch.Tensor, int]]:
        """Listenable audio of the model as it is now: name -> ((channels, samples) in [-1, 1], sample
        rate). The loop calls it (rank 0, eval mode, no grad, EMA weights when kept) every
        `train.sample_every` steps (default: at each checkpoint) and writes RUN/samples/NAME-<step>.wav
        and the audio + its spectrogram to TensorBoard. A "reference" entry (what the model should
        reproduce) is written once, as RUN/samples/reference.wav. Default: no samples."""
        return {}
