"""FAD: closed forms, stability, the stats cache, audio sources, FAD over time, evaluate_generated."""

import numpy as np
import pytest
import scipy.linalg
import soundfile as sf
import torch

from arwave.evaluation.embedders import Embedder, EmbedderError
from arwave.evaluation.embedders.by_name import get_embedder
from arwave.evaluation.fad import (
    GaussianStats,
    StatsAccumulator,
    fad_from_embeddings,
    frechet_distance,
    reference_summary,
    summarize,
)
from arwave.evaluation.fad_over_time import fad_over_time, plot_fad_over_time
from arwave.evaluation.generated import evaluate_generated


def random_spd(d, rng):
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


def slow_fad(mu1, s1, mu2, s2):
    """Reference: scipy's general sqrtm of the (non-symmetric) product."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def test_frechet_distance_matches_scipy_closed_form():
    rng = np.random.default_rng(0)
    for d in (1, 3, 8):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = random_spd(d, rng), random_spd(d, rng)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(slow_fad(mu1, s1, mu2, s2), rel=1e-8, abs=1e-9)


def test_frechet_distance_diagonal_closed_form():
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_fad_of_a_set_with_itself_is_zero_even_when_singular():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert fad_from_embeddings(x, x) == pytest.approx(0.0, abs=1e-8)
    few = torch.randn(5, 32, generator=torch.Generator().manual_seed(1))  # rank-deficient covariance
    assert fad_from_embeddings(few, few) == pytest.approx(0.0, abs=1e-8)
    other = torch.randn(5, 32, generator=torch.Generator().manual_seed(2))
    assert np.isfinite(fad_from_embeddings(few, other)) and fad_from_embeddings(few, other) > 0


def test_fad_grows_with_added_noise():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2000, 8, generator=g)
    y = torch.randn(2000, 8, generator=g)
    values = [fad_from_embeddings(x, y + s * torch.randn(2000, 8, generator=g)) for s in (0.0, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_stats_accumulator_in_batches_equals_numpy():
    x = torch.randn(103, 7, generator=torch.Generator().manual_seed(4)) * 3 + 100  # offset: cancellation test
    acc = StatsAccumulator(7)
    for chunk in x.split(10):
        acc.add(chunk)
    s = acc.stats()
    assert s.n == 103
    np.testing.assert_allclose(s.mu.numpy(), x.double().mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(s.sigma.numpy(), np.cov(x.double().numpy(), rowvar=False), rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------------------
# a cheap deterministic embedder for the plumbing tests


class ToyEmbedder(Embedder):
    """Frames of 800 samples at 8 kHz -> (rms, mean |x|, peak, zero-crossing rate); 2 'classes'."""

    name = "toy"
    sample_rate = 8000
    dim = 4
    cache_key = "toy-v1"
    class_names = ["quiet", "loud"]

    def __init__(self):
        self.calls = 0

    def _run(self, clips):
        self.calls += 1
        out = []
        for x in clips:
            n = max(1, x.shape[-1] // 800)
            f = torch.nn.functional.pad(x, (0, max(0, 800 - x.shape[-1])))[: n * 800].reshape(n, 800)
            feats = torch.stack(
                [f.pow(2).mean(1).sqrt(), f.abs().mean(1), f.abs().amax(1), (f[:, 1:] * f[:, :-1] < 0).float().mean(1)],
                1,
            )
            logit = 20 * (feats[:, :1] - 0.3)
            out.append((feats, torch.cat([-logit, logit], 1).softmax(-1)))
        return out


def noisy_tones(n, seconds, sr, noise, seed, freq=440.0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sr)) / sr
    amp = 0.2 + 0.5 * torch.rand(n, 1, 1, generator=g)
    return amp * torch.sin(2 * np.pi * freq * t) + noise * torch.randn(n, 1, len(t), generator=g)


def test_embedder_registry_errors():
    with pytest.raises(EmbedderError, match="unknown embedder"):
        get_embedder("nope")
    with pytest.raises(EmbedderError, match="run folder"):
        get_embedder("classifier")
    with pytest.raises(EmbedderError, match="weight file"):
        get_embedder("vggish")
    emb = ToyEmbedder()
    assert get_embedder(emb) is emb
    with pytest.raises(EmbedderError, match="channels, samples"):
        emb.embed(torch.zeros(2, 8000), 8000)


def test_features_resample_and_layout():
    emb = ToyEmbedder()
    wave = noisy_tones(3, 1.0, 16000, 0.0, 0)
    feats = emb.features(wave, 16000)  # resampled 16 kHz -> 8 kHz: 10 frames per clip
    assert feats.frames.shape == (30, 4)
    assert feats.clip_index.tolist() == sum([[i] * 10 for i in range(3)], [])
    assert feats.posteriors.shape == (3, 2)
    torch.testing.assert_close(feats.posteriors.sum(-1), torch.ones(3))
    clips = emb.embed_clips([w for w in wave], 16000)
    torch.testing.assert_close(clips[1], feats.frames[10:20].mean(0))


def test_reference_stats_cached_per_embedder_and_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("ARWAVE_CACHE", str(tmp_path / "cache"))
    emb = ToyEmbedder()
    ref = noisy_tones(4, 0.5, 8000, 0.05, 1)
    first = reference_summary(emb, ref, 8000, progress=False)
    files = list((tmp_path / "cache" / "fad_stats").glob("toy-v1-*.safetensors"))
    assert len(files) == 1
    calls = emb.calls
    second = reference_summary(emb, ref, 8000, progress=False)
    assert emb.calls == calls  # read from the cache, nothing embedded
    torch.testing.assert_close(first.stats.sigma, second.stats.sigma)
    torch.testing.assert_close(first.posteriors, second.posteriors)
    reference_summary(emb, ref * 0.5, 8000, progress=False)  # other data -> other cache entry
    assert len(list((tmp_path / "cache" / "fad_stats").glob("toy-v1-*.safetensors"))) == 2


def test_folder_source_equals_tensor_source(tmp_path):
    emb = ToyEmbedder()
    clips = noisy_tones(3, 0.5, 16000, 0.05, 2)
    for i, c in enumerate(clips):
        sf.write(tmp_path / f"clip{i}.wav", c[0].numpy(), 16000, subtype="FLOAT")
    from_files = summarize(emb, tmp_path, progress=False)
    from_tensor = summarize(emb, clips, 16000, progress=False)
    torch.testing.assert_close(from_files.stats.mu, from_tensor.stats.mu)
    assert from_files.num_clips == 3


def test_evaluate_generated_labels_every_metric_with_its_embedder(tmp_path, monkeypatch):
    monkeypatch.setenv("ARWAVE_CACHE", str(tmp_path))
    emb = ToyEmbedder()
    ref = noisy_tones(6, 0.5, 8000, 0.02, 3)
    same = evaluate_generated(ref, ref, embedder=emb, sample_rate=8000, paired=True, progress=False)
    assert same["embedders"] == ["toy"]
    assert same["fad"]["toy"] == pytest.approx(0.0, abs=1e-9)
    assert same["kl"]["toy"] == pytest.approx(0.0, abs=1e-12)
    assert same["kl_marginal"]["toy"] == pytest.approx(0.0, abs=1e-12)
    noisy = evaluate_generated(ref + 0.3 * torch.randn_like(ref), ref, embedder=emb, sample_rate=8000, progress=False)
    assert noisy["fad"]["toy"] > 0.01 and "kl" not in noisy and noisy["isc"]["toy"] >= 1.0


def test_fad_over_time_rises_when_rollouts_degrade(tmp_path):
    emb = ToyEmbedder()
    sr, n = 8000, 6
    ref = noisy_tones(8, 1.0, sr, 0.02, 4)
    ref_stats = summarize(emb, ref, sr, progress=False).stats
    # rollouts of 4 windows of 1 s whose noise grows with time
    rollouts = torch.cat([noisy_tones(n, 1.0, sr, 0.02 + 0.2 * k, 10 + k) for k in range(4)], -1)
    res = fad_over_time(rollouts, sr, ref_stats, embedder=emb, window_seconds=1.0, progress=False)
    assert res["times"] == [0.0, 1.0, 2.0, 3.0] and res["embedder"] == "toy"
    assert res["fad_acc"] == res["fad"][-1]
    assert all(a < b for a, b in zip(res["fad"], res["fad"][1:])), res["fad"]
    assert res["frames_per_window"] == [n * 10] * 4
    steady = fad_over_time(
        noisy_tones(n, 4.0, sr, 0.02, 20), sr, ref_stats, embedder=emb, window_seconds=1.0, progress=False
    )
    assert steady["fad_acc"] < res["fad_acc"]
    png = tmp_path / "fad.png"
    plot_fad_over_time({"degrading": res, "steady": steady}, png)
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_gaussian_stats_from_embeddings_is_unbiased():
    x = torch.tensor([[0.0], [2.0]])
    s = GaussianStats.from_embeddings(x)
    assert float(s.mu) == 1.0 and float(s.sigma) == 2.0 and s.n == 2
