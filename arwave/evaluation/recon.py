"""Reconstruction metrics of a codec (definitions in docs/metrics.md, "Reconstruction metrics").

    mel_distance  = Σ_{w ∈ 32,64,...,2048} mean | log10 max(M_w(x), 1e-5) − log10 max(M_w(x̂), 1e-5) |
        M_w: magnitude (power 1) mel spectrogram, Hann window w, hop w/4, centred frames, with
        n_mels = 5, 10, 20, 40, 80, 160, 320 for w = 32 ... 2048 (Slaney mel, 0 Hz .. sr/2)
    stft_distance = Σ_{w ∈ 2048, 512} [ mean | log10 max(|X_w|, 1e-5)² − log10 max(|X̂_w|, 1e-5)² |
                                         + mean | |X_w| − |X̂_w| | ]
        Hann window w, hop w/4, centred frames

These follow the Descript Audio Codec evaluation (audiotools' MelSpectrogramLoss and MultiScaleSTFTLoss
with DAC's settings). Lower is better; identical signals give 0. Means run over batch, channels,
frequency bins and frames, so the numbers do not depend on the batch size or the channel count.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from arwave.codec.losses import log_mel, stft
from arwave.errors import ArwaveError
from arwave.mel import mel_filterbank

MEL_WINDOWS = (32, 64, 128, 256, 512, 1024, 2048)
MEL_BINS = (5, 10, 20, 40, 80, 160, 320)
STFT_WINDOWS = (2048, 512)
CLAMP = 1e-5


def _pair(ref: torch.Tensor, est: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ref, est = torch.as_tensor(ref).float(), torch.as_tensor(est).float()
    if ref.shape != est.shape:
        raise ArwaveError(
            f"reconstruction metrics: shapes differ, reference {tuple(ref.shape)} vs estimate {tuple(est.shape)}"
        )
    return ref, est.to(ref.device)


@torch.no_grad()
def mel_distance(ref: torch.Tensor, est: torch.Tensor, sample_rate: int) -> float:
    """Multi-resolution log-mel L1 distance between (..., N) signals (see module docstring)."""
    ref, est = _pair(ref, est)
    total = 0.0
    for w, bins in zip(MEL_WINDOWS, MEL_BINS):
        a = log_mel(ref, sample_rate, w, bins, power=1.0, eps=CLAMP)
        b = log_mel(est, sample_rate, w, bins, power=1.0, eps=CLAMP)
        total += float(F.l1_loss(a, b))
    return total


@torch.no_grad()
def stft_distance(ref: torch.Tensor, est: torch.Tensor) -> float:
    """Multi-resolution STFT distance: L1 of log10 power + L1 of magnitude (see module docstring)."""
    ref, est = _pair(ref, est)
    total = 0.0
    for w in STFT_WINDOWS:
        a, b = stft(ref, w, w // 4).abs(), stft(est, w, w // 4).abs()
        log_a = torch.log10(a.clamp_min(CLAMP).pow(2))
        log_b = torch.log10(b.clamp_min(CLAMP).pow(2))
        total += float(F.l1_loss(log_a, log_b) + F.l1_loss(a, b))
    return total


@torch.no_grad()
def evaluate_recon(
    model: Any,
    dataset: Any,
    max_items: int | None = None,
    progress: bool = True,
    batch_size: int = 4,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Encode and decode every item of `dataset` (items `dataset[(i, 0)]["audio"]` (C, N), at the
    codec's rate and channels) and average the metrics over items.

    `model` is a Codec or a run folder. Returns mel_distance, stft_distance, tokens_per_second (integer
    tokens per second; latent vectors per second for a continuous codec), num_items, and codec facts."""
    if not isinstance(model, torch.nn.Module):
        from arwave import load

        model = load(model)
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    rate = getattr(dataset, "sample_rate", model.sample_rate)
    if rate != model.sample_rate:
        raise ArwaveError(f"evaluate_recon: dataset is at {rate} Hz, the codec at {model.sample_rate} Hz")
    n = len(dataset) if max_items is None else min(len(dataset), int(max_items))
    if n == 0:
        raise ArwaveError("evaluate_recon: the dataset is empty")
    sums = {"mel_distance": 0.0, "stft_distance": 0.0}
    done = 0
    bar = tqdm(total=n, desc="recon", unit="item", disable=not progress, leave=False)
    for start in range(0, n, batch_size):
        audio = torch.stack([dataset[(i, 0)]["audio"] for i in range(start, min(n, start + batch_size))]).to(device)
        if audio.shape[1] != model.channels:
            raise ArwaveError(f"evaluate_recon: dataset has {audio.shape[1]} channels, the codec {model.channels}")
        recon = model.reconstruct(audio)
        for a, r in zip(audio, recon):  # per item, then averaged
            sums["mel_distance"] += mel_distance(a, r, model.sample_rate)
            sums["stft_distance"] += stft_distance(a, r)
        done += audio.shape[0]
        bar.update(audio.shape[0])
    bar.close()
    return {
        "mel_distance": sums["mel_distance"] / done,
        "stft_distance": sums["stft_distance"] / done,
        "tokens_per_second": model.tokens_per_second,
        "num_items": done,
        "bottleneck": model.kind,
        "frame_rate": model.frame_rate,
        "sample_rate": model.sample_rate,
    }


