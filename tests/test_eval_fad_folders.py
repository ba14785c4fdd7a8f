"""`arwave eval fad REFERENCE_DIR EVAL_DIR`: FAD of two folders, per-file scores, the reference-statistics
cache and FAD∞, on small synthetic folders (sine tones vs noise) and known Gaussians."""

import csv
import json
import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from arwave.cli.main import main
from arwave.evaluation.embedders import Embedder
from arwave.evaluation.fad import GaussianStats, frechet_distance
from arwave.evaluation.fad_folders import ReferenceFrechet, fad_folders, fad_inf

RATE = 8000


class FrameStats(Embedder):
    """Frames of 800 samples -> (rms, zero-crossing rate, mean |x|, peak); counts the clips it embeds."""

    name, sample_rate, dim, cache_key = "framestats", RATE, 4, "framestats-v1"

    def __init__(self):
        self.clips = 0

    def _run(self, clips):
        self.clips += len(clips)
        out = []
        for x in clips:
            f = x[: x.shape[-1] // 800 * 800].reshape(-1, 800)
            out.append(
                (
                    torch.stack(
                        [
                            f.pow(2).mean(1).sqrt(),
                            (f[:, 1:] * f[:, :-1] < 0).float().mean(1),
                            f.abs().mean(1),
                            f.abs().amax(1),
                        ],
                        1,
                    ),
                    None,
                )
            )
        return out


def write_folder(folder, kind, n, seed, seconds=1.0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    t = np.arange(int(seconds * RATE)) / RATE
    for i in range(n):
        if kind == "tone":
            wave = rng.uniform(0.2, 0.6) * np.sin(2 * math.pi * rng.uniform(200, 800) * t)
        else:
            wave = rng.uniform(0.1, 0.3) * rng.standard_normal(len(t))
        sf.write(folder / f"{kind}-{i:02d}.wav", wave.astype(np.float32), RATE)
    return folder


@pytest.fixture()
def folders(tmp_path, monkeypatch):
    monkeypatch.setenv("ARWAVE_CACHE", str(tmp_path / "cache"))
    return (
        write_folder(tmp_path / "tones", "tone", 8, 0),
        write_folder(tmp_path / "tones2", "tone", 8, 1),
        write_folder(tmp_path / "noise", "noise", 8, 2),
    )


def test_fad_of_a_folder_with_itself_is_zero_and_tones_are_nearer_tones_than_noise(folders):
    tones, tones2, noise = folders
    emb = FrameStats()
    same = fad_folders(tones, tones, emb, progress=False)
    assert same["fad"] == pytest.approx(0.0, abs=1e-9)
    assert same["num_eval_files"] == same["num_reference_files"] == 8 and same["num_eval_frames"] == 80
    near, far = (
        fad_folders(tones, tones2, emb, progress=False)["fad"],
        fad_folders(tones, noise, emb, progress=False)["fad"],
    )
    assert 0 < near < far and far > 10 * near, (near, far)


def test_reference_statistics_are_cached_by_folder_contents(folders):
    tones, tones2, _ = folders
    emb = FrameStats()
    first = fad_folders(tones, tones2, emb, progress=False)
    assert first["reference_cache"] == "written" and emb.clips == 16  # reference + eval embedded
    second = fad_folders(tones, tones2, emb, progress=False)
    assert second["reference_cache"] == "hit" and emb.clips == 16 + 8  # only the eval folder again
    assert second["fad"] == pytest.approx(first["fad"], rel=1e-12)
    f = tones / "tone-03.wav"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))  # a changed file: a new key
    assert fad_folders(tones, tones2, emb, progress=False)["reference_cache"] == "written"
    assert fad_folders(tones, tones2, emb, cache=False, progress=False)["reference_cache"] == "off"


def test_per_file_scores_single_out_the_odd_file(folders, tmp_path):
    tones, _, noise = folders
    mixed = write_folder(tmp_path / "mixed", "tone", 5, 3)
    (noise / "noise-04.wav").rename(mixed / "zz-noise.wav")
    res = fad_folders(tones, mixed, FrameStats(), per_file=True, progress=False)
    rows = {r["file"]: r for r in res["per_file"]}
    assert sorted(rows) == [f"tone-{i:02d}.wav" for i in range(5)] + ["zz-noise.wav"]
    assert all(r["frames"] == 10 for r in rows.values())
    assert rows["zz-noise.wav"]["fad"] > 2 * max(r["fad"] for name, r in rows.items() if name != "zz-noise.wav")


