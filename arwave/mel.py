"""The mel filterbank: librosa's formulas written out once, so that neither librosa nor torchaudio is needed.

One implementation serves the codec's mel loss (Slaney scale and area, librosa's default), the embedders
(aisfx: HTK scale, unit-sum filters; PANNs/CLAP/classifier: Slaney) and the codec-quality figures (HTK,
peak 1). Filters are computed in float64 and rounded once to the caller's dtype.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


def hz_to_mel(f: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """HTK: 2595 log10(1 + f / 700). Slaney (Auditory Toolbox, the default): linear below 1 kHz (3 mels per
    200 Hz), logarithmic above (27 mels per ln 6.4)."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m: np.ndarray | float, htk: bool = False) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=64)
def _filters(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, norm: str | float | None
) -> np.ndarray:
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]  # rising edge of filter i: (f - f_i) / (f_{i+1} - f_i)
    upper = ramps[2:] / widths[1:, None]  # falling edge: (f_{i+2} - f) / (f_{i+2} - f_{i+1})
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":  # each filter has unit area in Hz
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    elif norm is not None:
        p = float(norm)
        lengths = (np.abs(weights) ** p).sum(1, keepdims=True) ** (1.0 / p)
        weights = weights / np.where(lengths > np.finfo(np.float32).tiny, lengths, 1.0)
    weights.flags.writeable = False  # shared by the cache
    return weights


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | float | None = "slaney",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters, as `librosa.filters.mel`; a new tensor on each call.

    Triangles are linear in Hz between n_mels + 2 mel-spaced edge frequencies. norm="slaney" scales
    each triangle by 2 / (f_hi - f_lo) (constant energy per band); a number p divides each filter by its
    l_p norm (p = 1: each filter sums to one); None leaves peaks at 1.
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    fb = _filters(int(sample_rate), int(n_fft), int(n_mels), float(fmin), float(fmax), bool(htk), norm)
    return torch.tensor(fb, dtype=dtype, device=device)