def evaluate_codec(
    codec,
    split: str = "test",
    seconds: float | None = None,
    manifest: str | None = None,
    max_items: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """`evaluate_recon` over fixed crops of `seconds` (default: the codec's training window) of a split of
    the codec's training data, or of `manifest`."""
    from arwave.data.dataset import dataset_for_split

    data = replace(codec.config.data)
    if manifest:
        data.manifest = str(Path(manifest).resolve())
    seconds = seconds or data.segment_seconds
    ds = dataset_for_split(
        data, split, segment_samples=round(seconds * codec.sample_rate), random_crop=False, tiled=True
    )
    result = evaluate_recon(codec, ds, max_items=max_items, progress=progress)
    result.update(split=split, seconds_per_item=seconds)
    return result


# ---------------------------------------------------------------------------------------------------
# the codec-quality figures (docs/metrics.md, "Codec quality on held-out music")

CLIP_N_FFT, CLIP_HOP, CLIP_MELS, CLIP_FMIN = 2048, 512, 80, 30.0


@torch.no_grad()
def clip_log_mel(x: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """log10 max(M, 1e-5) of (C, N) or (N,) audio: the mono mix, Hann frames of 2048 (hop 512, no
    centring), |unnormalised FFT|, 80 triangular HTK-mel filters of peak 1 from 30 Hz to Nyquist.
    Returns (80, frames)."""
    x = torch.as_tensor(x).float()
    mono = x.reshape(-1, x.shape[-1]).mean(0) if x.dim() > 1 else x
    if mono.shape[-1] < CLIP_N_FFT:
        mono = F.pad(mono, (0, CLIP_N_FFT - mono.shape[-1]))
    spec = torch.stft(
        mono, CLIP_N_FFT, CLIP_HOP, window=torch.hann_window(CLIP_N_FFT), center=False, return_complex=True
    ).abs()
    fb = mel_filterbank(sample_rate, CLIP_N_FFT, CLIP_MELS, fmin=CLIP_FMIN, htk=True, norm=None)
    return torch.log10((fb @ spec).clamp_min(CLAMP))


def clip_mel_distance(ref: torch.Tensor, est: torch.Tensor, sample_rate: int) -> float:
    """MEL distance of the codec-quality figures: mean |log10 M(a) − log10 M(b)| over frames and the
    80 bands of `clip_log_mel` (signals trimmed to the shorter length)."""
    n = min(ref.shape[-1], est.shape[-1])
    return float((clip_log_mel(ref[..., :n], sample_rate) - clip_log_mel(est[..., :n], sample_rate)).abs().mean())


def input_specificity(refs: list[torch.Tensor], recons: list[torch.Tensor], sample_rate: int) -> list[float]:
    """Per item i: MEL(recon_i, x_i) / mean_{j≠i} MEL(recon_i, x_j). Near 1 = the output does not depend on
    the input (a collapsed codec); a healthy codec is far below (the bundled ones: ≤ 0.45)."""
    if len(refs) < 2:
        raise ArwaveError("input specificity needs at least two clips")
    mels = [clip_log_mel(r, sample_rate) for r in refs]
    out = []
    for i, recon in enumerate(recons):
        m = clip_log_mel(recon, sample_rate)
        d = [
            float((m[:, : min(m.shape[1], o.shape[1])] - o[:, : min(m.shape[1], o.shape[1])]).abs().mean())
            for o in mels
        ]
        others = [v for j, v in enumerate(d) if j != i]
        out.append(d[i] / max(sum(others) / len(others), 1e-12))
    return out


def rms_db(x: torch.Tensor) -> float:
    """20·log10 RMS (dBFS of a full-scale square wave = 0)."""
    return 20.0 * math.log10(max(float(torch.as_tensor(x).float().pow(2).mean().sqrt()), 1e-10))
