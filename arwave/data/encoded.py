"""Encode a dataset split through a codec once and cache the result beside the codec run.

AR models train on codec outputs (continuous latents for CAM, token maps for AAR and the next-token
baseline). Encoding is the expensive part, so it happens once per (codec run, manifest, split, encoder
name); later epochs and later runs read `CODEC_RUN/cache/<name>-<split>-<hash>.safetensors`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from arwave.checkpoint import load_tensors, save_tensors
from arwave.console import bars
from arwave.errors import ArwaveWarning


def _fingerprint(files: list[str], extra: dict) -> str:
    h = hashlib.sha1(json.dumps(extra, sort_keys=True).encode())
    for f in files:
        try:
            st = Path(f).stat()
            h.update(f"{f}:{st.st_size}:{int(st.st_mtime)}".encode())
        except OSError:  # vanished since indexing: skipped below, and part of the cache key
            h.update(f"{f}:missing".encode())
    return h.hexdigest()[:12]


def encode_files(
    files: list[str],
    encode: Callable[[torch.Tensor], torch.Tensor],
    cache_dir: str | Path,
    name: str,
    sample_rate: int,
    channels: int,
    extra: dict | None = None,
    progress: bool = True,
    skipped: list[int] | None = None,
) -> list[torch.Tensor]:
    """Return `encode(audio)` for every file (audio (C, N) at `sample_rate`/`channels`), cached.

    `name` identifies the encoder (e.g. "latents", "msrq-codes"); `extra` holds anything else the
    result depends on (codec checkpoint step, window size). Files that vanished or broke since the
    manifest was written are skipped with one warning; their indices are appended to `skipped` (when
    given) so callers can drop their labels too.
    """
    from arwave.data.audio import AudioError, load_audio

    extra = {"sample_rate": sample_rate, "channels": channels, **(extra or {})}
    path = Path(cache_dir) / f"{name}-{_fingerprint(files, extra)}.safetensors"
    if path.is_file():
        from safetensors import safe_open

        tensors = load_tensors(path)
        with safe_open(str(path), framework="pt") as f:
            bad = json.loads((f.metadata() or {}).get("skipped", "[]"))
        if skipped is not None:
            skipped.extend(bad)
        return [tensors[str(i)] for i in range(len(tensors))]
    out: list[torch.Tensor] = []
    bad: list[tuple[int, str]] = []
    for i, f in enumerate(tqdm(files, desc=f"encoding {name}", unit="file", disable=not bars(progress), leave=False)):
        try:
            audio = load_audio(f, sample_rate=sample_rate, channels=channels)
        except AudioError as err:
            bad.append((i, str(err)))
            continue
        with torch.no_grad():
            out.append(encode(audio).detach().cpu().contiguous())
    if bad:
        warnings.warn(
            f"skipped {len(bad)} of {len(files)} file(s) that can no longer be read (first: {bad[0][1]}); "
            "re-run `arwave data prepare` to update the manifest",
            ArwaveWarning,
            stacklevel=2,
        )
    if skipped is not None:
        skipped.extend(i for i, _ in bad)
    save_tensors(path, {str(i): t for i, t in enumerate(out)}, metadata={"skipped": json.dumps([i for i, _ in bad])})
    return out


def drop_skipped(items: Sequence, skipped: Sequence[int]) -> list:
    """`items` (one per manifest file: labels, conditions) without the files `encode_files` skipped, so
    they stay aligned with its output."""
    gone = set(skipped)
    return [x for i, x in enumerate(items) if i not in gone]


@dataclasses.dataclass
class EncodedSplits:
    """What `encode_splits` makes of the data: the two datasets, and the facts about the data that a
    model's config records (its classes, the size of its condition vectors)."""

    train: Dataset | None
    val: Dataset | None
    label_names: list[str]  # sorted labels of the whole manifest (or the fixed `data.label_names`)
    condition_dim: int  # size of one condition vector (0: no conditions)


def encode_splits(
    data,
    encode: Callable[[torch.Tensor], torch.Tensor],
    cache_dir: str | Path,
    name: str,
    extra: dict,
    build: Callable,
    conditions: Callable | None = None,
) -> EncodedSplits:
    """The data side of every AR task (CAM, AAR, next-token): for the train and val splits of `data`
    (a DataConfig), each file encoded once (`encode_files`, cached as `{name}-{split}`), the labels and
    `conditions(files, split, skipped)` of files that could not be read dropped, and
    `build(encoded, labels, conditions, split)` making the split's dataset (None for an empty split)."""
    from arwave.data.dataset import dataset_for_split

    sets: dict[str, Dataset | None] = {}
    label_names: list[str] = []
    condition_dim = 0
    for split in ("train", "val"):
        files = dataset_for_split(data, split, segment_samples=1)
        label_names = list(files.label_names)  # the same for every split
        if not files.file_paths:
            sets[split] = None
            continue
        skipped: list[int] = []  # files that vanished since indexing (encode_files warns once)
        encoded = encode_files(
            files.file_paths,
            encode,
            cache_dir,
            f"{name}-{split}",
            files.sample_rate,
            files.channels,
            extra=extra,
            skipped=skipped,
        )
        conds = conditions(files, split, skipped) if conditions is not None else None
        if conds:
            condition_dim = int(conds[0].numel())
        sets[split] = build(encoded, drop_skipped(files.labels, skipped), conds, split)
    return EncodedSplits(sets["train"], sets["val"], label_names, condition_dim)


def with_labels(model_config, names: list[str]):
    """A class-conditioned model's classes are its training data's labels (a new config)."""
    return dataclasses.replace(model_config, label_names=list(names), num_classes=len(names))


class EncodedCrops(Dataset):
    """Crops of `context` frames from per-file encodings (..., T_f): latents for CAM, codes for the
    next-token baseline. Items are (file, chunk) pairs, T_f // context per file, so an epoch covers the
    data about once; random_crop: start = Random(seed).randrange(T_f − context + 1), else chunk·context.
    Files shorter than `context` are left out (counted in `skipped`). Subclasses format `crop(key)`."""

    def __init__(
        self,
        sequences: list[torch.Tensor],
        labels: list[int],
        context: int,
        random_crop: bool,
        embeddings: list[torch.Tensor] | None = None,
    ):
        keep = [i for i, z in enumerate(sequences) if z.shape[-1] >= context]
        self.sequences = [sequences[i] for i in keep]
        self.labels = [labels[i] for i in keep]
        self.embeddings = [embeddings[i] for i in keep] if embeddings is not None else None
        self.context, self.random_crop = context, random_crop
        self.items = [(f, j) for f, z in enumerate(self.sequences) for j in range(z.shape[-1] // context)]
        self.skipped = len(sequences) - len(keep)

    def __len__(self) -> int:
        return len(self.items)

    def crop(self, key) -> tuple[int, torch.Tensor]:
        """(file index, the (..., context) crop) for `key` = (index, seed) or a bare index."""
        index, seed = key if isinstance(key, tuple) else (key, 0)
        f, j = self.items[index]
        z = self.sequences[f]
        start = random.Random(seed).randrange(z.shape[-1] - self.context + 1) if self.random_crop else j * self.context
        return f, z[..., start : start + self.context]
