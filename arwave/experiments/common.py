"""Pieces shared by `arwave demo` and the paper experiments: train-or-reuse a run, write examples."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

from arwave import checkpoint as ckpt
from arwave.config import apply_overrides
from arwave.registry import preset


def log(msg: str) -> None:
    tqdm.write(f"[arwave] {msg}")


def train_or_reuse(
    kind: str,
    preset_name: str,
    run_dir: Path,
    minutes: float,
    overrides: list[str] = (),
    data_overrides: list[str] = (),
    progress: bool = True,
) -> Path:
    """Train `kind` for a wall-clock budget into `run_dir`, or reuse it if it already holds a checkpoint
    (so a demo or experiment that was interrupted, or run twice, does not train twice)."""
    run_dir = Path(run_dir)
    if ckpt.latest_checkpoint(run_dir) is not None:
        log(f"{kind}: reusing {run_dir}")
        return run_dir
    from arwave.training.loop import train

    cfg = preset(kind, preset_name)
    apply_overrides(cfg, [f"train.minutes={minutes}", "train.max_steps=1000000000", *data_overrides, *overrides])
    log(
        f"{kind} ({preset_name}{', ' + ' '.join(overrides) if overrides else ''}): training for {minutes:.2f} min -> "
        f"{run_dir}"
    )
    t0 = time.time()
    train(cfg, run_dir, progress=progress)
    log(f"{kind}: done in {(time.time() - t0) / 60:.2f} min")
    return run_dir


def final_metrics(run_dir: Path) -> dict:
    """Last logged train/val values of a run (from metrics.csv) and its step count."""
    from arwave.training.logger import read_metrics

    rows = read_metrics(Path(run_dir) / "metrics.csv")
    out: dict = {}
    for r in rows:
        out[f"{r['split']}_{r['name']}"] = r["value"]
        out["steps"] = max(out.get("steps", 0), r["step"])
    return out


def write_examples(
    waves: torch.Tensor,
    sample_rate: int,
    folder: Path,
    stem: str,
    labels: list[str] | None = None,
    spectrograms: bool = True,
) -> list[tuple[str, str, str | None]]:
    """Write clips as WAV (+ spectrogram PNG); returns (label, wav path, png path) relative to `folder.parent`."""
    from arwave.data.audio import write_audio
    from arwave.experiments.report import save_spectrogram

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, w in enumerate(waves):
        label = labels[i] if labels else f"{stem} {i}"
        wav = folder / f"{stem}-{i}.wav"
        write_audio(wav, w, sample_rate)
        png = None
        if spectrograms:
            png = save_spectrogram(w, sample_rate, folder / f"{stem}-{i}.png", title=label)
            png = str(png.relative_to(folder.parent))
        out.append((label, str(wav.relative_to(folder.parent)), png))
    return out
