"""Presets of the `nexttoken` kind: tokens from the rvq codec preset of the same size
(`arwave train codec --preset NAME-rvq`)."""

from __future__ import annotations

from arwave.config import RunConfig, TrainConfig
from arwave.models.codec_parent import codec_data_config
from arwave.models.nexttoken.model import NextTokenConfig


def _run(name: str, model: NextTokenConfig, train: TrainConfig, batch: int) -> RunConfig:
    data = codec_data_config(f"{name}-rvq", batch)
    return RunConfig(kind="nexttoken", preset=name, model=model, data=data, train=train)


def preset_tiny() -> RunConfig:
    return _run(
        "tiny",
        NextTokenConfig(width=32, depth=2, heads=2),
        TrainConfig(
            max_steps=4, lr=1e-3, warmup_steps=1, log_every=2, val_every=4, val_batches=1, ckpt_every=4, grad_clip=1.0
        ),
        batch=4,
    )


def preset_small() -> RunConfig:
    """Same width/depth as AAR small, on the small rvq codec (75 frames/s × 10 levels = 750 tokens/s)."""
    return _run(
        "small",
        NextTokenConfig(width=256, depth=4, heads=4),
        TrainConfig(
            max_steps=3000,
            minutes=10.0,
            lr=5e-4,
            betas=(0.9, 0.95),
            weight_decay=0.05,
            warmup_steps=50,
            lr_min_ratio=0.05,
            grad_clip=1.0,
            log_every=20,
            val_every=250,
            val_batches=4,
            ckpt_every=500,
        ),
        batch=8,
    )


def preset_paper() -> RunConfig:
    """The paper's baseline at AAR-d16's size: 16 layers × 1024, 16 heads, flat 10-level RVQ."""
    return _run(
        "paper",
        NextTokenConfig(width=1024, depth=16, heads=16),
        TrainConfig(
            max_steps=400_000,
            lr=1e-4,
            betas=(0.9, 0.95),
            weight_decay=0.05,
            warmup_steps=2000,
            lr_min_ratio=0.01,
            grad_clip=1.0,
            log_every=100,
            val_every=5000,
            val_batches=16,
            ckpt_every=5000,
            mixed_precision=True,
        ),
        batch=64,
    )


PRESETS = {"tiny": preset_tiny, "small": preset_small, "paper": preset_paper}
