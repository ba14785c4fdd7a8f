"""`arwave demo` (default): clips of the bundled generators, reconstructions of the bundled codecs, a small
generation-quality measurement and how each model was trained, in OUT/report.html; a missing bundle is
named and skipped; `--from-scratch` keeps the train-everything path."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import soundfile as sf

from arwave import pretrained
from arwave.cli.main import main

sys.path.insert(0, str(Path(__file__).parent))
from tiny_bundles import tiny_bundles  # noqa: E402

FAST = [
    "--seconds",
    "0.4",
    "--seeds",
    "2",
    "--rollout-seconds",
    "0.8",
    "--window-seconds",
    "0.4",
    "--rollouts",
    "2",
    "--embedder",
    "classifier:instrument-classifier",
    "--quiet",
    "--json",
]


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_demo_uses_the_bundles(tmp_path, monkeypatch, capsys):
    root, manifest = tiny_bundles()
    monkeypatch.setenv(pretrained.ENV, str(root))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--data", str(manifest), *FAST]) == 0
    result = last_json(capsys.readouterr().out)
    assert result["skipped"] == {} and result["data"] == str(manifest)
    assert result["bundled"] == [
        "cam",
        "aar",
        "nexttoken",
        "codec-latent",
        "codec-sat",
        "codec-rvq",
        "instrument-classifier",
    ]
    assert set(result["generation_quality"]) == {"cam", "aar", "nexttoken"}
    report = (out / "report.html").read_text()
    # how each model was trained: every card's command, data, steps
    for name in result["bundled"]:
        card = pretrained.read_card(root / name)
        assert card["training_command"] in report and card["training_data"] in report
    assert "not bundled" not in report
    # one clip per class + the other seed of the first class, per generator; the CAM rollout; codec pairs
    for name in ("cam", "aar", "nexttoken"):
        assert sorted(p.name for p in (out / "media").glob(f"{name}-?.wav")) == [f"{name}-{i}.wav" for i in range(3)]
        info = sf.info(out / "media" / f"{name}-0.wav")
        assert info.frames == round(0.4 * info.samplerate)
        assert f"media/{name}-0.wav" in report and f"{name}: high (clip 0)" in report
    assert sf.info(out / "media" / "cam-rollout-0.wav").frames == round(0.8 * 16000)
    assert (out / "media" / "cam-fad-over-time.png").is_file() and "media/cam-fad-over-time.png" in report
    for codec in ("codec-latent", "codec-sat", "codec-rvq"):
        assert sorted(p.name for p in (out / "media").glob(f"{codec}-*")) == [
            f"{codec}-{i}.{ext}" for i in range(2) for ext in ("png", "wav")
        ]  # original + reconstruction
        assert "MEL distance" in report
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["codec"] for r in metrics["codecs"]] == ["codec-latent", "codec-sat", "codec-rvq"]
    assert all(r["clips"] == 4 and r["MEL distance"] > 0 for r in metrics["codecs"])
    gq = metrics["generation_quality"]
    assert (
        gq["seconds"] == 0.4 and gq["seeds"] == 2 and [m["model"] for m in gq["models"]] == ["cam", "aar", "nexttoken"]
    )
    assert "Generation quality (a small measurement)" in report and "recognised &gt;= 0.9" in report


def bundled_demo(out, manifest):
    """The demo's function with the options of FAST, without spectrogram pictures (faster)."""
    from arwave.experiments.bundled_demo import run_bundled_demo

    return run_bundled_demo(
        out,
        data=manifest,
        seconds=0.4,
        seeds=2,
        rollout_seconds=0.8,
        window_seconds=0.4,
        rollouts=2,
        embedders=["classifier:instrument-classifier"],
        spectrograms=False,
        progress=False,
    )


