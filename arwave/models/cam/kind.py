"""Model kind `cam`: the continuous autoregressive family (CAM, MAR-RF, MAR, GIVT, GIVT+noise).

The names of SPEC §3 are switches of one config:

    CAM         head="rf"    noise_aug=True          MAR-RF   head="rf"    noise_aug=False
    MAR         head="ddpm"  noise_aug=False         GIVT     head="gmm"   noise_aug=False
    GIVT+noise  head="gmm"   noise_aug=True

Training data = the latents of a trained continuous codec (`--set codec_run=runs/codec`), encoded once
per (codec checkpoint, split) and cached in `CODEC_RUN/cache/`. At training start the codec run is
copied into `CAM_RUN/codec/` (config + latest weights) and `parent = "codec"`, so `arwave.load(CAM_RUN)`
alone gives a model that decodes audio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from arwave.config import DataConfig, OneOf, RunConfig, TrainConfig, above, at_least, between
from arwave.data.encoded import EncodedCrops
from arwave.errors import ArwaveError
from arwave.models.cam.heads import HEADS
from arwave.models.cam.model import CAM
from arwave.models.cam.noise import MODES
from arwave.models.codec_parent import attach_codec_run, load_parent_codec
from arwave.registry import Kind, KindNotAvailable, register
from arwave.training.task import Task


@dataclass
class CAMConfig:
    # latents (facts of the codec; filled from it at training start)
    latent_dim: int = 64  # D
    hop: int = 4096  # audio samples per latent frame
    latent_scale: float = 0.0  # RMS of the training latents (0 = measure at training start);
    # the model works on latents / latent_scale (unit RMS)
    # backbone
    width: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    context: int = 64  # frames per training crop = attention span at inference
    # head
    head: str = "rf"  # rf | gmm | ddpm
    head_width: int = 256
    head_depth: int = 3
    head_batch_mul: int = 4  # (σ, noise) draws per z_t per step (rf, ddpm)
    head_steps: int = 0  # default sampling steps; 0 = head default (rf 8, ddpm 25)
    rf_time: str = "logit_normal"  # σ sampling in training: uniform | logit_normal
    gmm_modes: int = 32
    ddpm_steps: int = 1000
    ddpm_clip: float = 6.0  # |x0 estimate| clamp in ddpm sampling (0 = off)
    # noise augmentation
    noise_aug: bool = True
    k_max: float = 0.5  # k ~ U(0, k_max) per context frame
    noise_aug_mode: str = "linear"  # linear: (1−k)x + kε | vp: √(1−k)x + √k ε
    k_inf: float = 0.02  # default inference noise (used only if trained with noise_aug)
    # conditioning
    conditional: bool = False  # class-conditioned on the manifest's labels
    num_classes: int = 0  # filled from the data when conditional
    label_names: list[str] = field(default_factory=list)
    class_dropout: float = 0.1  # label dropped in training (enables CFG)
    # codec
    codec_run: str = ""  # codec run folder (required to start training)
    stream_window: int = 8  # frames decoded per chunk if the codec cannot stream

    LIMITS: ClassVar[dict] = {
        "latent_dim": at_least(1),
        "hop": at_least(1),
        "width": at_least(1),
        "depth": at_least(1),
        "heads": at_least(1),
        "mlp_ratio": above(0),
        "context": at_least(2),
        "head": OneOf(HEADS),
        "head_width": at_least(1),
        "head_depth": at_least(1),
        "head_batch_mul": at_least(1),
        "rf_time": OneOf(("uniform", "logit_normal")),
        "gmm_modes": at_least(1),
        "ddpm_steps": at_least(1),
        "k_max": between(0, 1),
        "noise_aug_mode": OneOf(MODES),
        "k_inf": between(0, 1, hi_open=True),
        "class_dropout": between(0, 1, hi_open=True),
        "stream_window": at_least(1),
    }


def check_config(c: CAMConfig) -> None:
    if c.head not in HEADS:
        raise ArwaveError(f"cam: head must be one of {', '.join(HEADS)}, got {c.head!r}")
    if c.noise_aug_mode not in MODES:
        raise ArwaveError(f"cam: noise_aug_mode must be one of {', '.join(MODES)}, got {c.noise_aug_mode!r}")
    if c.rf_time not in ("uniform", "logit_normal"):
        raise ArwaveError(f"cam: rf_time must be uniform or logit_normal, got {c.rf_time!r}")
    if not 0.0 <= c.k_max <= 1.0 or not 0.0 <= c.k_inf < 1.0:
        raise ArwaveError(f"cam: need 0 <= k_max <= 1 and 0 <= k_inf < 1 (got k_max={c.k_max}, k_inf={c.k_inf})")
    if c.context < 2:
        raise ArwaveError(f"cam: context must be >= 2 frames, got {c.context}")
    if c.width % c.heads:
        raise ArwaveError(f"cam: width {c.width} is not divisible by heads {c.heads}")


def build_model(cfg: RunConfig, run_dir: Path | None = None) -> CAM:
    """The CAM of `cfg`; with a run folder whose config names a parent, its codec is loaded and attached."""
    check_config(cfg.model)
    codec = load_parent_codec(cfg, run_dir)
    if codec is not None and getattr(codec, "latent_dim", cfg.model.latent_dim) != cfg.model.latent_dim:
        raise ArwaveError(f"{run_dir}: codec latent_dim {codec.latent_dim} != cam latent_dim {cfg.model.latent_dim}")
    return CAM(
        cfg.model,
        codec,
        sample_rate=cfg.data.sample_rate,
        channels=cfg.data.channels,
        hop=getattr(codec, "hop", None) or cfg.model.hop,
    )


# ---------------------------------------------------------------------------------------------------
# data: crops of cached latents


class LatentCrops(EncodedCrops):
    """Crops of `context` frames from per-file latents (D, T_f): item = {"latents": (context, D), "label"}."""

    def __getitem__(self, key):
        f, z = self.crop(key)
        return {"latents": z.t().contiguous(), "label": self.labels[f]}


class CAMTask(Task):
    def __init__(self, cfg: RunConfig, run_dir: str | Path):
        from arwave.data.dataset import dataset_for_split
        from arwave.data.encoded import drop_skipped, encode_files

        run_dir = Path(run_dir)
        mc = cfg.model
        check_config(mc)
        codec, cache_dir, cache_key, device = attach_codec_run(cfg, run_dir, "cam", "continuous")
        # the data is read at the codec's format, whatever the preset assumed (as AAR and next-token do)
        cfg.data.sample_rate, cfg.data.channels = int(codec.sample_rate), int(codec.channels)
        mc.latent_dim, mc.hop = int(codec.latent_dim), int(codec.hop)
        cfg.data.segment_seconds = mc.context * mc.hop / codec.sample_rate
        sets = {}
        for split in ("train", "val"):
            files = dataset_for_split(cfg.data, split, segment_samples=1)
            if mc.conditional:
                mc.label_names, mc.num_classes = list(files.label_names), len(files.label_names)
            if not files.file_paths:
                sets[split] = None
                continue
            skipped: list[int] = []  # files that vanished since indexing (encode_files warns once)
            lat = encode_files(
                files.file_paths,
                lambda a: codec.encode(a[None].to(device))[0].float().cpu(),
                cache_dir,
                f"cam-latents-{split}",
                cfg.data.sample_rate,
                cfg.data.channels,
                extra=cache_key,
                skipped=skipped,
            )
            labels = drop_skipped(files.labels, skipped)
            sets[split] = LatentCrops(lat, labels, mc.context, random_crop=(split == "train"))
        codec.cpu()
        train = sets["train"]
        if train is not None and train.sequences and mc.latent_scale <= 0:
            # noise levels k, k_inf and the head's N(0, I) prior assume unit-scale frames
            sq = sum(float(z.double().pow(2).sum()) for z in train.sequences)
            count = sum(z.numel() for z in train.sequences)
            mc.latent_scale = max(math.sqrt(sq / max(count, 1)), 1e-8)
        if train is None or len(train) == 0:
            secs = mc.context * mc.hop / cfg.data.sample_rate
            raise ArwaveError(
                f"cam: no training file is at least context={mc.context} frames ({secs:.1f} s) long; "
                "lower --set context=N or add longer audio"
            )
        self.train_set = train
        self.val_set = sets["val"] if sets["val"] is not None and len(sets["val"]) else None
        self.conditional = mc.conditional
        self.codec = codec  # decodes the samples; never part of the trained weights
        self.model = CAM(mc, None, sample_rate=cfg.data.sample_rate, channels=cfg.data.channels, hop=mc.hop)

    def loss(self, model, batch, step):
        labels = batch["label"] if self.conditional else None
        return model(batch["latents"], labels), {}

    def samples(self, model, step: int) -> dict:
        """One training context of frames sampled with the default settings (first class), decoded by
        the run's codec (attached for the call only): RUN/samples/sample-<step>.wav."""
        mc = model.cam
        label = 0 if mc.conditional and mc.num_classes else None
        device = next(model.parameters()).device
        model.attach_codec(self.codec.to(device))
        try:
            audio = model.generate(mc.context * mc.hop / model.sample_rate, num=1, seed=0, class_label=label)[0]
        finally:
            model.attach_codec(None)
            self.codec.cpu()
        return {"sample": (audio, model.sample_rate)}

    def val_metrics(self, model, batch):
        # the same noise draws for every validation, so val losses are comparable across steps
        device = batch["latents"].device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(0)
            return {"loss": float(self.loss(model, batch, -1)[0])}


# ---------------------------------------------------------------------------------------------------
# presets


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


register(
    Kind(
        name="cam",
        config_cls=CAMConfig,
        presets={"tiny": preset_tiny, "small": preset_small, "paper": preset_paper},
        build_model=build_model,
        build_task=CAMTask,
        description="continuous autoregressive model on codec latents (CAM / MAR-RF / MAR / GIVT via head + noise_aug)",
    )
)
