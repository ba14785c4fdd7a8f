"""Fixed-length crops of the files of one manifest split, at the model's sample rate and channels.

Items are fetched as `ds[(index, seed)]`: the crop position depends only on `seed`, so a resumed or
distributed run sees exactly the same data. Decoded + resampled files are kept in an in-memory LRU
cache (the built-in corpus fits), because soxr-resampling 48 kHz stereo on every access dominates
the cost of a batch otherwise.
"""

from __future__ import annotations

import random
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from arwave.data.audio import AudioError, load_audio
from arwave.data.manifest import SPLITS, ensure_splits, read_manifest
from arwave.errors import ArwaveError, ArwaveWarning


class AudioCropDataset(Dataset):
    """Crops of `segment_samples` frames from the files of `split` ("train", "val", "test", or
    None for every file) of `manifest` (a path or a list of rows).

    item = {"audio": (channels, segment_samples) float32, "label": int (-1: no label), "index": int}
    - random_crop=True: start = random.Random(seed).randrange(L - segment_samples + 1).
    - random_crop=False: the centre crop (start = (L - segment_samples) // 2), same for every seed.
    - files shorter than the segment are zero-padded at the end.
    - label ids index `label_names`, the sorted labels of the WHOLE manifest, so they agree across splits;
      a given `label_names` fixes that list instead (a fine-tuned model keeps its classes): labels
      outside it count as unlabelled (-1).
    - a file that fails to load at run time (deleted, corrupted since indexing) is reported once and
      replaced by the next good file, so one bad file never stops an epoch.
    """

    def __init__(
        self,
        manifest: str | Path | list[dict[str, Any]],
        split: str | None,
        sample_rate: int,
        channels: int,
        segment_samples: int,
        random_crop: bool,
        label_key: str = "label",
        cache_mb: float = 512.0,
        label_names: list[str] | None = None,
    ):
        rows = read_manifest(manifest) if isinstance(manifest, (str, Path)) else [dict(r) for r in manifest]
        ensure_splits(rows)
        if split is not None and split not in SPLITS:
            raise ArwaveError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
        if segment_samples < 1:
            raise ArwaveError(f"segment_samples must be >= 1, got {segment_samples}")
        self.source = str(manifest) if isinstance(manifest, (str, Path)) else "<rows>"
        self.split = split
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.segment_samples = int(segment_samples)
        self.random_crop = bool(random_crop)
        self.label_key = label_key
        found = sorted({str(r[label_key]) for r in rows if r.get(label_key) not in (None, "")})
        self.label_names: list[str] = list(label_names) if label_names else found
        ids = {name: i for i, name in enumerate(self.label_names)}
        self.rows = [r for r in rows if split is None or r["split"] == split]
        self.file_paths: list[str] = [r["path"] for r in self.rows]
        self.labels: list[int] = [
            ids.get(str(r.get(label_key)), -1) if r.get(label_key) not in (None, "") else -1 for r in self.rows
        ]
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cached_bytes = 0
        self._bad: set[int] = set()

    @property
    def crop_mode(self) -> str:
        """How items are cut from files: "random" or "centre" (TiledDataset: "tiled"); part of the FAD
        reference-statistics cache key."""
        return "random" if self.random_crop else "centre"

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def seconds(self) -> float:
        """Total duration of the split's files (from the manifest)."""
        return float(sum(r.get("duration", 0.0) for r in self.rows))

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return (
            f"AudioCropDataset({self.source!r}, split={self.split!r}, files={len(self)}, "
            f"{self.sample_rate} Hz, {self.channels} ch, segment={self.segment_samples}, "
            f"random_crop={self.random_crop}, classes={self.num_classes})"
        )

    # -- full files (evaluation) --------------------------------------------------------------------

    def load_file(self, index: int) -> torch.Tensor:
        """The whole file `index` at the dataset's rate and channels, (channels, samples) float32.
        The returned tensor is shared with the cache: do not modify it in place."""
        if not 0 <= index < len(self.rows):
            raise IndexError(f"file index {index} out of range for {len(self.rows)} files")
        wave = self._cache.get(index)
        if wave is not None:
            self._cache.move_to_end(index)
            return wave
        wave = load_audio(self.file_paths[index], self.sample_rate, self.channels)
        self._remember(index, wave)
        return wave

    def _remember(self, index: int, wave: torch.Tensor) -> None:
        size = wave.numel() * wave.element_size()
        if size > self.cache_bytes:
            return
        self._cache[index] = wave
        self._cached_bytes += size
        while self._cached_bytes > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.numel() * old.element_size()

    # -- crops (training) ---------------------------------------------------------------------------

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Any]:
        """ds[(index, seed)]; a bare int index means seed 0."""
        index, seed = key if isinstance(key, tuple) else (key, 0)
        index = int(index)
        if not 0 <= index < len(self.rows):
            raise IndexError(f"index {index} out of range for {len(self.rows)} files")
        wave, used = self._load_good(index)
        return {"audio": self.crop(wave, seed), "label": self.labels[used], "index": used}

    def crop(self, wave: torch.Tensor, seed: int) -> torch.Tensor:
        """(C, L) -> (C, segment_samples): random or centre crop, zero-padded at the end if short."""
        length, segment = wave.shape[-1], self.segment_samples
        if length <= segment:
            out = wave.new_zeros(wave.shape[0], segment)
            out[:, :length] = wave
            return out
        if self.random_crop:
            start = random.Random(seed).randrange(length - segment + 1)
        else:
            start = (length - segment) // 2
        return wave[:, start : start + segment].clone()

    def _load_good(self, index: int) -> tuple[torch.Tensor, int]:
        for step in range(len(self.rows)):
            i = (index + step) % len(self.rows)
            if i in self._bad:
                continue
            try:
                return self.load_file(i), i
            except AudioError as err:
                self._bad.add(i)
                warnings.warn(
                    f"skipping unusable file (serving the next one instead): {err}", ArwaveWarning, stacklevel=3
                )
        raise ArwaveError(f"{self.source}: no file of split {self.split!r} can be loaded")

    # -- pickling for DataLoader worker processes: the cache stays behind --------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"], state["_cached_bytes"] = OrderedDict(), 0
        return state


