"""`arwave bench generation-quality` (issue 11, item 4): on tiny exported bundles through the CLI, and
its measurements on stand-in generators and a stand-in classifier whose answers are known."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch

import arwave
from arwave import pretrained
from arwave.bench import generation_quality as gq
from arwave.cli.main import main
from arwave.errors import ArwaveError
from arwave.evaluation.embedders import Embedder

sys.path.insert(0, str(Path(__file__).parent))
from tiny_bundles import tiny_bundles  # noqa: E402

CLS = "classifier:instrument-classifier"


@pytest.fixture
def bundles(monkeypatch):
    root, manifest = tiny_bundles()
    monkeypatch.setenv(pretrained.ENV, str(root))
    return root, manifest


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_cli_on_tiny_bundles(bundles, capsys):
    """Default models = the bundled cam, aar, nexttoken; clips of class C = `generate --class C --num SEEDS
    --seed 0`; recognition = the share of those the bundled classifier labels C; CAM alone gets rollouts."""
    _, manifest = bundles
    args = [
        "bench",
        "generation-quality",
        "--data",
        str(manifest),
        "--seeds",
        "2",
        "--seconds",
        "0.3",
        "--rollout-seconds",
        "0.6",
        "--window-seconds",
        "0.3",
        "--embedder",
        CLS,
        "--json",
    ]
    assert main(args) == 0
    out = last_json(capsys.readouterr().out)
    assert [m["model"] for m in out["models"]] == ["cam", "aar", "nexttoken"]
    assert out["embedders"] == [CLS] and out["floor"][CLS] > 0
    classifier = arwave.load("instrument-classifier")
    for row in out["models"]:
        assert row["classes"] == ["high", "low"] and row["clips"] == 4
        model = arwave.load(row["model"])
        predicted = {}
        for c in ("high", "low"):
            clips = model.generate(0.3, num=2, seed=0, class_label=c)
            for k, p in enumerate(classifier.posteriors(clips, model.sample_rate).argmax(-1)):
                predicted[f"{c}/{k}"] = classifier.label_names[int(p)]
        assert row["predicted"] == predicted
        assert row["recognition"] == sum(p == key.split("/")[0] for key, p in predicted.items()) / 4
        checks = {c["target"]: c for c in row["checks"]}
        assert checks["recognised >= 0.9"]["required"] == (row["kind"] != "nexttoken")
        assert row["pass"] == all(c["pass"] for c in row["checks"] if c["required"])
        assert math.isclose(row["fad_vs_floor"][CLS], row["fad"][CLS] / out["floor"][CLS])
    cam = out["models"][0]
    assert cam["rollout"][CLS]["times"] == [0.0, 0.3] and cam["rollout"][CLS]["rollouts"] == 2
    assert cam["rollout"][CLS]["ratio"] == cam["rollout"][CLS]["last"] / cam["rollout"][CLS]["first"]
    assert out["models"][1]["rollout"] is None and out["models"][2]["rollout"] is None
    assert out["pass"] == all(m["pass"] for m in out["models"])


def test_table_and_model_selection(bundles, capsys):
    _, manifest = bundles
    assert (
        main(
            [
                "bench",
                "generation-quality",
                "aar",
                "--data",
                str(manifest),
                "--classes",
                "low",
                "--seeds",
                "2",
                "--seconds",
                "0.3",
                "--embedder",
                CLS,
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "real-vs-real floor FAD(train, test): classifier:instrument-classifier" in text
    rows = [line for line in text.splitlines() if line.startswith("aar ")]
    assert len(rows) == 1 and rows[0].split()[2] == "2"  # 2 clips: one class, 2 seeds
    assert "recognised >= 0.9" in text and ("PASS" in text or "FAIL" in text) and "overall:" in text
    assert "cam" not in text.split("targets of issue 11:")[1]


def test_errors_are_one_line(bundles, capsys, tmp_path, monkeypatch):
    _, manifest = bundles
    assert main(["bench", "generation-quality", "cam", "--data", str(manifest), "--classes", "middle"]) == 2
    assert "cam: unknown class(es) middle (known: high, low)" in capsys.readouterr().err
    assert main(["bench", "generation-quality", "cam", "--data", str(manifest), "--seeds", "1"]) == 2
    assert "--seeds must be >= 2" in capsys.readouterr().err
    assert main(["bench", "generation-quality", "cam", "--data", str(manifest), "--rollout-seconds", "15"]) == 2
    assert "must hold at least two 10-s windows" in capsys.readouterr().err
    odd = StandIn(lambda c, k, n: tone(440, n))
    odd.label_names = ["high", "middle"]
    with pytest.raises(ArwaveError, match="the classifier instrument-classifier does not know class.es. middle"):
        gq.bench_generation_quality([odd], manifest, embedders=[CLS], progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(pretrained.ENV, str(empty))
    assert main(["bench", "generation-quality", "--data", str(manifest)]) == 2
    assert "none of cam, aar, nexttoken is bundled" in capsys.readouterr().err


def test_default_manifest_is_the_models_training_data(bundles):
    _, manifest = bundles
    assert gq.default_manifest(["cam"]) == str(manifest)
    assert gq.default_models() == ["cam", "aar", "nexttoken"]


# ---------------------------------------------------------------------------------------------------
# the measurements, on stand-ins whose right answers are known

SR = 16000


class PitchClassifier(Embedder):
    """Labels a clip 'high' when its zero-crossing rate says > 440 Hz; one 2-d frame per clip."""

    name, sample_rate, dim, cache_key = "classifier:pitch", SR, 2, "test-pitch-classifier"
    class_names = ["high", "low"]

    def _run(self, clips):
        out = []
        for x in clips:
            hz = float((x[1:] * x[:-1] < 0).float().sum()) * SR / (2 * len(x))
            p = torch.tensor([[1.0, 0.0]]) if hz > 440 else torch.tensor([[0.0, 1.0]])
            out.append((torch.tensor([[hz / 1000, float(x.abs().mean())]]), p))
        return out


class StandIn(torch.nn.Module):
    """A 'generator' with the interface the bench uses; `make(class, k, n)` returns clip k of a batch."""

    def __init__(self, make, kind="aar"):
        super().__init__()
        self.make, self.label_names, self.sample_rate, self.channels = make, ["high", "low"], SR, 2
        self.config = type("Cfg", (), {"kind": kind})()

    def generate(self, seconds, num=1, seed=None, class_label=None):
        n = int(round(seconds * SR))
        return torch.stack([self.make(class_label, k, n) for k in range(num)])


def tone(hz, n, amp=0.3):
    w = amp * torch.sin(2 * math.pi * hz * torch.arange(n) / SR)
    return torch.stack([w, 0.6 * w])


def measure(model, manifest, seconds=0.5, **kw):
    emb = PitchClassifier()
    refs, floor = gq.reference_and_floor([emb], manifest, progress=False)
    return gq.measure_model(model, manifest, emb, [emb], refs, floor, seeds=2, seconds=seconds, progress=False, **kw)


def test_recognition_counts_clips_of_the_requested_class(bundles):
    _, manifest = bundles
    right = measure(StandIn(lambda c, k, n: tone(880 if c == "high" else 220, n)), manifest)
    assert right["recognition"] == 1.0 and right["recognition_per_class"] == {"high": 1.0, "low": 1.0}
    always_low = measure(StandIn(lambda c, k, n: tone(220 + 50 * k, n)), manifest)
    assert always_low["recognition"] == 0.5 and always_low["recognition_per_class"] == {"high": 0.0, "low": 1.0}
    assert not always_low["checks"][0]["pass"] and not always_low["pass"]


def test_distinctness_is_relative_to_real_recordings(bundles):
    """Clips that ARE the class's real test recordings score exactly 1; identical seeds score 0."""
    _, manifest = bundles
    real = gq.real_clips_by_class(manifest, SR, 2, 0.5)
    assert [len(real[c]) for c in ("high", "low")] == [2, 2]
    copies = measure(StandIn(lambda c, k, n: real[c][k]), manifest)
    assert copies["distinct"]["per_class"] == {"high": pytest.approx(1.0), "low": pytest.approx(1.0)}
    same = measure(StandIn(lambda c, k, n: tone(880 if c == "high" else 220, n)), manifest)
    assert same["distinct"]["min"] == 0.0 and same["distinct"]["generated_mel"]["low"] == 0.0
    check = next(ch for ch in same["checks"] if ch["target"].startswith("distinct"))
    assert not check["pass"]


