"""The `classifier` kind: config and model in classifier.py, training in classifier_task.py, presets here."""

from __future__ import annotations

from arwave.config import DataConfig, RunConfig, TrainConfig
from arwave.evaluation.classifier import ClassifierConfig, build_model
from arwave.evaluation.classifier_task import ClassifierTask
from arwave.registry import Kind

PRESETS = {
    # seconds on CPU: for tests and smoke runs
    "tiny": lambda: RunConfig(
        kind="classifier",
        preset="tiny",
        model=ClassifierConfig(n_mels=32, widths=(8, 16), embed_dim=32),
        data=DataConfig(sample_rate=16000, channels=1, segment_seconds=1.0, batch_size=8),
        train=TrainConfig(
            max_steps=30, lr=2e-3, warmup_steps=5, log_every=5, val_every=15, val_batches=2, ckpt_every=30
        ),
    ),
    # minutes on CPU: the demo's evaluation classifier
    "small": lambda: RunConfig(
        kind="classifier",
        preset="small",
        model=ClassifierConfig(n_mels=64, widths=(16, 32, 64, 128), embed_dim=128),
        data=DataConfig(sample_rate=24000, channels=1, segment_seconds=2.0, batch_size=16),
        train=TrainConfig(
            max_steps=1500, lr=1e-3, warmup_steps=100, weight_decay=0.01, val_every=250, ckpt_every=500, ema_decay=0.999
        ),
    ),
    # a GPU-sized evaluation network on 48 kHz audio
    "paper": lambda: RunConfig(
        kind="classifier",
        preset="paper",
        model=ClassifierConfig(n_mels=128, widths=(64, 128, 256, 512), embed_dim=512, dropout=0.2),
        data=DataConfig(sample_rate=48000, channels=1, segment_seconds=4.0, batch_size=32),
        train=TrainConfig(
            max_steps=20000,
            lr=1e-3,
            warmup_steps=500,
            weight_decay=0.05,
            val_every=1000,
            ckpt_every=2000,
            ema_decay=0.999,
            mixed_precision=True,
        ),
    ),
}

KIND = Kind("classifier", ClassifierConfig, PRESETS, build_model, ClassifierTask)
