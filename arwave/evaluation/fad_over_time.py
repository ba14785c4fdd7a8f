"""FAD over time: how quality evolves along long autoregressive rollouts (CAM's error-accumulation test).

Rollouts several times longer than the training context are cut into successive windows
[k W, (k + 1) W) seconds (a trailing partial window is dropped). For each k, the window of every
rollout is embedded, the frames of all rollouts are pooled into one Gaussian, and its FAD to the
reference statistics is computed. A model that accumulates errors shows FAD rising with k; a
noise-augmented one should stay flat. FAD_acc = the FAD of the last window.

Every window uses the same number of rollouts and seconds, so the FAD bias from finite samples is the
same along the curve; compare models with the same number of rollouts.
"""

from __future__ import annotations

import torch

from arwave.evaluation.embedders import as_clips
from arwave.evaluation.embedders.by_name import get_embedder
from arwave.evaluation.fad import FADError, GaussianStats, StatsAccumulator, fad_from_stats, reference_stats


def training_context_seconds(model) -> float:
    """How much audio the model sees at once in training (CAM: `context` frames; AAR/next-token: a window)."""
    m = model.config.model
    frames = getattr(m, "context", None) or getattr(m, "window_frames", None)
    if frames and hasattr(model, "frame_rate"):
        return float(frames) / float(model.frame_rate)
    if hasattr(model, "window_seconds"):
        return float(model.window_seconds)
    return float(model.config.data.segment_seconds)


def fad_over_time(
    rollouts,
    sample_rate: int,
    reference,
    embedder="aisfx",
    window_seconds: float = 5.0,
    reference_sample_rate: int | None = None,
    cache: bool = True,
    progress: bool = True,
) -> dict:
    """rollouts: (N, C, S) tensor or list of (C, S) tensors at `sample_rate` (equal lengths are not
    required: windows run up to the shortest). reference: GaussianStats or any source accepted by
    `arwave.evaluation.fad.audio_source` (tensors need `reference_sample_rate`).

    Returns {"embedder", "window_seconds", "times" (window starts, s), "fad" (per window), "fad_acc",
    "num_rollouts", "frames_per_window"}.
    """
    from tqdm.auto import tqdm

    emb = get_embedder(embedder)
    clips = as_clips(rollouts)
    if not clips:
        raise FADError("fad_over_time: no rollouts given")
    win = int(round(window_seconds * sample_rate))
    length = min(c.shape[-1] for c in clips)
    num_windows = length // win if win > 0 else 0
    if num_windows < 1:
        raise FADError(
            f"fad_over_time: rollouts of {length / sample_rate:.2f} s are shorter than one {window_seconds:g} s window"
        )
    ref = (
        reference
        if isinstance(reference, GaussianStats)
        else reference_stats(emb, reference, reference_sample_rate, cache=cache, progress=progress)
    )
    times, fads, frames = [], [], []
    for k in tqdm(
        range(num_windows), desc=f"FAD over time [{emb.name}]", unit="window", disable=not progress, leave=False
    ):
        acc = StatsAccumulator(emb.dim)
        for i in range(0, len(clips), 16):
            acc.add(emb.embed([c[:, k * win : (k + 1) * win] for c in clips[i : i + 16]], sample_rate))
        stats = acc.stats()
        times.append(k * window_seconds)
        fads.append(fad_from_stats(stats, ref))
        frames.append(stats.n)
    return {
        "embedder": emb.name,
        "window_seconds": float(window_seconds),
        "times": times,
        "fad": fads,
        "fad_acc": fads[-1],
        "num_rollouts": len(clips),
        "frames_per_window": frames,
    }


def plot_fad_over_time(results: dict[str, dict], path_png, title: str | None = None) -> None:
    """One line per model (results: model name -> `fad_over_time` result), FAD against window centre."""
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt

    embedders = sorted({r["embedder"] for r in results.values()})
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in results.items():
        centres = [t + r["window_seconds"] / 2 for t in r["times"]]
        label = name if len(embedders) == 1 else f"{name} [{r['embedder']}]"
        ax.plot(centres, r["fad"], marker="o", label=label)
    ax.set_xlabel("position in rollout (s, window centre)")
    ax.set_ylabel(f"FAD ({', '.join(embedders)})")
    ax.set_title(title or "FAD over time (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path_png, dpi=120)
    plt.close(fig)


def latent_fad_over_time(rollouts: torch.Tensor, reference: torch.Tensor, window_frames: int) -> dict:
    """FAD over time in the codec's latent space: each latent frame (a D-vector) is one embedding.

    rollouts: (N, D, T) generated latents; reference: (D, M) latent frames of real audio (e.g. every
    frame of the test split through the same codec). Window k pools frames [k W, (k + 1) W) of all
    rollouts. This measures the AR model's own drift, independently of how well the codec decodes —
    at CPU scale the codec, not the AR model, limits every audio-domain FAD.
    """
    N, D, T = rollouts.shape
    num_windows = T // window_frames
    if num_windows < 1:
        raise FADError(
            f"latent_fad_over_time: rollouts of {T} frames are shorter than one {window_frames}-frame window"
        )
    ref = GaussianStats.from_embeddings(reference.t().double())
    fads = []
    for k in range(num_windows):
        frames = rollouts[:, :, k * window_frames : (k + 1) * window_frames].permute(0, 2, 1).reshape(-1, D)
        fads.append(fad_from_stats(GaussianStats.from_embeddings(frames.double()), ref))
    return {
        "embedder": "latent",
        "window_frames": window_frames,
        "times": [k * window_frames for k in range(num_windows)],
        "fad": fads,
        "fad_acc": fads[-1],
        "num_rollouts": N,
    }
