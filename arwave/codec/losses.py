"""Codec training losses (SAT's recipe) and the spectral helpers that the reconstruction metrics share.

    l_f    = Σ_{n_fft = 2^5..2^11} [ L1 + MSE ](log10 max(mel(x̂), 1e-5), log10 max(mel(x), 1e-5))
             (window = n_fft Hann, hop = n_fft / 4, 64 mel bins, power spectrum)
    l_t    = L1(x̂, x)
    l_g    = mean_k mean relu(1 - D_k(x̂))                       (hinge, generator)
    l_d    = mean_k [ mean relu(1 - D_k(x)) + mean relu(1 + D_k(x̂)) ]   (hinge, critic)
    l_feat = mean over (k, layer) of mean|f(x) - f(x̂)| / mean|f(x)|
    total  = 3·l_g + 3·l_feat + 0.1·l_t + 1·l_f + 1·l_vq         (weights in CodecConfig)

Mel filters come from arwave.mel (Slaney mel scale with Slaney area normalisation, i.e. librosa's default
`librosa.filters.mel(htk=False, norm='slaney')`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from arwave.mel import mel_filterbank

# ---------------------------------------------------------------------------------------------------
# mel filterbank, kept per device and dtype for the loss's inner loop

_FB_CACHE: dict[tuple, torch.Tensor] = {}


def cached_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, device, dtype) -> torch.Tensor:
    key = (sample_rate, n_fft, n_mels, str(device), dtype)
    if key not in _FB_CACHE:
        _FB_CACHE[key] = mel_filterbank(sample_rate, n_fft, n_mels, device=device, dtype=dtype)
    return _FB_CACHE[key]


# ---------------------------------------------------------------------------------------------------
# STFT helpers (shared with arwave.evaluation.recon)

_WIN_CACHE: dict[tuple, torch.Tensor] = {}


def hann(n: int, device, dtype) -> torch.Tensor:
    key = (n, str(device), dtype)
    if key not in _WIN_CACHE:
        _WIN_CACHE[key] = torch.hann_window(n, device=device, dtype=dtype)
    return _WIN_CACHE[key]


def stft(x: torch.Tensor, n_fft: int, hop: int, center: bool = True) -> torch.Tensor:
    """Complex STFT of (..., N) audio -> (..., n_fft//2+1, frames); Hann window of n_fft.

    Centered frames use reflect padding (zero padding when the signal is shorter than n_fft/2);
    signals shorter than one window are zero-padded to n_fft when center=False."""
    shape = x.shape
    x = x.reshape(-1, shape[-1]).float()
    pad_mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
    if not center and x.shape[-1] < n_fft:
        x = F.pad(x, (0, n_fft - x.shape[-1]))
    spec = torch.stft(
        x, n_fft, hop, window=hann(n_fft, x.device, x.dtype), center=center, pad_mode=pad_mode, return_complex=True
    )
    return spec.view(*shape[:-1], *spec.shape[-2:])


def log_mel(
    x: torch.Tensor, sample_rate: int, n_fft: int, n_mels: int, power: float = 2.0, eps: float = 1e-5
) -> torch.Tensor:
    """log10(max(mel(|STFT|^power), eps)), hop n_fft / 4: (..., n_mels, frames)."""
    mag = stft(x, n_fft, n_fft // 4).abs()
    if power != 1.0:
        mag = mag.pow(power)
    mel = torch.matmul(cached_mel_filterbank(sample_rate, n_fft, n_mels, mag.device, mag.dtype), mag)
    return torch.log10(mel.clamp_min(eps))


# ---------------------------------------------------------------------------------------------------
# generator losses

MEL_LOSS_FFTS = tuple(2**i for i in range(5, 12))  # 32 ... 2048


def multi_resolution_mel_loss(
    fake: torch.Tensor, real: torch.Tensor, sample_rate: int, n_mels: int = 64, n_ffts: Sequence[int] = MEL_LOSS_FFTS
) -> torch.Tensor:
    """SAT's l_f: Σ over resolutions of L1 + MSE between log10 power-mel spectrograms."""
    total = fake.new_zeros(())
    for n_fft in n_ffts:
        a = log_mel(fake, sample_rate, n_fft, n_mels)
        b = log_mel(real, sample_rate, n_fft, n_mels)
        total = total + F.l1_loss(a, b) + F.mse_loss(a, b)
    return total


def frame_loudness_loss(fake: torch.Tensor, real: torch.Tensor, frame: int = 4096, eps: float = 1e-8) -> torch.Tensor:
    """mean over frames of |log10 E(fake) − log10 E(real)| (bels; 0.1 = 1 dB), E = mean square of the
    mono mix over non-overlapping frames. Log-mel losses match a geometric mean of the spectrum, so an
    imperfect reconstruction that smooths peaks comes out quieter; this term holds the energy."""
    frame = min(frame, real.shape[-1])
    n = real.shape[-1] // frame * frame

    def log_energy(x: torch.Tensor) -> torch.Tensor:
        x = x.mean(1) if x.dim() == 3 else x
        return torch.log10(x[..., :n].unflatten(-1, (-1, frame)).pow(2).mean(-1) + eps)

    return (log_energy(fake) - log_energy(real)).abs().mean()


def hinge_generator_loss(logits_fake: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(F.relu(1 - l).mean() for l in logits_fake) / len(logits_fake)


def hinge_critic_loss(logits_real: Sequence[torch.Tensor], logits_fake: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(logits_real, logits_fake)) / len(logits_real)


def feature_matching_loss(
    feats_real: Sequence[Sequence[torch.Tensor]], feats_fake: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """Mean over (sub-discriminator, layer) of L1(f_real, f_fake) / mean|f_real| (real features detached)."""
    terms = []
    for fr_list, ff_list in zip(feats_real, feats_fake):
        for fr, ff in zip(fr_list, ff_list):
            fr = fr.detach()
            terms.append(F.l1_loss(ff, fr) / fr.abs().mean().clamp_min(1e-8))
    return torch.stack(terms).mean()