def test_matched_floor_is_real_train_clips_in_the_same_number_and_format(bundles):
    """A 'generator' that returns exactly those train clips has FAD = its matched floor."""
    _, manifest = bundles
    train = gq.real_clips_by_class(manifest, SR, 2, 0.5, split="train", limit=2)
    row = measure(StandIn(lambda c, k, n: train[c][k]), manifest)
    assert row["matched_clips"] == 4 and row["fad_vs_floor_matched"]["classifier:pitch"] == pytest.approx(1.0)
    other = measure(StandIn(lambda c, k, n: tone(880 if c == "high" else 220, n)), manifest)
    assert other["floor_matched"] == row["floor_matched"] and other["fad_vs_floor_matched"]["classifier:pitch"] != 1.0


def test_silent_and_constant_clips_are_flagged(bundles):
    _, manifest = bundles

    def make(c, k, n):
        if c == "low" and k == 0:
            return torch.zeros(2, n)  # silent (not also 'constant')
        if c == "low":
            return 0.1 * torch.randn(2, n, generator=torch.Generator().manual_seed(k))  # stationary noise
        steps = torch.arange(n) * 8 // n  # a melody: 8 notes
        w = 0.3 * torch.sin(2 * math.pi * (440 + 110 * steps + 37 * k) * torch.arange(n) / SR)
        return torch.stack([w, w])

    row = measure(StandIn(make), manifest, seconds=1.0)
    assert row["silent"] == ["low/0"] and row["constant"] == ["low/1"]
    check = next(ch for ch in row["checks"] if ch["target"] == "no silent or constant clip")
    assert check["value"] == 2 and not check["pass"]


