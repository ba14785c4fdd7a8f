"""`arwave eval {recon,gen,fad-over-time}` end to end on tiny random runs and a small synthetic manifest."""

import json
import math

import numpy as np
import pytest
import soundfile as sf

from arwave.cli.main import main
from arwave.data.manifest import write_manifest


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    rows = []
    for i, (freq, split) in enumerate([(220, "train"), (330, "train"), (440, "test"), (550, "test"), (660, "val")]):
        t = np.arange(int(2.0 * 16000)) / 16000
        wave = 0.3 * np.sin(2 * math.pi * freq * t) * (1 + 0.2 * np.sin(2 * math.pi * 3 * t))
        path = root / f"tone{i}.wav"
        sf.write(path, np.stack([wave, wave], 1).astype(np.float32), 16000)
        rows.append(
            {
                "path": str(path),
                "duration": 2.0,
                "sample_rate": 16000,
                "channels": 2,
                "label": "low" if freq < 400 else "high",
                "split": split,
            }
        )
    return write_manifest(root / "manifest.jsonl", rows)


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_eval_recon_over_every_window(cam_run, manifest, capsys):
    assert main(["eval", "recon", str(cam_run / "codec"), "--data", str(manifest), "--seconds", "0.5", "--json"]) == 0
    out = last_json(capsys.readouterr().out)
    assert out["num_items"] == 8  # 2 test files × four 0.5 s windows
    assert out["mel_distance"] > 0 and math.isfinite(out["stft_distance"])
    assert out["bottleneck"] == "continuous"


def test_eval_gen_and_fad_over_time(cam_run, manifest, tmp_path, capsys):
    pytest.importorskip("aisfx")
    assert (
        main(
            [
                "eval",
                "gen",
                str(cam_run),
                "--seconds",
                "0.5",
                "--num",
                "3",
                "--reference",
                str(manifest),
                "--class",
                "low",
                "--out",
                str(tmp_path / "gen"),
                "--json",
            ]
        )
        == 0
    )
    out = last_json(capsys.readouterr().out)
    assert out["num_generated"] == 3 and out["num_reference"] == 8 and out["fad"]["aisfx"] > 0
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["gen-000.wav", "gen-001.wav", "gen-002.wav"]

    png = tmp_path / "fot.png"
    assert (
        main(
            [
                "eval",
                "fad-over-time",
                str(cam_run),
                "--seconds",
                "1.0",
                "--window",
                "0.5",
                "--num",
                "2",
                "--reference",
                str(manifest),
                "--plot",
                str(png),
                "--json",
            ]
        )
        == 0
    )
    res = last_json(capsys.readouterr().out)["runs"]["cam"]
    assert len(res["fad"]) == 2 and res["fad_acc"] == res["fad"][-1] and png.stat().st_size > 1000


def test_eval_rejects_unsupported_sampling_option(cam_run, manifest, capsys):
    assert main(["eval", "gen", str(cam_run), "--top-k", "5", "--reference", str(manifest)]) == 2
    assert "do not take --top-k" in capsys.readouterr().err
