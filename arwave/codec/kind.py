"""The `codec` model kind: config dataclass, presets, model builder and training task.

Presets: `{tiny,small,paper}-{continuous,msrq,rvq}`, and `tiny`, `small`, `paper` = the msrq (SAT)
variants. A preset fixes the audio format, the encoder/decoder size and every bottleneck's sizes, so
`--set bottleneck=rvq` on an msrq preset gives the matching RVQ baseline (same encoder/decoder and
codebook size: the SAT-vs-RVQ comparison); the continuous presets use CAM's format instead (48 kHz
stereo, hop 4096, causal) and are best chosen by name. The codec's data is always read at the codec's
sample rate and channel count, cut to its training window (see CodecTask), whatever `data.*` says.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.codec.discriminator import MultiScaleSTFTDiscriminator
from arwave.codec.losses import (
    feature_matching_loss,
    frame_loudness_loss,
    hinge_critic_loss,
    hinge_generator_loss,
    multi_resolution_mel_loss,
)
from arwave.config import ConfigError, DataConfig, OneOf, RunConfig, TrainConfig, at_least, between
from arwave.registry import Kind, register
from arwave.training.task import Task


@dataclass
class CodecConfig:
    bottleneck: str = "msrq"  # continuous | msrq | rvq
    architecture: str = "seanet"  # seanet (waveform convs, SPEC) | spectral (STFT + iSTFT head)
    # audio and encoder/decoder (SEANet; for spectral: strides = (STFT hop, learned down-sampling...))
    sample_rate: int = 24000
    channels: int = 1
    strides: tuple[int, ...] = (2, 4, 5, 8)  # hop = product (320 -> 75 frames/s at 24 kHz)
    width: int = 32  # channels of the first conv, doubled at every stride
    max_channels: int = 1024
    residual_layers: int = 1
    lstm_layers: int = 2  # 0 = no LSTM
    causal: bool = False  # left padding only (needed for streaming decoding)
    spectral_dim: int = 256  # spectral: ConvNeXt width
    spectral_blocks: int = 4  # spectral: ConvNeXt blocks per side
    latent_dim: int = 128  # D: quantized dim (msrq/rvq) or latent dim (continuous)
    window_frames: int = 75  # training crop in frames; msrq quantizes windows of T = this
    # msrq (SAT)
    num_scales: int = 16  # K; scales = msrq_scales(window_frames, K)
    num_phi: int = 6
    phi_kernel: int = 9
    shared_codebook: bool = False
    per_scale_ste: bool = False  # SAT's straight-through per scale (encoder gradient × K) instead of VAR's one
    # rvq
    rvq_levels: int = 10
    # EMA codebooks (msrq and rvq)
    codebook_size: int = 1024
    ema_decay: float = 0.99
    dead_code_threshold: float = 2.0
    kmeans_iters: int = 50
    # continuous (VAE)
    kl_weight: float = 1e-4
    # discriminator and loss weights (SAT: 3·adv + 3·feat + 0.1·wave + 1·mel + 1·vq)
    disc_filters: int = 32
    disc_start: int = 0  # adversarial terms and critic updates start at this step
    disc_skip_every: int = 3  # SAT skips the critic update when step % 3 == 0 (0 = never)
    w_adv: float = 3.0
    w_feat: float = 3.0
    w_wave: float = 0.1
    w_mel: float = 1.0
    w_loud: float = 0.0  # frame-loudness L1 in bels: log-domain losses alone leave the output quieter
    w_vq: float = 1.0
    mel_bins: int = 64

    LIMITS: ClassVar[dict] = {
        "bottleneck": OneOf(("continuous", "msrq", "rvq")),
        "architecture": OneOf(("seanet", "spectral")),
        "sample_rate": at_least(1),
        "channels": at_least(1),
        "strides": at_least(1),
        "width": at_least(1),
        "max_channels": at_least(1),
        "latent_dim": at_least(1),
        "window_frames": at_least(1),
        "num_scales": at_least(1),
        "phi_kernel": at_least(1),
        "rvq_levels": at_least(1),
        "codebook_size": at_least(2),
        "ema_decay": between(0, 1, hi_open=True),
        "mel_bins": at_least(1),
        "disc_filters": at_least(1),
    }

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    @property
    def window_seconds(self) -> float:
        return self.window_frames * self.hop / self.sample_rate


def validate(cfg: CodecConfig) -> None:
    if cfg.bottleneck not in ("continuous", "msrq", "rvq"):
        raise ConfigError(f"codec: bottleneck must be continuous, msrq or rvq, got {cfg.bottleneck!r}")
    if cfg.architecture not in ("seanet", "spectral"):
        raise ConfigError(f"codec: architecture must be seanet or spectral, got {cfg.architecture!r}")
    if cfg.architecture == "spectral" and cfg.strides and cfg.strides[0] < 2:
        raise ConfigError(f"codec: a spectral codec's first stride is its STFT hop (>= 2), got {cfg.strides}")
    if not cfg.strides or any(s < 1 for s in cfg.strides):
        raise ConfigError(f"codec: strides must be positive integers, got {cfg.strides}")
    if cfg.bottleneck == "msrq" and not 1 <= cfg.num_scales <= cfg.window_frames:
        raise ConfigError(f"codec: num_scales must be in 1..window_frames ({cfg.window_frames}), got {cfg.num_scales}")
    if cfg.bottleneck == "msrq":
        from arwave.codec.msrq import msrq_scales

        scales = msrq_scales(cfg.window_frames, cfg.num_scales)
        if any(b <= a for a, b in zip(scales, scales[1:])):
            raise ConfigError(
                f"codec: window_frames={cfg.window_frames} with num_scales={cfg.num_scales} gives "
                f"repeated scales {scales}; use fewer scales or a longer window"
            )


# ---------------------------------------------------------------------------------------------------
# presets

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


def _presets() -> dict[str, Any]:
    out = {size: (lambda size=size: make_preset(size, "msrq", size)) for size in ("tiny", "small", "paper")}
    for size in ("tiny", "small", "paper", "cpu"):
        for b in ("continuous", "msrq", "rvq"):
            out[f"{size}-{b}"] = lambda size=size, b=b: make_preset(size, b, f"{size}-{b}")
    return out


# ---------------------------------------------------------------------------------------------------
# model and task


def build_model(cfg: RunConfig, run_dir: Path | None = None) -> nn.Module:
    from arwave.codec.model import Codec

    validate(cfg.model)
    return Codec(cfg.model)


class _Frozen:
    """Context: the critic's parameters stop requiring grad, so the generator loss can run through the
    raw critic without accumulating gradients into it (or firing its DDP hooks)."""

    def __init__(self, module: nn.Module):
        self.params = [p for p in module.parameters() if p.requires_grad]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p in self.params:
            p.requires_grad_(True)


COLLAPSE_RATIO = 0.9


def warn_if_collapsed(ratio: float) -> bool:
    """Warn when reconstructions no longer depend on their input: MEL(recon_i, x_i) is nearly as far as
    MEL(recon_i, x_j) for other clips j (input-specificity ratio, docs/metrics.md). Returns True if warned."""
    if ratio <= COLLAPSE_RATIO:
        return False
    import warnings

    warnings.warn(
        f"codec: reconstructions of different inputs are near-identical (input-specificity ratio "
        f"{ratio:.2f} > {COLLAPSE_RATIO}): the codec has collapsed or has not started to learn; see "
        f"docs/codec.md, 'Collapse'",
        RuntimeWarning,
        stacklevel=2,
    )
    return True


class CodecTask(Task):
    """Generator loss: w_adv·l_g + w_feat·l_feat + w_wave·l_t + w_mel·l_f + (w_vq·l_vq | kl_weight·KL);
    critic loss: hinge. Adversarial terms and critic updates start at `disc_start`."""

    def __init__(self, cfg: RunConfig, run_dir: Path | None = None, datasets: tuple | None = None):
        from arwave.codec.model import Codec

        m: CodecConfig = cfg.model
        validate(m)
        self.cfg = cfg
        self.model = Codec(m)
        self.critic = MultiScaleSTFTDiscriminator(m.channels, m.disc_filters)
        if datasets is None:
            from arwave.data.dataset import datasets_from_config

            data = dataclasses.replace(cfg.data, sample_rate=m.sample_rate, channels=m.channels)
            datasets = datasets_from_config(data, segment_samples=m.window_frames * m.hop)
        self.train_set, self.val_set = datasets
        if m.bottleneck == "msrq":  # a phi conv no scale uses
            from arwave.codec.msrq import phi_schedule

            self.find_unused_parameters = len(set(phi_schedule(m.num_scales, m.num_phi))) < m.num_phi
        self._fake: torch.Tensor | None = None
        self._real: torch.Tensor | None = None

    def _adversarial(self, step: int) -> bool:
        return step >= 0 and step >= self.cfg.model.disc_start

    def loss(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        m: CodecConfig = self.cfg.model
        real = batch["audio"]
        out = model(real)
        fake = out.audio
        with torch.autocast(device_type=real.device.type, enabled=False):  # spectra in fp32
            l_wave = F.l1_loss(fake.float(), real.float())
            l_mel = multi_resolution_mel_loss(fake.float(), real.float(), m.sample_rate, m.mel_bins)
            l_loud = frame_loudness_loss(fake.float(), real.float())
        reg_weight = m.kl_weight if m.bottleneck == "continuous" else m.w_vq
        total = m.w_wave * l_wave + m.w_mel * l_mel + reg_weight * out.loss
        if m.w_loud:
            total = total + m.w_loud * l_loud
        logs = {
            "wave": float(l_wave.detach()),
            "mel": float(l_mel.detach()),
            "loud": float(l_loud.detach()),
            ("kl" if m.bottleneck == "continuous" else "vq"): float(out.loss.detach()),
        }
        logs.update({k: v for k, v in out.stats.items() if not k.startswith("ppl") or not k[3:].isdigit()})
        if self._adversarial(step):
            with _Frozen(self.critic):
                logits_fake, feats_fake = self.critic(fake)
                with torch.no_grad():
                    _, feats_real = self.critic(real)
            l_adv = hinge_generator_loss(logits_fake)
            l_feat = feature_matching_loss(feats_real, feats_fake)
            total = total + m.w_adv * l_adv + m.w_feat * l_feat
            logs.update(adv=float(l_adv.detach()), feat=float(l_feat.detach()))
        self._fake, self._real = fake.detach(), real
        return total, logs

    def critic_loss(self, critic: nn.Module, batch: Any, step: int):
        m: CodecConfig = self.cfg.model
        if self._fake is None or not self._adversarial(step):
            return None
        if m.disc_skip_every and step % m.disc_skip_every == 0:
            return None
        logits_real, _ = critic(self._real)
        logits_fake, _ = critic(self._fake)
        loss = hinge_critic_loss(logits_real, logits_fake)
        self._fake = self._real = None
        return loss, {"hinge": float(loss.detach())}

    def val_metrics(self, model: nn.Module, batch: Any) -> dict[str, float]:
        from arwave.evaluation.recon import input_specificity, mel_distance, stft_distance

        loss, logs = self.loss(model, batch, step=-1)
        self._fake = self._real = None
        real = batch["audio"]
        recon = model.reconstruct(real)
        out = {
            "loss": float(loss),
            **logs,
            "mel_distance": mel_distance(real, recon, self.cfg.model.sample_rate),
            "stft_distance": stft_distance(real, recon),
        }
        if real.shape[0] >= 2:
            ratio = sum(input_specificity(list(real), list(recon), self.cfg.model.sample_rate)) / real.shape[0]
            out["specificity"] = ratio
            warn_if_collapsed(ratio)
        return out

    def samples(self, model: nn.Module, step: int) -> dict[str, tuple[torch.Tensor, int]]:
        """The reconstruction of the first validation crop (RUN/samples/recon-<step>.wav) and that
        crop itself (reference.wav)."""
        if self.val_set is None or len(self.val_set) == 0:
            return {}
        real = self.val_set[(0, 0)]["audio"]
        device = next(model.parameters()).device
        recon = model.reconstruct(real[None].to(device))[0].cpu()
        rate = self.cfg.model.sample_rate
        return {"recon": (recon, rate), "reference": (real, rate)}


def build_task(cfg: RunConfig, run_dir: Path) -> Task:
    return CodecTask(cfg, run_dir)


register(
    Kind(
        name="codec",
        config_cls=CodecConfig,
        presets=_presets(),
        build_model=build_model,
        build_task=build_task,
        description="audio codec: SEANet encoder/decoder with a continuous (VAE), msrq (SAT) or rvq bottleneck",
    )
)
