"""Manifests: a JSONL index of audio files, one JSON object per line:

    {"path": "/abs/file.flac", "duration": 12.5, "sample_rate": 48000, "channels": 2,
     "label": "violin", "split": "train", ...}

`label` is optional; extra keys (the corpus adds piece, instrument, ...) are kept and ignored.
`prepare_folder` builds one from any folder of audio. Splits are deterministic by *group*: every
file with the same group key (by default the file's stem; the corpus uses the piece id) lands in the
same split, so the same recording (or piece) is never in two splits.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from arwave.console import bars
from arwave.data.audio import AUDIO_EXTENSIONS, AudioError, check_audio
from arwave.errors import ArwaveError
from arwave.paths import replacing

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
MANIFEST_NAME = "manifest.jsonl"
LABELS_NAME = "labels.csv"


# ---------------------------------------------------------------------------------------------------
# splits


def group_hash(key: str) -> float:
    """A stable number in [0, 1) for a group key (sha1, so it is the same on every machine/run)."""
    digest = hashlib.sha1(f"arwave-split:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(key: str, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """The hash rule alone: u = group_hash(key); train if u < f_train, val if u < f_train + f_val,
    else test (fractions normalised to sum 1)."""
    total = float(sum(fractions))
    u = group_hash(key)
    return (
        SPLITS[0] if u < fractions[0] / total else SPLITS[1] if u < (fractions[0] + fractions[1]) / total else SPLITS[2]
    )


def assign_splits(keys: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[str]:
    """Split name for each of `keys` (group keys; equal keys get equal splits).

    Rule: u = group_hash(key); train if u < f_train, val if u < f_train + f_val, else test. A group's
    split thus never changes when groups are added or removed. Small sets where that rule leaves a
    split with a positive fraction empty fall back to ranking the groups by u and cutting the ranking
    at the fractions, each such split getting at least one group while there are enough (train first)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ArwaveError(
            f"split fractions must be three non-negative numbers (train, val, test), got {list(fractions)}"
        )
    total = float(sum(fractions))
    groups = sorted(set(keys), key=lambda k: (group_hash(k), k))
    by_hash = {g: split_of(g, fractions) for g in groups}
    wanted = [s for s, f in zip(SPLITS, fractions) if f > 0]
    if not set(wanted) <= set(by_hash.values()):
        by_hash = dict(zip(groups, _rank_split(len(groups), [f / total for f in fractions])))
    return [by_hash[k] for k in keys]


def _rank_split(n: int, fractions: Sequence[float]) -> list[str]:
    """n groups ranked by hash -> split names: one group for each positive split first (train, then
    val, then test, while groups last), the rest by largest shortfall against fractions * n."""
    counts = [0, 0, 0]
    for i, f in enumerate(fractions):
        if f > 0 and sum(counts) < n:
            counts[i] = 1
    while sum(counts) < n:
        i = max(range(3), key=lambda j: fractions[j] * n - counts[j])
        counts[i] += 1
    return [s for s, c in zip(SPLITS, counts) for _ in range(c)]


# ---------------------------------------------------------------------------------------------------
# reading and writing


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a manifest. Relative paths are resolved against the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise ArwaveError(f"{path}: no such manifest")
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ArwaveError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict) or "path" not in row:
                raise ArwaveError(f"{path}:{number}: each line must be a JSON object with a 'path'")
            p = Path(row["path"]).expanduser()
            row["path"] = str(p if p.is_absolute() else (path.parent / p).resolve())
            rows.append(row)
    return rows