class TiledDataset(Dataset):
    """Every consecutive, non-overlapping segment of every file of a split (at least one per file):
    evaluation over whole files rather than one centre crop each. Items as AudioCropDataset's."""

    def __init__(self, base: AudioCropDataset):
        self.base = base
        self.source, self.split, self.label_names = base.source, base.split, base.label_names
        self.sample_rate, self.channels, self.segment_samples = base.sample_rate, base.channels, base.segment_samples
        self.crop_mode = "tiled"
        seg = base.segment_samples
        self.items = [
            (f, k)
            for f, row in enumerate(base.rows)
            for k in range(max(1, int(float(row.get("duration", 0.0)) * base.sample_rate) // seg))
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Any]:
        index = key[0] if isinstance(key, tuple) else key
        f, k = self.items[int(index)]
        wave, used = self.base._load_good(f)
        seg = self.segment_samples
        piece = wave[:, k * seg : (k + 1) * seg]
        out = wave.new_zeros(wave.shape[0], seg)
        out[:, : piece.shape[-1]] = piece
        return {"audio": out, "label": self.base.labels[used], "index": used}


# ---------------------------------------------------------------------------------------------------
# from a DataConfig


def _manifest_for(data_cfg) -> Path:
    if data_cfg.manifest:
        return Path(data_cfg.manifest).expanduser()
    from arwave.data.corpus import ensure_corpus

    return ensure_corpus(data_cfg)


def _segment(data_cfg, segment_samples: int | None) -> int:
    return int(segment_samples) if segment_samples else round(data_cfg.segment_seconds * data_cfg.sample_rate)


def dataset_for_split(
    data_cfg,
    split: str | None,
    segment_samples: int | None = None,
    random_crop: bool = False,
    cache_mb: float = 512.0,
    tiled: bool = False,
):
    """One split of `data_cfg.manifest` (the built-in corpus when it is ""), at the config's rate and
    channels; segment_samples defaults to round(segment_seconds * sample_rate). `tiled`: every
    consecutive segment of every file (TiledDataset) instead of one crop per file."""
    ds = AudioCropDataset(
        _manifest_for(data_cfg),
        split,
        data_cfg.sample_rate,
        data_cfg.channels,
        _segment(data_cfg, segment_samples),
        random_crop,
        data_cfg.label_key,
        cache_mb,
        data_cfg.label_names,
    )
    return TiledDataset(ds) if tiled else ds


def datasets_from_config(
    data_cfg, segment_samples: int | None = None
) -> tuple[AudioCropDataset, AudioCropDataset | None]:
    """(train set with random crops, val set with centre crops or None if the manifest has no val files)."""
    manifest = _manifest_for(data_cfg)
    segment = _segment(data_cfg, segment_samples)
    train, val = (
        AudioCropDataset(
            manifest,
            split,
            data_cfg.sample_rate,
            data_cfg.channels,
            segment,
            random_crop,
            data_cfg.label_key,
            label_names=data_cfg.label_names,
        )
        for split, random_crop in (("train", True), ("val", False))
    )
    if len(train) == 0:
        raise ArwaveError(f"{manifest}: no files in split 'train'")
    return train, (val if len(val) else None)
