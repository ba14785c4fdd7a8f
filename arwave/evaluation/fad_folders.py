"""FAD between two folders of audio (`arwave eval fad REFERENCE_DIR EVAL_DIR`), per-file scores and FAD∞.

* **FAD**: as everywhere in arwave (fad.py): Gaussian fits of the pooled frame embeddings of each folder.
  The reference folder's statistics are cached (fad.py's stats cache, keyed by the embedder and the
  folder's file paths, sizes and modification times), so scoring many eval folders against one
  reference embeds it once; any change to its files makes a new key.
* **Per-file scores** (as fadtk's per-song FAD): the frames of one eval file, fitted alone, against the
  reference statistics. A file with a single frame gets covariance 0 (a point mass). Comparable only
  between files of similar length (fewer frames, more bias), useful to find outliers.
* **FAD∞** (Chong & Forsyth 2020, "Effectively unbiased FID"; used for audio by Gui et al. 2024,
  fadtk): FAD depends on the number of eval frames N, with a bias that falls roughly as 1/N. FAD is
  computed on random subsets of N_i frames (N_i evenly spaced from N/5 to N), a line is fitted to
  FAD against 1/N_i, and its intercept at 1/N = 0 is FAD∞, the value for an infinite set.

Speed: all three use `ReferenceFrechet`, which takes the square root of the reference covariance once;
tr((S_x S_r)^(1/2)) of a set of n frames X is then the sum of the singular values of
(X − mean) S_r^(1/2) / sqrt(n − 1), an n × D matrix: cheap for the few frames of one file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from arwave.evaluation.embedders import Embedder
from arwave.evaluation.embedders.by_name import get_embedder
from arwave.evaluation.fad import (
    FADError,
    GaussianStats,
    StatsAccumulator,
    audio_source,
    fad_from_stats,
    list_audio_files,
    reference_summary,
    sqrtm_psd,
    stats_cache_path,
)


class ReferenceFrechet:
    """Fréchet distance from sets of frames to fixed reference statistics (mu_r, S_r)."""

    def __init__(self, ref: GaussianStats):
        self.mu = ref.mu.to(torch.float64)
        self.root = sqrtm_psd(ref.sigma.to(torch.float64))  # S_r^(1/2), once
        self.trace = float(ref.sigma.to(torch.float64).trace())

    def __call__(self, frames: torch.Tensor) -> float:
        """FAD of the Gaussian fit (unbiased covariance; 0 for one frame) of `frames` (n, D)."""
        x = frames.to(torch.float64)
        if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] != self.mu.shape[0]:
            raise FADError(
                f"frames of shape {tuple(x.shape)} do not match reference statistics of size {self.mu.shape[0]}"
            )
        mu = x.mean(0)
        d = float(((mu - self.mu) ** 2).sum()) + self.trace
        n = x.shape[0]
        if n > 1:
            xc = (x - mu) / math.sqrt(n - 1)  # S_x = xc^T xc
            d += float((xc * xc).sum()) - 2 * float(torch.linalg.svdvals(xc @ self.root).sum())
        return max(d, 0.0)


@dataclass
class FileFrames:
    name: str  # path relative to the folder
    frames: torch.Tensor  # (F, D)


def embed_folder(emb: Embedder, folder: str | Path, batch_clips: int = 16, progress: bool = True) -> list[FileFrames]:
    """Frame embeddings of every audio file of a folder (sorted by path), each file at its own rate."""
    import soundfile
    from tqdm.auto import tqdm

    from arwave.data.audio import load_audio

    folder = Path(folder)
    files = list_audio_files(folder)
    out: list[FileFrames] = []
    with tqdm(total=len(files), desc=f"eval [{emb.name}]", unit="file", disable=not progress, leave=False) as bar:
        for i in range(0, len(files), batch_clips):
            by_rate: dict[int, list[Path]] = {}
            for f in files[i : i + batch_clips]:
                by_rate.setdefault(int(soundfile.info(str(f)).samplerate), []).append(f)
            done = {}
            for rate, group in by_rate.items():
                feats = emb.features([load_audio(f, sample_rate=rate) for f in group], rate)
                for j, f in enumerate(group):
                    done[f] = feats.frames[feats.clip_index == j]
            out += [FileFrames(str(f.relative_to(folder)), done[f]) for f in files[i : i + batch_clips]]
            bar.update(len(files[i : i + batch_clips]))
    return out


def fad_inf(
    frames: torch.Tensor, score: ReferenceFrechet, steps: int = 20, min_frames: int | None = None, seed: int = 0
) -> dict:
    """FAD∞: FAD on random subsets of n_i frames (n_i evenly spaced in [min_frames, N]; default N/5),
    least-squares line through (1/n_i, FAD_i), its intercept. Returns {"fad_inf", "slope", "r2", "points"}."""
    n_all = frames.shape[0]
    lo = max(2, n_all // 5) if min_frames is None else int(min_frames)
    if n_all < 10 or lo >= n_all:
        raise FADError(
            f"FAD∞ needs at least 10 eval frames and subsets of different sizes (got {n_all} frames); "
            "use more or longer eval files"
        )
    sizes = sorted({int(round(n)) for n in np.linspace(lo, n_all, steps)})
    g = torch.Generator().manual_seed(seed)
    points = []
    for n in sizes:
        pick = torch.randperm(n_all, generator=g)[:n]
        points.append((n, score(frames[pick])))
    x = np.array([1.0 / n for n, _ in points])
    y = np.array([v for _, v in points])
    slope, intercept = np.polyfit(x, y, 1)
    fit = intercept + slope * x
    ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(((y - fit) ** 2).sum()) / ss if ss > 0 else 1.0
    return {
        "fad_inf": float(intercept),
        "slope": float(slope),
        "r2": r2,
        "points": [{"frames": n, "fad": v} for n, v in points],
    }


def fad_folders(
    reference: str | Path,
    evaluated: str | Path,
    embedder: Embedder | str = "aisfx",
    per_file: bool = False,
    inf: bool = False,
    cache: bool = True,
    progress: bool = True,
    inf_steps: int = 20,
    seed: int = 0,
) -> dict:
    """FAD of the audio files of `evaluated` against those of `reference` (see the module docstring).

    Returns {"fad", "embedder", "reference", "eval", "num_reference_files", "num_eval_files",
    "num_reference_frames", "num_eval_frames", "reference_cache": "hit" | "written" | "off",
    ["per_file": [{"file", "fad", "frames"}]], ["fad_inf", "fad_inf_fit"]}."""
    for folder in (reference, evaluated):
        if not Path(folder).is_dir():
            raise FADError(f"{folder}: not a folder")
    emb = get_embedder(embedder)
    source = audio_source(Path(reference))
    cache_file = stats_cache_path(emb, source.key) if cache and source.key else None
    state = "off" if cache_file is None else ("hit" if cache_file.is_file() else "written")
    ref = reference_summary(emb, source, cache=cache, progress=progress)
    files = embed_folder(emb, evaluated, progress=progress)
    frames = torch.cat([f.frames for f in files])
    acc = StatsAccumulator(emb.dim)
    acc.add(frames)
    score = ReferenceFrechet(ref.stats)
    out = {
        "fad": fad_from_stats(acc.stats(), ref.stats),
        "embedder": emb.name,
        "reference": str(reference),
        "eval": str(evaluated),
        "num_reference_files": ref.num_clips or source.num_clips,
        "num_eval_files": len(files),
        "num_reference_frames": ref.stats.n,
        "num_eval_frames": int(frames.shape[0]),
        "reference_cache": state,
    }
    if per_file:
        out["per_file"] = [
            {
                "file": f.name,
                "fad": score(f.frames) if len(f.frames) else float("nan"),
                "frames": int(f.frames.shape[0]),
            }
            for f in files
        ]
    if inf:
        fit = fad_inf(frames, score, steps=inf_steps, seed=seed)
        out["fad_inf"] = fit.pop("fad_inf")
        out["fad_inf_fit"] = fit
    return out


def write_per_file_csv(rows: list[dict], path: str | Path) -> Path:
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "fad", "frames"])
        w.writeheader()
        for r in rows:
            w.writerow({"file": r["file"], "fad": f"{r['fad']:.6f}", "frames": r["frames"]})
    return path
