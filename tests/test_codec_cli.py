"""`arwave encode` / `arwave decode` on a saved tiny run; evaluate_recon; bench_codec."""

import json
import math

import pytest
import soundfile as sf
import torch

from arwave.checkpoint import save_checkpoint
from arwave.cli.main import main
from arwave.codec.kind import build_model
from arwave.codec.presets import make_preset
from arwave.config import run_config_to_json
from arwave.paths import atomic_write_text


def make_run(tmp_path, bottleneck):
    torch.manual_seed(0)
    cfg = make_preset("tiny", bottleneck)
    model = build_model(cfg)
    run = tmp_path / f"codec-{bottleneck}"
    atomic_write_text(run / "config.json", run_config_to_json(cfg))
    save_checkpoint(run, 1, {"model": model.state_dict()}, state={"step": 1})
    return run, cfg


@pytest.mark.parametrize("bottleneck", ["msrq", "continuous"])
def test_encode_decode_cli_round_trip(tmp_path, capsys, bottleneck):
    run, cfg = make_run(tmp_path, bottleneck)
    wav = tmp_path / "in.wav"
    sr = 22050  # another rate: converted on load
    t = torch.arange(int(0.6 * sr)) / sr
    sf.write(wav, (0.3 * torch.sin(2 * math.pi * 330 * t)).numpy(), sr)
    enc, out = tmp_path / "x.safetensors", tmp_path / "out.wav"
    assert main(["encode", str(run), str(wav), str(enc), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["bottleneck"] == bottleneck and summary["count"] > 0
    assert main(["decode", str(run), str(enc), str(out), "--json"]) == 0
    data, rate = sf.read(out, always_2d=True)
    assert rate == cfg.model.sample_rate and data.shape[1] == cfg.model.channels
    assert data.shape[0] == round(0.6 * cfg.model.sample_rate)  # original length restored


def test_decode_with_the_wrong_codec_is_an_error(tmp_path, capsys):
    run_a, _ = make_run(tmp_path, "msrq")
    run_b, _ = make_run(tmp_path, "rvq")
    wav = tmp_path / "in.wav"
    sf.write(wav, 0.1 * torch.randn(8000).numpy(), 16000)
    enc = tmp_path / "x.safetensors"
    assert main(["encode", str(run_a), str(wav), str(enc)]) == 0
    assert main(["decode", str(run_b), str(enc), str(tmp_path / "o.wav")]) == 2
    assert "bottleneck" in capsys.readouterr().err


class Items:
    sample_rate = 16000

    def __init__(self, channels, n=3):
        self.channels, self.n = channels, n

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        g = torch.Generator().manual_seed(key[0])
        return {"audio": 0.1 * torch.randn(self.channels, 4000, generator=g), "label": 0, "index": key[0]}


def test_evaluate_recon(tmp_path):
    from arwave.evaluation.recon import evaluate_recon

    run, cfg = make_run(tmp_path, "rvq")
    out = evaluate_recon(run, Items(1), max_items=2, progress=False, batch_size=1)
    assert out["num_items"] == 2 and out["mel_distance"] > 0 and out["stft_distance"] > 0
    assert out["tokens_per_second"] == pytest.approx(4 * 16000 / 160)


def test_bench_codec_rows():
    from arwave.bench.codec import bench_codec

    rows = bench_codec(presets=("tiny",), seconds=0.3, repeats=1)
    assert [r["bottleneck"] for r in rows] == ["continuous", "msrq", "rvq"]
    assert all(r["encode_xrt"] > 0 and r["decode_xrt"] > 0 and r["params"] > 0 for r in rows)
