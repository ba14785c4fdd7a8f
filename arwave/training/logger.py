"""Training metrics: a long-format CSV (step, split, name, value) that survives changing sets of
logged names (e.g. adversarial losses that start after warm-up), a PNG of the curves, and TensorBoard
event files (RUN/tensorboard/: the same scalars, plus audio samples and their spectrograms)."""

from __future__ import annotations

import csv
import math
import warnings
from collections import defaultdict
from pathlib import Path

from arwave.errors import ArwaveWarning
from arwave.paths import atomic_write_text, replacing

HEADER = ["step", "split", "name", "value"]


class MetricsLog:
    def __init__(self, run_dir: str | Path, resume_step: int | None = None, tensorboard: bool = False):
        self.path = Path(run_dir) / "metrics.csv"
        self.tb = TensorBoard(Path(run_dir) / TENSORBOARD, resume_step) if tensorboard else None
        if resume_step is not None and self.path.is_file():
            # drop what was logged after the checkpoint we resume from, so the curves stay consistent
            rows = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
            atomic_write_text(self.path, _to_csv(rows))
        elif not self.path.is_file() or resume_step is None:
            atomic_write_text(self.path, ",".join(HEADER) + "\n")

    def log(self, step: int, split: str, values: dict[str, float]) -> None:
        with self.path.open("a", newline="") as f:
            w = csv.writer(f)
            for name, value in values.items():
                w.writerow([step, split, name, f"{float(value):.6g}"])
        if self.tb is not None:
            self.tb.scalars(step, split, values)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


TENSORBOARD = "tensorboard"


class TensorBoard:
    """Event files for `tensorboard --logdir RUN/tensorboard` (torch's SummaryWriter). On resume the
    writer purges what the run logged after the checkpoint it resumes from, as the CSV does.
    Samples: the audio (mixed to mono: TensorBoard plays one channel) and a log-magnitude spectrogram."""

    def __init__(self, folder: Path, resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder), purge_step=None if resume_step is None else resume_step + 1)

    def scalars(self, step: int, split: str, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{split}/{name}", float(value), step)
        self.writer.flush()

    def audio(self, step: int, name: str, audio, sample_rate: int) -> None:
        mono = audio.detach().float().cpu().reshape(-1, audio.shape[-1]).mean(0).clamp(-1, 1)
        self.writer.add_audio(f"samples/{name}", mono, step, sample_rate=sample_rate)
        self.writer.add_image(f"spectrogram/{name}", spectrogram_image(mono, sample_rate), step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def spectrogram_image(audio, sample_rate: int, floor_db: float = 80.0):
    """(samples,) or (channels, samples) audio -> (H, W, 3) uint8: |STFT| in dB (top = high
    frequencies), `floor_db` below the loudest bin shown black, coloured with matplotlib's magma."""
    import numpy as np
    import torch
    from matplotlib import colormaps

    x = torch.as_tensor(audio).float().reshape(-1, audio.shape[-1]).mean(0)
    n_fft = 1 << max(6, round(math.log2(max(sample_rate, 1) * 0.04)))  # ~40 ms windows
    x = torch.nn.functional.pad(x, (0, max(0, n_fft - x.numel())))
    mag = torch.stft(x, n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(mag.clamp_min(1e-8))
    level = ((db - db.max() + floor_db) / floor_db).clamp(0, 1).flip(0).numpy()
    return (colormaps["magma"](level)[..., :3] * 255).astype(np.uint8)


def _to_csv(rows: list[dict]) -> str:
    lines = [",".join(HEADER)]
    lines += [f"{r['step']},{r['split']},{r['name']},{r['value']:.6g}" for r in rows]
    return "\n".join(lines) + "\n"


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a metrics CSV. A line that does not parse (the last line of a run killed mid-write)
    is dropped with one warning rather than failing a resume or a plot."""
    rows, bad = [], []
    with Path(path).open(newline="", errors="replace") as f:
        for number, r in enumerate(csv.reader(f), 1):
            if number == 1 and r == HEADER:
                continue
            try:
                if len(r) != 4:
                    raise ValueError(r)
                rows.append({"step": int(r[0]), "split": r[1], "name": r[2], "value": float(r[3])})
            except ValueError:
                bad.append(number)
    if bad:
        warnings.warn(
            f"{path}: dropped {len(bad)} unreadable line(s) (line {bad[0]}), left by a write that was cut short",
            ArwaveWarning,
            stacklevel=2,
        )
    return rows


def plot_metrics(csv_path: str | Path, png_path: str | Path, title: str = "") -> Path | None:
    """One panel per logged name (train and val curves together)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(csv_path)
    series: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["name"] in ("lr", "steps_per_s", "items_per_s") or not math.isfinite(r["value"]):
            continue
        series[r["name"]][r["split"]].append((r["step"], r["value"]))
    if not series:
        return None
    names = sorted(series, key=lambda n: (n != "loss", n))
    cols = min(3, len(names))
    rows_n = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 2.8 * rows_n), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for split, pts in sorted(series[name].items()):
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=split, marker="o" if split != "train" else None, markersize=3)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    png_path = Path(png_path)
    with replacing(png_path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return png_path
