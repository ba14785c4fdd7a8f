"""Presets of the `cam` kind; each trains on the continuous codec preset of its size."""

from __future__ import annotations

import math

from arwave.config import DataConfig, RunConfig, TrainConfig
from arwave.models.cam.model import CAMConfig
from arwave.registry import KindNotAvailable


def _codec_facts(name: str) -> tuple[int, int, int, int]:
    """(sample_rate, channels, hop, latent_dim) of the codec preset `{name}-continuous`, the codec a CAM
    of this size trains on (the defaults below repeat it for when the codec kind is unavailable)."""
    defaults = {"tiny": (16000, 2, 160, 8), "small": (48000, 2, 4096, 32), "paper": (48000, 2, 4096, 64)}[name]
    try:
        from arwave.registry import preset

        m = preset("codec", f"{name}-continuous").model
    except (KindNotAvailable, ImportError):
        return defaults
    return m.sample_rate, m.channels, int(math.prod(m.strides)), int(m.latent_dim)


def _run(name: str, model: CAMConfig, train: TrainConfig, batch: int) -> RunConfig:
    sr, ch, hop, dim = _codec_facts(name)
    model.hop, model.latent_dim = hop, dim
    data = DataConfig(sample_rate=sr, channels=ch, segment_seconds=model.context * hop / sr, batch_size=batch)
    return RunConfig(kind="cam", preset=name, model=model, data=data, train=train)


def preset_tiny() -> RunConfig:
    """Tests: seconds on CPU."""
    return _run(
        "tiny",
        CAMConfig(width=32, depth=2, heads=2, context=16, head_width=32, head_depth=1, head_batch_mul=2),
        TrainConfig(max_steps=20, lr=1e-3, warmup_steps=2, log_every=5, val_every=10, val_batches=1, ckpt_every=10),
        batch=4,
    )


def preset_small() -> RunConfig:
    """The demo: learns the corpus latents' short-term structure in ~10 minutes on 2 CPU cores."""
    return _run(
        "small",
        CAMConfig(width=256, depth=4, heads=4, context=32, head_width=256, head_depth=3),
        TrainConfig(
            max_steps=3000,
            minutes=10.0,
            lr=5e-4,
            warmup_steps=100,
            weight_decay=0.01,
            log_every=20,
            val_every=250,
            val_batches=4,
            ckpt_every=500,
        ),
        batch=16,
    )


def preset_paper() -> RunConfig:
    """Paper-sized (GPU): 16 layers × 768, 12 heads; MAR-B-like head (6 blocks × 1024); ≈ 150M parameters."""
    return _run(
        "paper",
        CAMConfig(width=768, depth=16, heads=12, context=128, head_width=1024, head_depth=6),
        TrainConfig(
            max_steps=400_000,
            lr=1e-4,
            betas=(0.9, 0.95),
            weight_decay=0.02,
            warmup_steps=5000,
            lr_min_ratio=0.1,
            grad_clip=1.0,
            ema_decay=0.9999,
            log_every=100,
            val_every=5000,
            val_batches=16,
            ckpt_every=5000,
            mixed_precision=True,
        ),
        batch=64,
    )


PRESETS = {"tiny": preset_tiny, "small": preset_small, "paper": preset_paper}
