"""The condition vector of AAR and of the next-token baseline: a class label, an embedding, or nothing.

- "class": a learned table with one row per class plus a last row for the null condition (VAR).
- "embedding": a bias-free MLP(E → width → width) over a clip embedding (AAR uses CLAP's 512-d
  audio embedding); the null condition is a FIXED random vector (a buffer, ~unit norm, saved in the
  checkpoint but not learned), as in AAR.
- "none": only the null row exists, so every sample is unconditional and guidance has no effect.

Training drops the condition to null with probability `cond_drop` (classifier-free guidance).
Labels < 0 (files without a label) always map to null.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from arwave.errors import ArwaveError

COND_KINDS = ("class", "embedding", "none")


class ConditionEmbedding(nn.Module):
    def __init__(self, kind: str, width: int, num_classes: int = 0, embed_dim: int = 512):
        super().__init__()
        if kind not in COND_KINDS:
            raise ArwaveError(f"cond={kind!r}: expected one of {', '.join(COND_KINDS)}")
        self.kind, self.width, self.embed_dim = kind, width, embed_dim
        if kind == "embedding":
            self.mlp = nn.Sequential(
                nn.Linear(embed_dim, width, bias=False),
                nn.GELU(approximate="tanh"),
                nn.Linear(width, width, bias=False),
            )
            g = torch.Generator().manual_seed(0)
            self.register_buffer("null_vector", torch.randn(embed_dim, generator=g) / math.sqrt(embed_dim))
        else:
            self.num_classes = num_classes if kind == "class" else 0
            self.table = nn.Embedding(self.num_classes + 1, width)  # last row: null condition

    @property
    def conditional(self) -> bool:
        return self.kind != "none"

    def forward(
        self,
        batch: int,
        labels: torch.Tensor | None = None,
        embeddings: torch.Tensor | None = None,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(batch, width) condition vectors; `drop` (batch,) bool replaces the condition by null."""
        if self.kind == "embedding":
            null = self.null_vector.expand(batch, -1)
            if embeddings is None:
                e = null
            else:
                e = embeddings.to(null.dtype).reshape(batch, -1)
                if e.shape[1] != self.embed_dim:
                    raise ArwaveError(f"condition embedding has {e.shape[1]} dims, the model expects {self.embed_dim}")
                if drop is not None:
                    e = torch.where(drop[:, None], null, e)
            return self.mlp(e)
        null_row = self.table.num_embeddings - 1
        device = self.table.weight.device
        if labels is None or self.kind == "none":
            idx = torch.full((batch,), null_row, dtype=torch.long, device=device)
        else:
            idx = labels.to(device=device, dtype=torch.long).reshape(batch).clone()
            idx[(idx < 0) | (idx >= null_row)] = null_row
            if drop is not None:
                idx[drop] = null_row
        return self.table(idx)

    def null(self, batch: int) -> torch.Tensor:
        return self.forward(batch)

    def random_drop(self, batch: int, prob: float, device) -> torch.Tensor | None:
        """Bernoulli(prob) mask of samples whose condition is dropped in training (global torch RNG,
        which the training loop seeds per step)."""
        if prob <= 0 or not self.conditional:
            return None
        return torch.rand(batch, device=device) < prob
