"""aisfx embedder: feature extraction against slow references, the network against the package's own
definition, a stored fingerprint of a known signal, and loading without unpickling."""

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from arwave.evaluation.embedders import aisfx as A
from arwave.evaluation.embedders.by_name import get_embedder
from arwave.mel import hz_to_mel, mel_filterbank, mel_to_hz

FINGERPRINT = Path(__file__).parent / "data" / "aisfx_fingerprint.json"
HAVE_AISFX = importlib.util.find_spec("aisfx") is not None
needs_aisfx = pytest.mark.skipif(not HAVE_AISFX, reason="the aisfx wheel (weights) is not installed")


def known_signal(seconds: float = 5.0, sr: int = 44100) -> torch.Tensor:
    """Deterministic stereo test signal: a 100 Hz -> 8 kHz exponential chirp, a 440 Hz tone with 3 Hz
    tremolo in the right channel, and seeded white noise."""
    t = np.arange(int(seconds * sr)) / sr
    chirp = np.sin(2 * np.pi * 100 * seconds / np.log(80) * (80 ** (t / seconds) - 1))
    tone = np.sin(2 * np.pi * 440 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    noise = np.random.default_rng(1234).standard_normal(len(t))
    left = 0.5 * chirp + 0.05 * noise
    right = 0.3 * chirp + 0.4 * tone + 0.05 * noise
    return torch.from_numpy(np.stack([left, right]).astype(np.float32))


def fingerprint(emb) -> dict:
    feats = emb.features(known_signal()[None], 44100)
    f = feats.frames.double()
    return {
        "num_frames": len(f),
        "first_frame_head": f[0, :8].tolist(),
        "frame_norms": f.norm(dim=1).tolist(),
        "mean_embedding_norm": float(f.mean(0).norm()),
        "top_class": int(feats.posteriors[0].argmax()),
        "top_prob": float(feats.posteriors[0].max()),
    }


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private ARWAVE_CACHE with the converted weights (the conversion is part of what is tested)."""
    root = tmp_path_factory.mktemp("arwave-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARWAVE_CACHE", str(root))
        yield root


# ---------------------------------------------------------------------------------------------------
# features


def slow_mel(sr, n_fft, n_mels, fmin, fmax, htk, norm):
    """Filter by filter, bin by bin (librosa.filters.mel written as loops)."""
    freqs = [k * sr / n_fft for k in range(n_fft // 2 + 1)]
    lo, hi = float(hz_to_mel(fmin, htk)), float(hz_to_mel(fmax, htk))
    edges = [float(mel_to_hz(lo + (hi - lo) * i / (n_mels + 1), htk)) for i in range(n_mels + 2)]
    w = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        a, b, c = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            w[m, k] = max(0.0, min((f - a) / (b - a), (c - f) / (c - b)))
        if norm == "slaney":
            w[m] *= 2.0 / (c - a)
        elif norm == 1:
            w[m] /= w[m].sum() if w[m].sum() > 0 else 1.0
    return w


@pytest.mark.parametrize("htk,norm", [(True, 1), (False, "slaney"), (True, None)])
def test_mel_filterbank_matches_slow_formula(htk, norm):
    fast = mel_filterbank(22050, 512, 24, 30.0, 11025.0, htk=htk, norm=norm).double().numpy()
    np.testing.assert_allclose(fast, slow_mel(22050, 512, 24, 30.0, 11025.0, htk, norm), rtol=1e-5, atol=1e-7)


def test_mel_scales_known_values():
    assert float(hz_to_mel(1000.0, htk=True)) == pytest.approx(2595 * np.log10(1 + 1000 / 700))
    assert float(hz_to_mel(1000.0, htk=False)) == pytest.approx(15.0)  # Slaney: 3 mel per 200 Hz below 1 kHz
    for htk in (True, False):
        f = np.array([0.0, 440.0, 1000.0, 5000.0, 20000.0])
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(f, htk), htk), f, rtol=1e-10, atol=1e-9)


def test_aisfx_spectrogram_matches_slow_numpy_pipeline():
    """librosa 0.9's melspectrogram path of aisfx: zero-padded centring, periodic Hann, |X|^2, HTK mel
    with unit-sum filters, log10(1e4 x + 1), / 9.4578; input peak-normalised."""
    x = known_signal(0.5)[0].double().numpy() * 0.3
    y = x / np.abs(x).max()
    padded = np.pad(y, A.N_FFT // 2)
    n = np.arange(A.N_FFT)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / A.N_FFT)
    frames = 1 + len(y) // A.HOP
    mel = slow_mel(A.SAMPLE_RATE, A.N_FFT, A.N_MELS, 0.0, A.SAMPLE_RATE / 2, True, 1)
    expected = (
        np.stack(
            [
                np.log10(1e4 * (mel @ np.abs(np.fft.rfft(padded[t * A.HOP : t * A.HOP + A.N_FFT] * window)) ** 2) + 1)
                for t in range(frames)
            ]
        )
        / A.LOG_MAX
    )
    got = A.AisfxFeatures()(torch.from_numpy(x).float()).double().numpy()
    assert got.shape == (frames, 96)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("frames", [30, 99, 100, 149, 150, 151, 431])
def test_blocking_matches_aisfx_rule(frames):
    spec = torch.arange(frames * 96, dtype=torch.float32).reshape(frames, 96)
    # aisfx.preprocessing.blocking(drop_partial_block=True), restated
    n = int(np.ceil((frames - 100) / 50 + 1))
    if (frames - 100) % 50 != 0:
        n -= 1
    n = max(n, 1)
    data = np.vstack([spec.numpy(), np.zeros((100, 96), np.float32)])
    expected = np.stack([data[i * 50 : i * 50 + 100] for i in range(n)])
    np.testing.assert_array_equal(A.blocks_of(spec).numpy(), expected)


# ---------------------------------------------------------------------------------------------------
# weights and network


@needs_aisfx
def test_converted_weights_load_without_pickle(cache, monkeypatch):
    path = A.convert_checkpoint()
    assert path == cache / "embedders" / "aisfx.safetensors" and path.is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling at run time")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    emb = get_embedder("aisfx")
    assert emb.dim == 512 and len(emb.class_names) == 69 and emb.cache_key.startswith("aisfx-")


@needs_aisfx
def test_network_equals_the_packages_own_definition(cache):
    from aisfx.models.cnn2d import CrossNet, EmbeddingNet  # the package's model code (needs no librosa)

    ours, _ = A.load_network()
    theirs = CrossNet(EmbeddingNet("max", 3, 1, 64), {k: tuple(v) for k, v in ours.heads.items()}, "cpu")
    missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    theirs.eval()
    spec = torch.rand(3, 100, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        e1, l1 = ours(spec, "ucsMixed")
        e2, l2 = theirs(spec, "ucsMixed")
    torch.testing.assert_close(e1, e2)
    torch.testing.assert_close(l1, l2)


@needs_aisfx
def test_known_signal_matches_stored_fingerprint(cache):
    stored = json.loads(FINGERPRINT.read_text())
    got = fingerprint(get_embedder("aisfx"))
    assert got["num_frames"] == stored["num_frames"]
    np.testing.assert_allclose(got["first_frame_head"], stored["first_frame_head"], rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(got["frame_norms"], stored["frame_norms"], rtol=2e-3)
    assert got["mean_embedding_norm"] == pytest.approx(stored["mean_embedding_norm"], rel=2e-3)
    assert got["top_class"] == stored["top_class"]
    assert got["top_prob"] == pytest.approx(stored["top_prob"], abs=5e-3)


@needs_aisfx
def test_resampling_and_short_clips(cache):
    emb = get_embedder("aisfx")
    x = known_signal(3.0)
    at48 = torch.from_numpy(__import__("soxr").resample(x.T.numpy(), 44100, 48000, quality="HQ").T.copy())
    e44, e48 = emb.embed(x[None], 44100), emb.embed(at48[None], 48000)
    assert e44.shape == e48.shape == (1, 512)
    assert torch.nn.functional.cosine_similarity(e44, e48).item() > 0.99  # same audio at another rate
    short = emb.features([x[:, :20000], x], 44100)  # 0.45 s: padded to one block
    assert short.frames.shape == (2, 512) and short.clip_index.tolist() == [0, 1]