def test_temporal_variation_separates_music_from_stationary_sound(bundles):
    _, manifest = bundles
    n = 2 * SR
    noise = 0.1 * torch.randn(1, n, generator=torch.Generator().manual_seed(0))
    assert gq.temporal_variation(noise, SR) < gq.CONSTANT_VARIATION
    assert gq.temporal_variation(tone(440, n), SR) < gq.CONSTANT_VARIATION
    notes = torch.cat([tone(f, n // 4) for f in (220, 330, 550, 880)], dim=-1)
    assert gq.temporal_variation(notes, SR) > 2 * gq.CONSTANT_VARIATION
    assert gq.temporal_variation(tone(440, 1000), SR) is None  # too short for two segments


def test_rollout_fad_over_time_for_cam_kinds_only(bundles):
    _, manifest = bundles
    make = lambda c, k, n: tone((880 if c == "high" else 220) * (1 + torch.arange(n) / n), n)
    cam = measure(StandIn(make, kind="cam"), manifest, seconds=0.3, rollout_seconds=0.9, window_seconds=0.3, rollouts=2)
    r = cam["rollout"]["classifier:pitch"]
    assert r["times"] == [0.0, pytest.approx(0.3), pytest.approx(0.6)] and len(r["fad"]) == 3
    assert r["ratio"] == pytest.approx(r["fad"][-1] / r["fad"][0])
    assert any(ch["target"].startswith("rollout FAD") for ch in cam["checks"])
    aar = measure(StandIn(make), manifest, seconds=0.3, rollout_seconds=0.9, window_seconds=0.3)
    assert aar["rollout"] is None
