"""Presets of the `aar` kind: the codec preset of the same name gives the tokens
(`arwave train codec --preset NAME`)."""

from __future__ import annotations

from arwave.config import RunConfig, TrainConfig
from arwave.models.aar.model import AARConfig
from arwave.models.codec_parent import codec_data_config


def _run(name: str, model: AARConfig, train: TrainConfig, batch: int) -> RunConfig:
    data = codec_data_config(name, batch)
    return RunConfig(kind="aar", preset=name, model=model, data=data, train=train)


def preset_tiny() -> RunConfig:
    """Tests: seconds on CPU (tiny msrq codec: 25 frames, 6 scales, 64 codes)."""
    return _run(
        "tiny",
        AARConfig(width=32, depth=2, heads=2),
        TrainConfig(
            max_steps=4, lr=1e-3, warmup_steps=1, log_every=2, val_every=4, val_batches=1, ckpt_every=4, grad_clip=2.0
        ),
        batch=4,
    )


def preset_small() -> RunConfig:
    """The demo: 4 × 256 (5M parameters) on the small msrq codec (1 s = 75 frames, 16 scales, 455 tokens);
    about 2 s per step of 8 windows on one busy CPU core, so the 10-minute budget is ~300-500 steps."""
    return _run(
        "small",
        AARConfig(width=256, depth=4, heads=4),
        TrainConfig(
            max_steps=3000,
            minutes=10.0,
            lr=5e-4,
            betas=(0.9, 0.95),
            weight_decay=0.05,
            warmup_steps=50,
            lr_min_ratio=0.05,
            grad_clip=2.0,
            log_every=20,
            val_every=250,
            val_batches=4,
            ckpt_every=500,
        ),
        batch=8,
    )


def preset_paper() -> RunConfig:
    """AAR-d16 (VAR d16: 16 layers × 1024, 16 heads, ≈ 300M parameters) on SAT's 455 tokens per second;
    AdamW (0.9, 0.95), lr 1e-4, wd 0.05, clip 2, bf16 (research/aar.md §2.6)."""
    return _run(
        "paper",
        AARConfig(width=1024, depth=16, heads=16),
        TrainConfig(
            max_steps=400_000,
            lr=1e-4,
            betas=(0.9, 0.95),
            weight_decay=0.05,
            warmup_steps=2000,
            lr_min_ratio=0.01,
            grad_clip=2.0,
            log_every=100,
            val_every=5000,
            val_batches=16,
            ckpt_every=5000,
            mixed_precision=True,
        ),
        batch=64,
    )


PRESETS = {"tiny": preset_tiny, "small": preset_small, "paper": preset_paper}
