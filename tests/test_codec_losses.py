"""Mel filterbank, codec losses, discriminator, reconstruction metrics."""

import math

import numpy as np
import pytest
import torch

from arwave.codec.discriminator import MultiScaleSTFTDiscriminator
from arwave.codec.losses import (
    feature_matching_loss,
    frame_loudness_loss,
    hinge_critic_loss,
    hinge_generator_loss,
    multi_resolution_mel_loss,
)
from arwave.errors import ArwaveError
from arwave.evaluation.recon import mel_distance, stft_distance
from arwave.mel import hz_to_mel, mel_filterbank, mel_to_hz


def test_slaney_mel_scale_anchor_values():
    assert float(hz_to_mel(440.0)) == pytest.approx(6.6)  # 440 / (200/3), linear part
    assert float(hz_to_mel(1000.0)) == pytest.approx(15.0)
    assert float(hz_to_mel(4000.0)) == pytest.approx(15 + math.log(4) * 27 / math.log(6.4))
    f = np.array([0.0, 100.0, 999.0, 1000.0, 5000.0, 20000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, rtol=1e-9, atol=1e-9)


def slow_filterbank(sr, n_fft, n_mels):
    """Triangles written point by point in Hz, each scaled to unit area (Slaney normalisation)."""
    mels = np.linspace(float(hz_to_mel(0.0)), float(hz_to_mel(sr / 2)), n_mels + 2)
    edges = [float(mel_to_hz(m)) for m in mels]
    out = np.zeros((n_mels, n_fft // 2 + 1))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        for b in range(n_fft // 2 + 1):
            f = b * sr / n_fft
            if lo < f <= mid:
                out[i, b] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                out[i, b] = (hi - f) / (hi - mid)
        out[i] *= 2.0 / (hi - lo)
    return out


@pytest.mark.parametrize("sr,n_fft,n_mels", [(16000, 512, 40), (24000, 2048, 64), (48000, 256, 20)])
def test_mel_filterbank_matches_slow_reference(sr, n_fft, n_mels):
    fb = mel_filterbank(sr, n_fft, n_mels).double().numpy()
    assert fb.shape == (n_mels, n_fft // 2 + 1) and (fb >= 0).all()
    np.testing.assert_allclose(fb, slow_filterbank(sr, n_fft, n_mels), atol=1e-9)


def test_mel_filter_peaks_are_increasing():
    fb = mel_filterbank(24000, 2048, 64)
    peaks = fb.argmax(1)
    assert (peaks[1:] >= peaks[:-1]).all() and peaks[-1] > 900


def _signals():
    torch.manual_seed(0)
    t = torch.arange(24000) / 24000
    x = (0.3 * torch.sin(2 * math.pi * 440 * t) + 0.1 * torch.sin(2 * math.pi * 3000 * t))[None, None]
    return x, torch.randn_like(x)


def test_mel_and_stft_distance_identical_zero_and_grow_with_noise():
    x, noise = _signals()
    assert mel_distance(x, x, 24000) == 0.0 and stft_distance(x, x) == 0.0
    mels = [mel_distance(x, x + a * noise, 24000) for a in (0.001, 0.01, 0.1)]
    stfts = [stft_distance(x, x + a * noise) for a in (0.001, 0.01, 0.1)]
    assert 0 < mels[0] < mels[1] < mels[2]
    assert 0 < stfts[0] < stfts[1] < stfts[2]
    with pytest.raises(ArwaveError):
        mel_distance(x, x[..., :-1], 24000)


def test_multi_resolution_mel_loss_is_zero_for_identical_and_differentiable():
    x, noise = _signals()
    assert float(multi_resolution_mel_loss(x, x, 24000)) == 0.0
    y = (x + 0.05 * noise).requires_grad_()
    loss = multi_resolution_mel_loss(y, x, 24000)
    loss.backward()
    assert loss > 0 and y.grad.abs().sum() > 0


def test_hinge_and_feature_matching_values():
    zeros = [torch.zeros(2, 1, 3, 4)] * 5
    assert float(hinge_generator_loss(zeros)) == 1.0
    assert float(hinge_critic_loss(zeros, zeros)) == 2.0
    big = [torch.full((2, 1, 3, 4), 2.0)] * 5
    assert float(hinge_critic_loss(big, [-b for b in big])) == 0.0
    feats = [[torch.randn(2, 3, 4, 5) for _ in range(5)] for _ in range(5)]
    assert float(feature_matching_loss(feats, feats)) == 0.0
    other = [[2 * f for f in fl] for fl in feats]
    assert float(feature_matching_loss(feats, other)) == pytest.approx(1.0, rel=1e-5)  # |2f-f| / |f|


@pytest.mark.parametrize("channels", [1, 2])
def test_discriminator_outputs(channels):
    d = MultiScaleSTFTDiscriminator(channels, filters=4)
    audio = torch.randn(2, channels, 4096, requires_grad=True)
    logits, feats = d(audio)
    assert len(logits) == 5 and all(len(f) == 5 for f in feats)
    assert all(l.shape[:2] == (2, 1) for l in logits)
    sum(l.mean() for l in logits).backward()
    assert audio.grad.abs().sum() > 0


def test_frame_loudness_loss_measures_the_energy_ratio_in_bels():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 8192, requires_grad=True)
    assert float(frame_loudness_loss(x, x)) == 0.0
    # half the amplitude = a quarter of the energy = log10(4) bels (6.02 dB) in every frame
    loss = frame_loudness_loss(0.5 * x, x.detach())
    assert abs(float(loss) - math.log10(4)) < 1e-5
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # a different waveform of the same energy costs nothing: the term holds loudness, not shape
    y = x.detach().flip(-1)
    assert float(frame_loudness_loss(y, x.detach(), frame=8192)) < 1e-6