def test_missing_bundles_are_named_and_skipped(tmp_path, monkeypatch):
    root, manifest = tiny_bundles()
    partial = tmp_path / "bundles"
    shutil.copytree(root, partial, ignore=shutil.ignore_patterns("aar", "codec-rvq"))
    monkeypatch.setenv(pretrained.ENV, str(partial))
    out = tmp_path / "demo"
    result = bundled_demo(out, manifest)
    assert (
        result["skipped"]["aar"] == "aar is not bundled in this install; train it with scripts/train-pretrained.sh aar"
    )
    assert result["skipped"]["codec-rvq"].startswith("codec-rvq is not bundled")
    assert "nexttoken cannot be loaded: codec-rvq is not bundled" in result["skipped"]["nexttoken"]
    assert [m["model"] for m in result["generation_quality"]["models"]] == ["cam"]
    report = (out / "report.html").read_text()
    assert "aar is not bundled in this install" in report and "nexttoken cannot be loaded" in report
    assert not list((out / "media").glob("aar-*")) and not list((out / "media").glob("nexttoken-*"))
    assert list((out / "media").glob("cam-*.wav")) and list((out / "media").glob("codec-sat-*.wav"))


def test_without_classifier_clips_but_no_measurement(tmp_path, monkeypatch):
    root, manifest = tiny_bundles()
    partial = tmp_path / "bundles"
    shutil.copytree(
        root, partial, ignore=shutil.ignore_patterns("instrument-classifier", "codec-*", "nexttoken", "cam")
    )
    (partial / "codec-sat").mkdir()
    for f in root.joinpath("codec-sat").iterdir():
        shutil.copy(f, partial / "codec-sat" / f.name)
    monkeypatch.setenv(pretrained.ENV, str(partial))
    out = tmp_path / "demo"
    result = bundled_demo(out, manifest)
    assert "generation_quality" not in result and "instrument-classifier" in result["skipped"]
    assert len(list((out / "media").glob("aar-?.wav"))) == 3
    assert "Not measured: instrument-classifier is not bundled" in (out / "report.html").read_text()


def test_options_of_the_two_paths_do_not_mix(tmp_path, monkeypatch, capsys):
    assert main(["demo", "--minutes", "5", "--out", str(tmp_path)]) == 2
    assert "--minutes: only with --from-scratch" in capsys.readouterr().err
    assert main(["demo", "--from-scratch", "--seeds", "3", "--out", str(tmp_path)]) == 2
    assert "--seeds: not used with --from-scratch" in capsys.readouterr().err
    calls = []

    def fake_run_demo(out, **kw):
        calls.append((out, kw))
        return {"report": f"{out}/report.html", "wall_minutes": 0.0, "classifier": {}, "runs": {}}

    import arwave.experiments.demo

    monkeypatch.setattr(arwave.experiments.demo, "run_demo", fake_run_demo)
    assert main(["demo", "--from-scratch", "--out", str(tmp_path), "--quiet"]) == 0
    assert calls == [
        (str(tmp_path), {"minutes": 10.0, "preset": "small", "seed": 0, "progress": False, "corpus_minutes": None})
    ]
    assert (
        main(["demo", "--from-scratch", "--minutes", "3", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    )
    assert calls[-1][1]["minutes"] == 3.0 and calls[-1][1]["preset"] == "tiny"


def test_nothing_bundled_is_a_report_not_a_crash(tmp_path, monkeypatch):
    empty = tmp_path / "bundles"
    empty.mkdir()
    monkeypatch.setenv(pretrained.ENV, str(empty))
    result = bundled_demo(tmp_path / "demo", None)
    assert result["bundled"] == [] and set(result["skipped"]) == set(pretrained.KNOWN)
    report = (tmp_path / "demo" / "report.html").read_text()
    assert "cam is not bundled in this install; train it with scripts/train-pretrained.sh cam" in report


def test_data_falls_back_to_a_40_minute_built_in_corpus(tmp_path, monkeypatch):
    """Without --data and without the bundles' training manifest on this machine."""
    import arwave.data.corpus
    from arwave.experiments.bundled_demo import choose_manifest

    seen = []
    monkeypatch.setattr(arwave.data.corpus, "ensure_corpus", lambda cfg: seen.append(cfg) or tmp_path / "m.jsonl")
    monkeypatch.setenv("ARWAVE_CACHE", str(tmp_path / "cache"))
    assert choose_manifest(None, {}, progress=False) == tmp_path / "m.jsonl"
    assert seen[0].corpus_minutes == 40.0 and seen[0].corpus_dir == str(tmp_path / "cache" / "corpus-demo")
    with pytest.raises(Exception, match="no such manifest"):
        choose_manifest(tmp_path / "missing.jsonl", {}, progress=False)
