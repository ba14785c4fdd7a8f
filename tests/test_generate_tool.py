"""`arwave generate` as a tool (issue 13): a progress bar whose total is the model's real number of AR
steps, --quiet, --loudness (LUFS, never clipping), --include-prompt, and the closing line per file."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

import arwave
from arwave import finish
from arwave.cli.main import main
from arwave.registry import get_kind, preset


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_progress_total_is_the_number_of_ar_steps(cam_run):
    from arwave.models.aar.model import AAR
    from arwave.models.nexttoken.model import NextToken

    torch.manual_seed(0)
    cam = arwave.load(cam_run)
    aar = AAR(preset("aar", "tiny").model, codec=get_kind("codec").build_model(preset("codec", "tiny"), None)).eval()
    nt_cfg = preset("nexttoken", "tiny").model
    nt_cfg.context_frames = 20
    nt = NextToken(nt_cfg, codec=get_kind("codec").build_model(preset("codec", "tiny-rvq"), None)).eval()
    prompt = 0.1 * torch.randn(1, 3000)
    for model, seconds, sampling, steps in [
        (cam, 0.05, {}, 5),  # 800 samples / hop 160
        (aar, 0.7, {}, 30),  # 3 windows × 10 scales... per codec
        (nt, 0.1, {"prompt": prompt}, None),
    ]:
        with finish.progress_bar(model, seconds, sampling) as bar:
            model.generate(seconds, num=1, seed=0, **sampling)
            counted, total = bar.n, bar.total  # counted by the hook, before the bar is filled
        assert counted == total and total > 0
        if steps is not None:
            assert total == steps


def test_generate_prints_path_length_rate_and_a_bar(cam_run, tmp_path, capsys):
    out = tmp_path / "clip.wav"
    assert main(["generate", str(cam_run), "--seconds", "0.05", "--out", str(out), "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"wrote {out} (0.05 s, 16000 Hz, 2 channels)"
    assert "generating:" in captured.err and "/5 [" in captured.err and "× real time" in captured.err  # 5 frames


def test_quiet_prints_nothing(cam_run, tmp_path, capsys):
    assert main(["generate", str(cam_run), "--seconds", "0.05", "--out", str(tmp_path / "q.wav"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "" and (tmp_path / "q.wav").is_file()
    assert main(["stream", str(cam_run), "--seconds", "0.05", "--out", str(tmp_path / "s.wav"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_include_prompt_writes_the_prompt_then_the_continuation(cam_run, tmp_path, capsys):
    prompt = tmp_path / "prompt.wav"
    wave = 0.2 * np.sin(2 * np.pi * 300 * np.arange(3200) / 16000)
    sf.write(prompt, np.stack([wave, -wave], 1), 16000, subtype="FLOAT")
    out = tmp_path / "cont.wav"
    assert (
        main(
            [
                "generate",
                str(cam_run),
                "--seconds",
                "0.05",
                "--prompt",
                str(prompt),
                "--include-prompt",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    info = last_json(capsys.readouterr().out)
    audio, sr = sf.read(out, always_2d=True)
    assert audio.shape == (3200 + 800, 2) and info["seconds_written"] == pytest.approx(0.25)
    assert np.allclose(audio[:3200, 0], wave, atol=1e-4) and np.allclose(audio[:3200, 1], -wave, atol=1e-4)
    assert (
        main(["generate", str(cam_run), "--seconds", "0.05", "--include-prompt", "--out", str(tmp_path / "x.wav")]) == 2
    )
    assert "--include-prompt needs --prompt" in capsys.readouterr().err


def test_normalize_loudness_hits_the_target_without_clipping():
    import pyloudnorm

    rate = 16000
    t = torch.arange(rate) / rate
    quiet = 0.01 * torch.sin(2 * torch.pi * 440 * t).repeat(2, 1)
    out, lufs, warning = finish.normalize_loudness(quiet, rate, -14.0)
    assert warning is None and lufs == pytest.approx(-14.0, abs=0.05)
    assert pyloudnorm.Meter(rate).integrated_loudness(out.numpy().T) == pytest.approx(-14.0, abs=0.05)
    loud = 0.9 * torch.sign(torch.sin(2 * torch.pi * 100 * t))[None]  # a square wave near full scale
    out, lufs, warning = finish.normalize_loudness(loud, rate, -1.0)
    assert float(out.abs().max()) <= 10 ** (-0.1 / 20) + 1e-6 and lufs < -1.0 and "would clip" in warning
    out, lufs, warning = finish.normalize_loudness(torch.zeros(1, rate), rate, -14.0)
    assert lufs is None and "silent" in warning and not out.any()


def test_generate_loudness(cam_run, tmp_path, capsys):
    out = tmp_path / "loud.wav"
    assert main(["generate", str(cam_run), "--seconds", "0.5", "--out", str(out), "--loudness", "-20", "--json"]) == 0
    captured = capsys.readouterr()
    info = last_json(captured.out)
    audio, sr = sf.read(out, always_2d=True)
    level = info["loudness_lufs"][0]
    assert level is not None and np.abs(audio).max() <= 1.0
    assert level == pytest.approx(-20.0, abs=0.1) or "would clip" in captured.err
    assert f"{level:.1f} LUFS)" in captured.out
    assert (
        main(["generate", str(cam_run), "--seconds", "0.1", "--out", str(tmp_path / "s.wav"), "--loudness", "-14"]) == 2
    )
    assert "at least 0.4 s" in capsys.readouterr().err
    assert main(["generate", str(cam_run), "--seconds", "1", "--out", str(tmp_path / "s.wav"), "--loudness", "5"]) == 2
    assert "between -70 and 0" in capsys.readouterr().err