def test_reference_frechet_equals_the_general_formula():
    g = torch.Generator().manual_seed(0)
    ref = GaussianStats.from_embeddings(torch.randn(300, 6, generator=g, dtype=torch.float64) * 2 + 1)
    score = ReferenceFrechet(ref)
    for n in (2, 5, 40):  # rank-deficient and full rank
        x = torch.randn(n, 6, generator=g, dtype=torch.float64)
        s = GaussianStats.from_embeddings(x)
        assert score(x) == pytest.approx(
            frechet_distance(s.mu, s.sigma, ref.mu, ref.sigma), rel=1e-7
        )  # eigh vs svd rounding
    one = torch.randn(1, 6, generator=g, dtype=torch.float64)  # one frame: covariance 0
    assert score(one) == pytest.approx(frechet_distance(one[0], torch.zeros(6, 6), ref.mu, ref.sigma), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fad_inf_on_known_gaussians_is_near_the_true_distance(seed):
    """Eval frames drawn from N(mu_1, S_1), exact reference N(0, I): FAD of 800 frames is biased upwards
    (by about 0.3-0.5 here); the extrapolation removes most of the bias."""
    D, N = 32, 800
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    s1 = q @ torch.diag(torch.linspace(0.5, 2.0, D, dtype=torch.float64)) @ q.T
    mu1 = torch.full((D,), 0.1, dtype=torch.float64)
    ref = GaussianStats(torch.zeros(D, dtype=torch.float64), torch.eye(D, dtype=torch.float64), 10**9)
    true = frechet_distance(mu1, s1, ref.mu, ref.sigma)
    x = mu1 + torch.randn(N, D, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s1).T
    score = ReferenceFrechet(ref)
    biased, fit = score(x), fad_inf(x, score, seed=seed)
    assert biased - true > 0.25
    assert abs(fit["fad_inf"] - true) < 0.05 * true
    assert abs(fit["fad_inf"] - true) < 0.35 * (biased - true)
    assert fit["slope"] > 0 and fit["r2"] > 0.8
    sizes = [p["frames"] for p in fit["points"]]
    assert sizes[0] == N // 5 and sizes[-1] == N and sizes == sorted(sizes)


def test_fad_inf_refuses_too_few_frames():
    ref = GaussianStats(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64), 100)
    with pytest.raises(Exception, match="at least 10 eval frames"):
        fad_inf(torch.randn(6, 2), ReferenceFrechet(ref))


def test_eval_fad_cli_writes_csv_and_fad_inf(folders, tmp_path, monkeypatch, capsys):
    from arwave.evaluation import fad_folders as module

    monkeypatch.setattr(module, "get_embedder", lambda name: FrameStats())
    tones, _, noise = folders
    out_csv = tmp_path / "out" / "per-file.csv"
    assert main(["eval", "fad", str(tones), str(noise), "--per-file", str(out_csv), "--inf", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    res = json.loads(lines[-1])
    assert lines[0].startswith(f"FAD [framestats] {noise} vs {tones}: {res['fad']:.4f} (8 files, 80 frames")
    assert lines[1].startswith(f"FAD∞ [framestats] {res['fad_inf']:.4f} (line through ")
    points = res["fad_inf_fit"]["points"]
    assert (points[0]["frames"], points[-1]["frames"]) == (16, 80) and math.isfinite(res["fad_inf"])
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["file"] for r in rows] == [f"noise-{i:02d}.wav" for i in range(8)]
    assert [float(r["fad"]) for r in rows] == pytest.approx([r["fad"] for r in res["per_file"]], rel=1e-5)
    assert main(["eval", "fad", str(tones), str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_eval_fad_cli_with_aisfx(tmp_path, capsys):
    pytest.importorskip("aisfx")
    tones = write_folder(tmp_path / "tones", "tone", 2, 0, seconds=3.5)  # 2 aisfx blocks per file
    noise = write_folder(tmp_path / "noise", "noise", 2, 1, seconds=3.5)
    assert main(["eval", "fad", str(tones), str(noise), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["embedder"] == "aisfx" and res["num_eval_frames"] == res["num_reference_frames"] == 4
    assert res["fad"] > 1 and res["reference_cache"] == "written"
    assert main(["eval", "fad", str(tones), str(tones), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["reference_cache"] == "hit" and res["fad"] == pytest.approx(0.0, abs=1e-6)
