"""Model kind `nexttoken`: the next-token GPT baseline over the codes of a trained rvq codec.

Training data = the RVQ codes (N, F) of every whole file, encoded once per (codec checkpoint, split) and
cached in `CODEC_RUN/cache/`; items are random crops of `context_frames` frames (RVQ codes are per
frame, so any offset is valid). The codec run is copied into `RUN/codec/` and `parent = "codec"`, as
for AAR, so `arwave.load(RUN)` alone rebuilds the model with its codec.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from arwave.config import ConfigError, RunConfig, TrainConfig
from arwave.data.encoded import EncodedCrops
from arwave.errors import ArwaveError
from arwave.models.aar.condition import COND_KINDS
from arwave.models.aar.kind import clip_conditions
from arwave.models.codec_parent import attach_codec_run, codec_data_config, load_parent_codec
from arwave.models.nexttoken.model import PATTERNS, NextToken, NextTokenConfig
from arwave.registry import Kind, register
from arwave.training.task import Task

__all__ = ["NextTokenConfig", "NextTokenTask", "build_model", "CodeCrops"]


def check_config(m: NextTokenConfig) -> None:
    if m.cond not in COND_KINDS:
        raise ConfigError(f"nexttoken: cond must be one of {', '.join(COND_KINDS)}, got {m.cond!r}")
    if m.pattern not in PATTERNS:
        raise ConfigError(f"nexttoken: pattern must be one of {', '.join(PATTERNS)}, got {m.pattern!r}")
    if m.width % m.heads:
        raise ConfigError(f"nexttoken: width {m.width} is not divisible by heads {m.heads}")
    if not 0 <= m.cond_drop < 1:
        raise ConfigError(f"nexttoken: cond_drop must be in [0, 1), got {m.cond_drop}")


def build_model(cfg: RunConfig, run_dir: Path | None = None) -> NextToken:
    check_config(cfg.model)
    codec = load_parent_codec(cfg, run_dir)
    return NextToken(cfg.model, codec=codec)


class CodeCrops(EncodedCrops):
    """Crops of `context` frames of per-file codes (N, F_f): item = {"codes": (N, context), "label",
    ["embedding"]}."""

    def __getitem__(self, key):
        f, c = self.crop(key)
        item = {"codes": c.long(), "label": self.labels[f]}
        if self.embeddings is not None:
            item["embedding"] = self.embeddings[f]
        return item


class NextTokenTask(Task):
    """Cross-entropy over every real token of the step layout (flat: all F·N; delay: no PAD)."""

    def __init__(self, cfg: RunConfig, run_dir: str | Path):
        from arwave.data.dataset import dataset_for_split
        from arwave.data.encoded import drop_skipped, encode_files

        m: NextTokenConfig = cfg.model
        check_config(m)
        codec, cache_dir, key, device = attach_codec_run(cfg, run_dir, "nexttoken", "rvq")
        cfg.data.sample_rate, cfg.data.channels = int(codec.sample_rate), int(codec.channels)
        m.context_frames = int(m.context_frames or codec.window_frames)
        cfg.data.segment_seconds = m.context_frames * codec.hop / codec.sample_rate
        sets = {}
        for split in ("train", "val"):
            files = dataset_for_split(cfg.data, split, segment_samples=1)
            if m.cond == "class":
                m.label_names, m.num_classes = list(files.label_names), len(files.label_names)
            if not files.file_paths:
                sets[split] = None
                continue
            skipped: list[int] = []  # files that vanished since indexing (encode_files warns once)
            codes = encode_files(
                files.file_paths,
                lambda a: codec.encode(a[None].to(device))[0].cpu(),
                cache_dir,
                f"nexttoken-codes-{split}",
                files.sample_rate,
                files.channels,
                extra=key,
                skipped=skipped,
            )
            conds = clip_conditions(cfg, files, split, cache_dir, skipped)
            labels = drop_skipped(files.labels, skipped)
            sets[split] = CodeCrops(codes, labels, m.context_frames, split == "train", conds)
        codec.cpu()
        if sets["train"] is None or len(sets["train"]) == 0:
            secs = m.context_frames * codec.hop / codec.sample_rate
            raise ArwaveError(
                f"nexttoken: no training file is at least context_frames={m.context_frames} ({secs:.2f} s) long"
            )
        self.train_set = sets["train"]
        self.val_set = sets["val"] if sets["val"] is not None and len(sets["val"]) else None
        self.cfg = cfg
        self.model = NextToken(m, codec=codec)

    def loss(self, model, batch, step):
        codes = batch["codes"]
        logits = model(
            codes,
            labels=batch.get("label"),
            embeddings=batch.get("embedding"),
            cond_drop=self.cfg.model.cond_drop if step >= 0 else 0.0,
        )
        targets = self.model.to_steps(codes)
        valid = self.model.valid(codes.shape[-1], codes.device)
        picked = logits[:, valid].float()  # (B, n, V)
        ce = F.cross_entropy(picked.flatten(0, 1), targets[:, valid].flatten())
        with torch.no_grad():
            acc = (picked.argmax(-1) == targets[:, valid]).float().mean()
        return ce, {"acc": acc}

    def samples(self, model, step: int) -> dict:
        """One training context sampled with the default settings (first class): RUN/samples/sample-<step>.wav."""
        m = self.cfg.model
        label = 0 if m.cond == "class" and m.num_classes else None
        seconds = m.context_frames * model.codec.hop / model.sample_rate
        audio = model.generate(seconds, num=1, seed=0, class_label=label)[0]
        return {"sample": (audio, model.sample_rate)}


# ---------------------------------------------------------------------------------------------------
# presets (tokens from the rvq codec preset of the same size: `arwave train codec --preset NAME-rvq`)


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


register(
    Kind(
        name="nexttoken",
        config_cls=NextTokenConfig,
        presets={"tiny": preset_tiny, "small": preset_small, "paper": preset_paper},
        build_model=build_model,
        build_task=NextTokenTask,
        description="next-token GPT baseline over rvq codec tokens (flat or MusicGen delay pattern)",
    )
)
