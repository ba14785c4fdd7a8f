"""`arwave experiment aar-vs-nexttoken --aar NAME --nexttoken NAME`: claim (c) re-run on given (bundled)
models — nothing is trained, both are scored by the same embedders, and the steps behind each come
from its card."""

import json
import sys
from pathlib import Path

import pytest

from arwave import pretrained
from arwave.cli.main import main

sys.path.insert(0, str(Path(__file__).parent))
from tiny_bundles import tiny_bundles  # noqa: E402


@pytest.fixture
def bundles(monkeypatch):
    root, manifest = tiny_bundles()
    monkeypatch.setenv(pretrained.ENV, str(root))
    return root, manifest


def test_claim_c_on_the_bundled_models_trains_nothing(bundles, tmp_path, capsys):
    root, manifest = bundles
    out = tmp_path / "c"
    args = ["experiment", "aar-vs-nexttoken", "--aar", "aar", "--nexttoken", "nexttoken"]
    args += ["--classifier", "instrument-classifier", "--data", str(manifest), "--num-per-class", "1"]
    assert main([*args, "--seconds", "0.3", "--out", str(out), "--quiet", "--json"]) == 0
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["results"]) == {"AAR", "next-token"}
    for name, bundle in (("AAR", "aar"), ("next-token", "nexttoken")):
        result = summary["results"][name]
        assert result["steps"] == pretrained.read_card(root / bundle).get("steps", 0)
        assert result["audio_seconds"] == pytest.approx(2 * 0.3)  # one clip per class, two classes
        assert set(result["eval"]["fad"]) == set(result["eval"]["embedders"]) and len(result["eval"]["embedders"]) == 2
    assert not (out / "runs").exists()  # nothing trained
    assert (out / "report.html").is_file()
