"""One call for the generation metrics of `arwave eval gen`: FAD, ISc and KL, each keyed by the
embedder that produced it (numbers from different embedders are not comparable)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from arwave.errors import ArwaveError
from arwave.evaluation.embedders.by_name import get_embedder
from arwave.evaluation.fad import audio_source, fad_from_stats, reference_summary, summarize
from arwave.evaluation.scores import inception_score, kl_divergence, kl_marginal


def evaluate_generated(
    generated,
    reference,
    embedder="aisfx",
    classifier_run=None,
    sample_rate: int | None = None,
    reference_sample_rate: int | None = None,
    paired: bool = False,
    cache: bool = True,
    progress: bool = True,
    device="cpu",
    split: str = "test",
) -> dict:
    """generated / reference: (B, C, N) tensors or lists of (C, N) clips (with their sample rates), a folder
    of audio files (sorted by path), a manifest.jsonl (its `split`, whole files) or a Dataset.
    `embedder`: a name or a list of names (see `arwave.evaluation.embedders`); `classifier_run` adds the
    embedder `classifier:RUN`. `paired=True`: generated clip i was made from reference clip i, so KL is
    the paired one; otherwise only `kl_marginal` is reported.

    Returns {"embedders": [...], "fad": {embedder: value}, "isc": {...}, "kl": {...}, "kl_marginal": {...},
    "num_generated": int, "num_reference": int}; ISc/KL only for embedders with class posteriors.
    """
    names = [embedder] if isinstance(embedder, str) or not hasattr(embedder, "__iter__") else list(embedder)
    if classifier_run:
        names.append(f"classifier:{classifier_run}")
    gen_src = audio_source(generated, sample_rate, split=split)
    ref_src = audio_source(reference, reference_sample_rate or sample_rate, split=split)
    out = {
        "embedders": [],
        "fad": {},
        "isc": {},
        "kl": {},
        "kl_marginal": {},
        "num_generated": gen_src.num_clips,
        "num_reference": ref_src.num_clips,
    }
    for name in names:
        emb = get_embedder(name, device=device)
        gen = summarize(emb, gen_src, progress=progress, desc="generated")
        ref = reference_summary(emb, ref_src, cache=cache, progress=progress)
        label = emb.name
        out["embedders"].append(label)
        out["fad"][label] = fad_from_stats(gen.stats, ref.stats)
        if gen.posteriors is not None and ref.posteriors is not None:
            out["isc"][label] = inception_score(gen.posteriors)
            out["kl_marginal"][label] = kl_marginal(ref.posteriors, gen.posteriors)
            if paired:
                out["kl"][label] = kl_divergence(ref.posteriors, gen.posteriors)
    for key in ("isc", "kl", "kl_marginal"):
        if not out[key]:
            del out[key]
    return out


def generate_clips(model, num: int, seconds: float, batch: int, seed: int, **sampling) -> torch.Tensor:
    """(num, C, N) clips generated `batch` at a time (bounded memory); the batch that starts at clip i is
    seeded with seed + i."""
    clips = []
    for i in range(0, num, batch):
        clips.append(model.generate(seconds, num=min(batch, num - i), seed=seed + i, **sampling))
    return torch.cat(clips)


def reference_dataset(model, split: str, seconds: float, manifest: str | None = None):
    """Fixed crops of `seconds` from the reference split (the model's training data, or `manifest`), at the
    model's rate and channels."""
    from arwave.data.dataset import dataset_for_split

    data = replace(model.config.data, sample_rate=model.sample_rate, channels=model.channels)
    if manifest:
        data.manifest = str(Path(manifest).resolve())
    ds = dataset_for_split(
        data, split, segment_samples=round(seconds * model.sample_rate), random_crop=False, tiled=True
    )
    if len(ds) == 0:
        raise ArwaveError(f"reference split {split!r} is empty")
    return ds
