"""A self-contained HTML report: audio players, spectrograms, loss curves, plots and metric tables.

Files (wav, png) are referenced relative to the report, so the folder can be zipped and shared.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from arwave.paths import atomic_write_text


def save_spectrogram(wave: torch.Tensor, sample_rate: int, path: str | Path, title: str = "") -> Path:
    """Log-magnitude STFT of the first channel (n_fft 2048, hop 512), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = wave.reshape(-1, wave.shape[-1])[0].float()
    n_fft = 2048 if x.numel() >= 2048 else 256
    spec = torch.stft(x, n_fft, n_fft // 4, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(spec.clamp_min(1e-5))
    fig, ax = plt.subplots(figsize=(6, 2.4))
    duration = x.numel() / sample_rate
    ax.imshow(
        db.numpy(),
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=float(db.max()) - 80,
        extent=[0, duration, 0, sample_rate / 2000],
    )
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("kHz", fontsize=8)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


@dataclass
class Section:
    title: str
    text: str = ""
    audio: list[tuple[str, str, str | None]] = field(default_factory=list)  # (label, wav, spectrogram png)
    images: list[tuple[str, str]] = field(default_factory=list)  # (caption, png)
    tables: list[tuple[str, list[dict]]] = field(default_factory=list)  # (caption, rows)


CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
.grid{display:flex;flex-wrap:wrap;gap:1em} .card{border:1px solid #e2e2e2;border-radius:6px;padding:.6em;width:340px}
.card img{width:100%} .wide img{max-width:100%} figure{margin:0} figcaption{font-size:.85em;color:#555}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
td,th{border:1px solid #ddd;padding:.3em .6em;text-align:right}
th{background:#f5f5f5} td:first-child,th:first-child{text-align:left} .note{color:#555;font-size:.9em}
audio{width:100%}
"""


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p class=note>(no rows)</p>"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(path: str | Path, title: str, sections: list[Section], meta: dict | None = None) -> Path:
    parts = [
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
    ]
    if meta:
        parts.append(
            "<p class=note>" + " · ".join(f"{html.escape(k)}: {html.escape(str(v))}" for k, v in meta.items()) + "</p>"
        )
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            parts.append(f"<p>{s.text}</p>")
        for caption, rows in s.tables:
            parts.append(f"<p class=note>{html.escape(caption)}</p>{_table(rows)}")
        if s.audio:
            parts.append("<div class=grid>")
            for label, wav, png in s.audio:
                img = f"<img src='{html.escape(png)}' alt='spectrogram'>" if png else ""
                parts.append(
                    f"<div class=card><figure>{img}<figcaption>{html.escape(label)}</figcaption>"
                    f"<audio controls preload=none src='{html.escape(wav)}'></audio></figure></div>"
                )
            parts.append("</div>")
        if s.images:
            parts.append("<div class='grid wide'>")
            for caption, png in s.images:
                parts.append(
                    f"<figure><img src='{html.escape(png)}' alt='{html.escape(caption)}'>"
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
            parts.append("</div>")
    parts.append("</body></html>")
    path = Path(path)
    atomic_write_text(path, "\n".join(parts))
    return path


def write_json(path: str | Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str))


def finish_report(
    out: Path, title: str, sections: list[Section], results: dict, t_start: float, meta: dict, say
) -> dict:
    """The end of every demo: the wall time into `results`, OUT/metrics.json, OUT/report.html (with the
    machine's torch and thread count beside `meta`), one line said; returns `results` with its path."""
    results["wall_minutes"] = (time.time() - t_start) / 60
    write_json(out / "metrics.json", results)
    meta = {
        **meta,
        "wall": f"{results['wall_minutes']:.1f} min",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    report = write_report(out / "report.html", title, sections, meta=meta)
    say(f"report: {report} ({results['wall_minutes']:.1f} min)")
    results["report"] = str(report)
    return results
