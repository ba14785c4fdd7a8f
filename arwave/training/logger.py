"""Training metrics: a long-format CSV (step, split, name, value) that survives changing sets of
logged names (e.g. adversarial losses that start after warm-up), and a PNG of the curves."""
from __future__ import annotations

import csv
import math
import warnings
from collections import defaultdict
from pathlib import Path

from arwave.checkpoint import atomic_write_text
from arwave.errors import ArwaveWarning

HEADER = ["step", "split", "name", "value"]


class MetricsLog:
    def __init__(self, run_dir: str | Path, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.csv"
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
        warnings.warn(f"{path}: dropped {len(bad)} unreadable line(s) (line {bad[0]}), left by a write that was cut short",
                      ArwaveWarning, stacklevel=2)
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
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    png_path = Path(png_path)
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(png_path)
    return png_path
