"""The next-token baseline's training task: cross-entropy over crops of the codes of a trained rvq codec.

Training data = the RVQ codes (N, F) of every whole file, encoded once per (codec checkpoint, split) and
cached in `CODEC_RUN/cache/`; items are random crops of `context_frames` frames (RVQ codes are per
frame, so any offset is valid). The codec run is copied into `RUN/codec/` and `parent = "codec"`, as
for AAR, so `arwave.load(RUN)` alone rebuilds the model with its codec.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from arwave.config import RunConfig
from arwave.data.encoded import EncodedCrops
from arwave.errors import ArwaveError
from arwave.models.aar.task import clip_conditions, with_condition_facts
from arwave.models.codec_parent import attach_codec_run, data_at_codec, resolved_config
from arwave.models.nexttoken.model import NextToken, NextTokenConfig, check_config
from arwave.training.task import Task


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
        from arwave.data.encoded import encode_splits

        check_config(cfg.model)
        attached = attach_codec_run(cfg, run_dir, "nexttoken", "rvq")
        codec, device, facts = attached.codec, attached.device, attached.facts
        m: NextTokenConfig = cfg.model.with_codec(facts)
        data = data_at_codec(cfg.data, facts, m.context_frames)
        encoded = encode_splits(
            data,
            lambda a: codec.encode(a[None].to(device))[0].cpu(),
            attached.cache_dir,
            "nexttoken-codes",
            attached.cache_key,
            build=lambda codes, labels, conds, split: CodeCrops(
                codes, labels, m.context_frames, split == "train", conds
            ),
            conditions=lambda files, split, skipped: clip_conditions(
                cfg.kind, m, files, split, attached.cache_dir, skipped
            ),
        )
        codec.cpu()
        if encoded.train is None or len(encoded.train) == 0:
            secs = facts.seconds(m.context_frames)
            raise ArwaveError(
                f"nexttoken: no training file is at least context_frames={m.context_frames} ({secs:.2f} s) long"
            )
        m = with_condition_facts(m, encoded)
        self.config = resolved_config(cfg, m, data)
        self.train_set = encoded.train
        self.val_set = encoded.val if encoded.val is not None and len(encoded.val) else None
        self.model = NextToken(m, codec=codec)

    def loss(self, model, batch, step):
        codes = batch["codes"]
        logits = model(
            codes,
            labels=batch.get("label"),
            embeddings=batch.get("embedding"),
            cond_drop=self.config.model.cond_drop if step >= 0 else 0.0,
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
        m = self.config.model
        label = 0 if m.cond == "class" and m.num_classes else None
        seconds = m.context_frames * model.codec.hop / model.sample_rate
        audio = model.generate(seconds, num=1, seed=0, class_label=label)[0]
        return {"sample": (audio, model.sample_rate)}