def write_manifest(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write rows as JSONL, atomically (temp file + rename)."""
    path = Path(path)
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(dict(row), ensure_ascii=False) + "\n")
    return path


def ensure_splits(rows: list[dict[str, Any]], fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[dict[str, Any]]:
    """Give rows without a 'split' one (group key = file stem), e.g. for hand-written manifests."""
    missing = [r for r in rows if r.get("split") not in SPLITS]
    if missing:
        for row, split in zip(missing, assign_splits([Path(r["path"]).stem for r in missing], fractions)):
            row["split"] = split
    return rows


# ---------------------------------------------------------------------------------------------------
# indexing a folder


@dataclass
class PrepareReport:
    manifest: Path
    indexed: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0  # total indexed audio
    labels: list[str] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)  # files per split

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest),
            "indexed": self.indexed,
            "skipped": len(self.skipped),
            "skipped_files": [{"path": p, "reason": r} for p, r in self.skipped],
            "seconds": round(self.seconds, 3),
            "labels": self.labels,
            "splits": self.splits,
        }


def find_audio_files(folder: Path) -> list[Path]:
    """Audio files under `folder`, recursively, sorted; hidden files and folders are ignored."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXTENSIONS]
    return sorted(found)


def read_labels_csv(path: Path, folder: Path) -> dict[str, str]:
    """labels.csv rows `path,label` (header optional; paths relative to `folder` or absolute)
    -> {absolute path: label}."""
    labels = {}
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), 1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            if len(row) < 2:
                raise ArwaveError(f"{path}:{number}: expected 'path,label'")
            file, label = row[0].strip(), row[1].strip()
            if number == 1 and (file.lower(), label.lower()) == ("path", "label"):
                continue
            labels[_absolute(file, folder)] = label
    return labels


def _absolute(path: str | os.PathLike, folder: Path) -> str:
    p = Path(path).expanduser()
    return str((p if p.is_absolute() else folder / p).resolve())


def _folder_label(file: Path, folder: Path) -> str | None:
    parts = file.relative_to(folder).parts
    return parts[0] if len(parts) > 1 else None


def prepare_folder(
    folder: str | os.PathLike,
    out: str | os.PathLike | None = None,
    labels: str | os.PathLike | Mapping[str, str] | None = None,
    min_seconds: float = 0.1,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    group_key: Callable[[Path], str] | None = None,
    progress: bool = True,
) -> PrepareReport:
    """Index every audio file under `folder` into a manifest (default `folder/manifest.jsonl`).

    Each file is decoded completely; files that cannot be decoded, are empty, shorter than
    `min_seconds`, hold NaN/inf or are silent are skipped and listed with the reason (never an error).
    Any decodable file is indexed whatever its rate or channel count: datasets resample and convert.

    Labels: `labels` (a CSV path or a {path: label} mapping), else `folder/labels.csv` if present,
    else the name of the top-level sub-folder a file is in (files directly in `folder`: no label).
    Split: `assign_splits` over group_key(file) (default: the file's stem)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        from arwave.paths import missing_reason

        reason = missing_reason(folder)
        raise ArwaveError(
            f"{folder}: not a folder"
            if folder.exists()
            else f"{folder}: {'no such folder' if reason.startswith('no such') else reason}"
        )
    folder = folder.resolve()
    out = Path(out).expanduser().resolve() if out else folder / MANIFEST_NAME
    if labels is None and (folder / LABELS_NAME).is_file():
        labels = folder / LABELS_NAME
    label_of: dict[str, str] | None = None
    if isinstance(labels, Mapping):
        label_of = {_absolute(k, folder): str(v) for k, v in labels.items()}
    elif labels is not None:
        labels_path = Path(labels).expanduser()
        if not labels_path.is_file():
            raise ArwaveError(f"{labels_path}: no such labels file")
        label_of = read_labels_csv(labels_path, folder)

    rows, skipped = [], []
    files = find_audio_files(folder)
    for file in tqdm(files, desc="indexing", unit="file", disable=not bars(progress), leave=False):
        try:
            info = check_audio(file, min_seconds=min_seconds)
        except AudioError as err:
            skipped.append((str(file), str(err).split(": ", 1)[-1]))
            continue
        row: dict[str, Any] = {
            "path": str(file),
            "duration": round(info["duration"], 6),
            "sample_rate": info["sample_rate"],
            "channels": info["channels"],
        }
        label = label_of.get(str(file)) if label_of is not None else _folder_label(file, folder)
        if label:
            row["label"] = label
        rows.append(row)

    keys = [group_key(Path(r["path"])) if group_key else Path(r["path"]).stem for r in rows]
    for row, split in zip(rows, assign_splits(keys, fractions)):
        row["split"] = split
    write_manifest(out, rows)
    return PrepareReport(
        manifest=out,
        indexed=len(rows),
        skipped=skipped,
        seconds=sum(r["duration"] for r in rows),
        labels=sorted({r["label"] for r in rows if "label" in r}),
        splits={s: sum(r["split"] == s for r in rows) for s in SPLITS},
    )
