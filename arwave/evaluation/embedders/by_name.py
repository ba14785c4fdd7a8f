"""Embedders by name (`--embedder NAME`): the one place that knows every embedder module."""

from __future__ import annotations

import torch

from arwave.evaluation.embedders import Embedder, EmbedderError

EMBEDDER_NAMES = ("aisfx", "classifier:RUN_DIR", "vggish", "panns", "clap")


def get_embedder(name: str | Embedder, device: str | torch.device | None = "cpu", **kw) -> Embedder:
    """Build an embedder by name (see the module docstring). An Embedder instance is returned as is.

    `classifier:RUN_DIR` or `classifier` with `run=RUN_DIR`; adapters take `weights=PATH`.
    """
    if isinstance(name, Embedder):
        return name
    base, _, arg = str(name).partition(":")
    if base == "aisfx":
        from arwave.evaluation.embedders.aisfx import AisfxEmbedder

        return AisfxEmbedder(device=device, **kw)
    if base == "classifier":
        from arwave.evaluation.embedders.classifier import ClassifierEmbedder

        run = arg or kw.pop("run", None)
        if not run:
            raise EmbedderError(
                "embedder 'classifier' needs a run folder: use 'classifier:RUN_DIR' "
                "(a run trained with `arwave train classifier`)"
            )
        return ClassifierEmbedder(run, device=device, **kw)
    if base in ("vggish", "panns", "clap"):
        from arwave.evaluation.embedders import adapters

        weights = arg or kw.pop("weights", None)
        return adapters.build(base, weights, device=device, **kw)
    raise EmbedderError(f"unknown embedder {name!r} (known: {', '.join(EMBEDDER_NAMES)})")
