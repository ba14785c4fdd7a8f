"""Presets of the `codec` kind: `{tiny,small,paper,cpu}-{continuous,msrq,rvq}`, and `tiny`, `small`,
`paper` = the msrq (SAT) variants.

A preset fixes the audio format, the encoder/decoder size and every bottleneck's sizes, so
`--set bottleneck=rvq` on an msrq preset gives the matching RVQ baseline (same encoder/decoder and
codebook size: the SAT-vs-RVQ comparison); the continuous presets use CAM's format instead (48 kHz
stereo, hop 4096, causal) and are best chosen by name.
"""

from __future__ import annotations

import dataclasses

from arwave.codec.model import CodecConfig
from arwave.config import DataConfig, RunConfig, TrainConfig

# (model fields, data fields, train fields) per size; bottleneck-specific entries below
_MSRQ_FAMILY = {
    # seconds on CPU: hop 160 at 16 kHz, 0.25 s windows (T = 25), 6 scales
    "tiny": (
        dict(
            sample_rate=16000,
            channels=1,
            strides=(4, 5, 8),
            width=8,
            lstm_layers=1,
            latent_dim=16,
            window_frames=25,
            num_scales=6,
            num_phi=2,
            rvq_levels=4,
            codebook_size=64,
            kmeans_iters=5,
            disc_filters=8,
        ),
        dict(batch_size=4),
        dict(max_steps=20, warmup_steps=2, log_every=5, val_every=10, ckpt_every=10),
    ),
    # minutes on CPU: SAT's layout (24 kHz, hop 320, 1 s = 75 frames, 16 scales = 455 tokens/s), narrower
    "small": (
        dict(
            sample_rate=24000,
            channels=1,
            strides=(2, 4, 5, 8),
            width=16,
            lstm_layers=1,
            latent_dim=64,
            window_frames=75,
            num_scales=16,
            num_phi=6,
            rvq_levels=10,
            codebook_size=256,
            kmeans_iters=20,
            disc_filters=16,
            disc_start=1000,
        ),
        dict(batch_size=4),
        dict(max_steps=3000, warmup_steps=100, val_every=250, ckpt_every=250),
    ),
    # SAT d128/lat128 (the tokenizer AAR uses); RVQ: same encoder, 10 levels = 750 tokens/s
    "paper": (
        dict(
            sample_rate=24000,
            channels=1,
            strides=(2, 4, 5, 8),
            width=32,
            lstm_layers=2,
            latent_dim=128,
            window_frames=75,
            num_scales=16,
            num_phi=6,
            rvq_levels=10,
            codebook_size=1024,
            kmeans_iters=50,
            disc_filters=32,
            disc_start=0,
        ),
        dict(batch_size=8),
        dict(max_steps=400_000, warmup_steps=5000, val_every=5000, ckpt_every=5000),
    ),
}
_CONTINUOUS_FAMILY = {
    "tiny": (
        dict(
            sample_rate=16000,
            channels=2,
            strides=(4, 5, 8),
            width=8,
            lstm_layers=1,
            latent_dim=8,
            window_frames=25,
            causal=True,
            disc_filters=8,
        ),
        dict(batch_size=4),
        dict(max_steps=20, warmup_steps=2, log_every=5, val_every=10, ckpt_every=10),
    ),
    # CAM's format at demo size: 48 kHz stereo, hop 4096 (11.7 frames/s), 32-d, causal for streaming
    "small": (
        dict(
            sample_rate=48000,
            channels=2,
            strides=(4, 4, 4, 8, 8),
            width=16,
            max_channels=512,
            lstm_layers=1,
            latent_dim=32,
            window_frames=12,
            causal=True,
            disc_filters=8,
            disc_start=1000,
        ),
        dict(batch_size=4),
        dict(max_steps=3000, warmup_steps=100, val_every=250, ckpt_every=250),
    ),
    # stands in for Music2Latent: 48 kHz stereo, 64-d at 11.7 Hz
    "paper": (
        dict(
            sample_rate=48000,
            channels=2,
            strides=(4, 4, 4, 8, 8),
            width=32,
            max_channels=1024,
            lstm_layers=2,
            latent_dim=64,
            window_frames=24,
            causal=True,
            disc_filters=32,
            disc_start=0,
        ),
        dict(batch_size=8),
        dict(max_steps=400_000, warmup_steps=5000, val_every=5000, ckpt_every=5000),
    ),
}


# The CPU recipe of the bundled codecs (docs/codec.md, "Choosing the recipe"): 24 kHz mono, spectral
# encoder/decoder, reconstruction losses only (no critic), AdamW with a cosine schedule over planned steps.
_CPU = dict(
    sample_rate=24000,
    channels=1,
    architecture="spectral",
    spectral_dim=256,
    spectral_blocks=4,
    latent_dim=64,
    disc_start=10**9,
    w_wave=0.1,
    w_mel=1.0,
)
_CPU_TRAIN = dict(max_steps=8000, warmup_steps=200, log_every=25, val_every=500, ckpt_every=250, keep_checkpoints=2)
_MSRQ_FAMILY["cpu"] = (
    dict(
        _CPU,
        strides=(320,),
        window_frames=75,
        num_scales=16,
        num_phi=6,
        rvq_levels=10,
        codebook_size=1024,
        kmeans_iters=20,
    ),
    dict(batch_size=6),
    _CPU_TRAIN,
)
# codec-latent: the paper's 11.7 frames/s (hop 2048 at 24 kHz = STFT hop 256 x 8), 64-d
_CONTINUOUS_FAMILY["cpu"] = (
    dict(_CPU, strides=(256, 8), window_frames=12, causal=True),
    dict(batch_size=6),
    _CPU_TRAIN,
)


def make_preset(size: str, bottleneck: str = "msrq", name: str | None = None) -> RunConfig:
    family = _CONTINUOUS_FAMILY if bottleneck == "continuous" else _MSRQ_FAMILY
    model_kw, data_kw, train_kw = family[size]
    model = CodecConfig(bottleneck=bottleneck, **model_kw)
    data = DataConfig(
        sample_rate=model.sample_rate, channels=model.channels, segment_seconds=model.window_seconds, **data_kw
    )
    # SAT: Adam betas (0.5, 0.9), lr 3e-4 for generator and critic, clip 1.0, no weight decay, no EMA
    train = TrainConfig(
        lr=3e-4,
        betas=(0.5, 0.9),
        critic_lr=3e-4,
        critic_betas=(0.5, 0.9),
        grad_clip=1.0,
        weight_decay=0.0,
        ema_decay=0.0,
        **train_kw,
    )
    if size == "cpu":  # AdamW 1e-3, betas (0.8, 0.99) (Vocos/DAC-like), decay to 0.1x at max_steps
        train = dataclasses.replace(train, lr=1e-3, betas=(0.8, 0.99), weight_decay=0.01, lr_min_ratio=0.1)
    return RunConfig(kind="codec", preset=name or f"{size}-{bottleneck}", model=model, data=data, train=train)


def _presets() -> dict:
    out = {size: (lambda size=size: make_preset(size, "msrq", size)) for size in ("tiny", "small", "paper")}
    for size in ("tiny", "small", "paper", "cpu"):
        for b in ("continuous", "msrq", "rvq"):
            out[f"{size}-{b}"] = lambda size=size, b=b: make_preset(size, b, f"{size}-{b}")
    return out


PRESETS = _presets()
