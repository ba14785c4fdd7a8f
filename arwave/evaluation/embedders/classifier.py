"""A trained arwave classifier run (`arwave train classifier`) as an embedder: block embeddings are its
penultimate features (like Inception features for FID), posteriors its softmax over the corpus labels.
Blocks = the run's training segment with a 50 % hop (see `arwave.evaluation.classifier`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from arwave.device import pick_device
from arwave.evaluation.embedders import Embedder, EmbedderError


class ClassifierEmbedder(Embedder):
    def __init__(self, run: str | Path, device: str | torch.device | None = "cpu", batch_size: int = 32):
        from arwave.checkpoint import load, resolve_run
        from arwave.evaluation.classifier import AudioClassifier

        device = pick_device(device)
        run_dir, ckpt = resolve_run(run)
        model = load(run, device=device)
        if not isinstance(model, AudioClassifier):
            raise EmbedderError(
                f"{run}: embedder 'classifier' needs a classifier run, this one is a {model.config.kind!r} run"
            )
        self.model = model
        self.name = f"classifier:{Path(run_dir).name}"
        self.sample_rate = model.sample_rate
        self.dim = model.cfg.embed_dim
        self.class_names = list(model.label_names)
        self.batch_size = batch_size
        weights = sorted(ckpt.glob("*.safetensors"))
        ident = f"{Path(run_dir).resolve()}|{ckpt.name}|" + "|".join(
            f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights
        )
        self.cache_key = f"classifier-{Path(run_dir).name}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"

    def _run(self, clips):
        return [self.model.block_outputs(x, self.batch_size) for x in clips]
