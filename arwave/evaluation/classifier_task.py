"""The classifier's training task: cross-entropy on the dataset's labels."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from arwave.config import RunConfig
from arwave.errors import ArwaveError
from arwave.evaluation.classifier import build_model
from arwave.training.task import Task


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    mask = labels >= 0
    if not mask.any():
        return float("nan")
    return float((logits.argmax(-1)[mask] == labels[mask]).float().mean())


class ClassifierTask(Task):
    """Cross-entropy on the dataset's labels (unlabelled items, label -1, are ignored)."""

    def __init__(self, cfg: RunConfig, run_dir: Path | None = None, train_set=None, val_set=None):
        if train_set is None:
            from arwave.data.dataset import datasets_from_config

            train_set, val_set = datasets_from_config(cfg.data)
        names = list(getattr(train_set, "label_names", []))
        if not cfg.model.label_names:  # recorded in config.json so the run rebuilds alone
            cfg = self.config = replace(cfg, model=replace(cfg.model, label_names=names))
        elif names and names != list(cfg.model.label_names):
            raise ArwaveError(f"classifier: the data's labels {names} differ from the config's {cfg.model.label_names}")
        if len(cfg.model.label_names) < 2:
            raise ArwaveError(
                f"classifier: the training data needs at least 2 labels (field "
                f"{cfg.data.label_key!r} of the manifest), found {names}"
            )
        self.train_set, self.val_set = train_set, val_set
        self.model = build_model(cfg, run_dir)

    def loss(self, model, batch, step):
        labels = batch["label"].long()
        logits = model(batch["audio"])
        if not (labels >= 0).any():
            return logits.sum() * 0.0, {"acc": float("nan")}
        loss = F.cross_entropy(logits, labels, ignore_index=-1)
        return loss, {"acc": accuracy(logits.detach(), labels)}

    def val_metrics(self, model, batch):
        labels = batch["label"].long()
        logits = model(batch["audio"])
        mask = labels >= 0
        loss = F.cross_entropy(logits[mask], labels[mask]) if mask.any() else torch.tensor(float("nan"))
        return {"loss": float(loss), "accuracy": accuracy(logits, labels)}
