"""In-domain audio classifier (model kind `classifier`): a small CNN over log-mel spectrograms, trained
on the corpus's labels (instruments for the built-in corpus) with `arwave train classifier`
(training: classifier_task.py; presets: classifier_kind.py).

It is arwave's "Inception" for audio: its penultimate features are an embedder for FAD on this
domain, its class posteriors feed ISc and KL (`arwave.evaluation.embedders.classifier`).

    wave (B, C, N) -> mono -> log(mel power + 1e-6), (B, 1, frames, n_mels)
    -> len(widths) x [3x3 conv, GroupNorm, GELU] x 2 + 2x2 average pool
    -> mean over mel, mean + max over time                     (PANNs-style pooling, any length)
    -> Linear -> GELU = embedding (embed_dim)  -> dropout -> Linear -> logits (num classes)

Long audio is classified in blocks of `data.segment_seconds` (the training crop) with a 50 % hop;
a clip's posterior is the mean of its blocks' softmax outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.config import RunConfig, above, at_least, between
from arwave.errors import ArwaveError
from arwave.evaluation.embedders import as_clips, mono_at_rate
from arwave.mel import mel_filterbank


@dataclass
class ClassifierConfig:
    window_ms: float = 25.0  # STFT window (Hann); n_fft = next power of two >= window
    hop_ms: float = 10.0
    n_mels: int = 64
    fmin: float = 20.0
    fmax: float = 0.0  # 0 = sample_rate / 2
    widths: tuple[int, ...] = (16, 32, 64, 128)
    embed_dim: int = 128
    dropout: float = 0.1
    label_names: list[str] = field(default_factory=list)  # filled from the dataset when training starts

    LIMITS: ClassVar[dict] = {
        "window_ms": above(0),
        "hop_ms": above(0),
        "n_mels": at_least(1),
        "widths": at_least(1),
        "embed_dim": at_least(1),
        "dropout": between(0, 1, hi_open=True),
    }


# ---------------------------------------------------------------------------------------------------
# model


class LogMel(nn.Module):
    def __init__(self, sample_rate: int, cfg: ClassifierConfig):
        super().__init__()
        self.win = max(16, round(cfg.window_ms * sample_rate / 1000))
        self.hop = max(1, round(cfg.hop_ms * sample_rate / 1000))
        self.n_fft = 1 << (self.win - 1).bit_length()
        fmax = cfg.fmax or sample_rate / 2
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)
        self.register_buffer(
            "mel", mel_filterbank(sample_rate, self.n_fft, cfg.n_mels, cfg.fmin, fmax), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, 1, frames, n_mels)."""
        spec = torch.stft(
            x, self.n_fft, self.hop, self.win, self.window, center=True, pad_mode="constant", return_complex=True
        )
        power = spec.real**2 + spec.imag**2  # (B, n_fft/2+1, frames)
        return torch.log(self.mel @ power + 1e-6).transpose(1, 2)[:, None]


def conv_block(cin: int, cout: int) -> nn.Sequential:
    groups = lambda c: min(8, c)
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.GroupNorm(groups(cout), cout),
        nn.GELU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.GroupNorm(groups(cout), cout),
        nn.GELU(),
    )


class AudioClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig, sample_rate: int, segment_seconds: float):
        super().__init__()
        if len(cfg.label_names) < 2:
            raise ArwaveError(
                f"classifier: needs at least 2 classes, the config lists {len(cfg.label_names)} "
                "(label_names is filled from the training data's labels)"
            )
        self.cfg = cfg
        self.sample_rate = int(sample_rate)
        self.label_names = list(cfg.label_names)
        self.block_samples = max(1, round(segment_seconds * sample_rate))
        self.logmel = LogMel(sample_rate, cfg)
        widths = [1, *cfg.widths]
        self.blocks = nn.ModuleList([conv_block(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.proj = nn.Linear(widths[-1], cfg.embed_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.embed_dim, len(cfg.label_names))

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, C, N) or (B, N) at self.sample_rate -> (B, embed_dim) penultimate features."""
        x = wave.mean(1) if wave.dim() == 3 else wave
        h = self.logmel(x)
        for block in self.blocks:
            h = block(h)
            if min(h.shape[-2:]) >= 2:  # very short inputs stop being pooled in time
                h = F.avg_pool2d(h, 2)
        h = h.mean(-1)  # over mel
        h = h.mean(-1) + h.amax(-1)  # over time
        return F.gelu(self.proj(h))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes)."""
        return self.head(self.drop(self.features(wave)))

    # -- any-length audio at any rate: blocks of the training segment, 50 % hop --------------------

    def blocks_of(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) -> (num_blocks, block_samples); a clip shorter than a block is one block of its own length."""
        n, b = x.shape[-1], self.block_samples
        if n <= b:
            return x[None]
        hop = max(1, b // 2)
        count = (n - b) // hop + 1
        return x.unfold(0, b, hop)[:count]

    @torch.no_grad()
    def block_outputs(self, x: torch.Tensor, batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        """Mono (N,) at self.sample_rate -> (block embeddings (f, D), block probabilities (f, K))."""
        device = next(self.parameters()).device
        blocks = self.blocks_of(x.to(device))
        embs, probs = [], []
        for i in range(0, len(blocks), batch_size):
            e = self.features(blocks[i : i + batch_size])
            embs.append(e.cpu())
            probs.append(self.head(e).softmax(-1).cpu())
        return torch.cat(embs), torch.cat(probs)

    @torch.no_grad()
    def embed(self, wave, sample_rate: int | None = None) -> torch.Tensor:
        """(B, embed_dim): mean block embedding per clip. wave: (B, C, N) or list of (C, N) at sample_rate."""
        rate = sample_rate or self.sample_rate
        return torch.stack(
            [self.block_outputs(mono_at_rate(c, rate, self.sample_rate))[0].mean(0) for c in as_clips(wave)]
        )

    @torch.no_grad()
    def posteriors(self, wave, sample_rate: int | None = None) -> torch.Tensor:
        """(B, num_classes): mean block posterior per clip."""
        rate = sample_rate or self.sample_rate
        return torch.stack(
            [self.block_outputs(mono_at_rate(c, rate, self.sample_rate))[1].mean(0) for c in as_clips(wave)]
        )


def build_model(cfg: RunConfig, run_dir: Path | None = None) -> AudioClassifier:
    return AudioClassifier(cfg.model, cfg.data.sample_rate, cfg.data.segment_seconds)


# ---------------------------------------------------------------------------------------------------
# evaluation of a trained classifier


@torch.no_grad()
def evaluate_classifier(run_dir, split: str = "test", device: str = "cpu", progress: bool = True) -> dict:
    """Accuracy on the whole files of a split (each file: mean block posterior, then argmax).
    Returns {"accuracy", "num_items", "split", "per_class": {label: {"accuracy", "count"}}, "confusion"}."""
    from tqdm.auto import tqdm

    from arwave.checkpoint import load
    from arwave.data.dataset import dataset_for_split

    model = load(run_dir, device=device)
    if not isinstance(model, AudioClassifier):
        raise ArwaveError(f"{run_dir}: not a classifier run (kind {model.config.kind!r})")
    ds = dataset_for_split(model.config.data, split, random_crop=False)
    if ds.label_names != model.label_names:
        raise ArwaveError(
            f"{run_dir}: the data's labels {ds.label_names} differ from the classifier's {model.label_names}"
        )
    k = model.num_classes
    confusion = torch.zeros(k, k, dtype=torch.long)  # rows: true label, columns: prediction
    for i in tqdm(range(len(ds)), desc=f"classifier [{split}]", unit="file", disable=not progress, leave=False):
        label = ds.labels[i]
        if label < 0:
            continue
        _, probs = model.block_outputs(ds.load_file(i).mean(0))
        confusion[label, int(probs.mean(0).argmax())] += 1
    total = int(confusion.sum())
    if total == 0:
        raise ArwaveError(f"{run_dir}: split {split!r} has no labelled files")
    per_class = {
        name: {
            "accuracy": float(confusion[c, c] / confusion[c].sum()) if confusion[c].sum() else None,
            "count": int(confusion[c].sum()),
        }
        for c, name in enumerate(model.label_names)
    }
    return {
        "accuracy": float(confusion.diag().sum() / total),
        "num_items": total,
        "split": split,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "labels": model.label_names,
    }
