"""`arwave generate` / `arwave stream` on a tiny CAM run (random weights) with a tiny random causal codec,
both saved as run folders the way training saves them."""

import io
import json
import struct

import numpy as np
import pytest
import soundfile as sf
import torch

from arwave.cli.main import main
from arwave.data.audio import WavStreamWriter


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_generate_writes_numbered_files(cam_run, tmp_path, capsys):
    out = tmp_path / "clip.wav"
    code = main(
        [
            "generate",
            str(cam_run),
            "--seconds",
            "0.05",
            "--out",
            str(out),
            "--num",
            "2",
            "--seed",
            "3",
            "--class",
            "low",
            "--k-inf",
            "0.05",
            "--head-steps",
            "2",
            "--temperature",
            "0.9",
            "--cfg",
            "1.5",
            "--json",
        ]
    )
    assert code == 0
    info = last_json(capsys.readouterr().out)
    assert info["files"] == [str(tmp_path / "clip-0.wav"), str(tmp_path / "clip-1.wav")]
    a, sr = sf.read(tmp_path / "clip-0.wav", always_2d=True)
    assert sr == 16000 and a.shape == (800, 2)
    # same seed and options -> the same audio
    main(
        [
            "generate",
            str(cam_run),
            "--seconds",
            "0.05",
            "--out",
            str(tmp_path / "again.wav"),
            "--num",
            "2",
            "--seed",
            "3",
            "--class",
            "1",
            "--k-inf",
            "0.05",
            "--head-steps",
            "2",
            "--temperature",
            "0.9",
            "--cfg",
            "1.5",
        ]
    )
    assert np.array_equal(sf.read(tmp_path / "again-0.wav")[0], sf.read(tmp_path / "clip-0.wav")[0])


def test_generate_with_prompt(cam_run, tmp_path, capsys):
    prompt = tmp_path / "prompt.wav"
    sf.write(prompt, 0.1 * np.random.default_rng(0).standard_normal((24000, 1)), 48000)  # resampled + upmixed
    code = main(
        [
            "generate",
            str(cam_run),
            "--seconds",
            "0.03",
            "--out",
            str(tmp_path / "cont.wav"),
            "--prompt",
            str(prompt),
            "--precision",
            "bfloat16",
            "--threads",
            "1",
        ]
    )
    assert code == 0
    audio = sf.read(tmp_path / "cont.wav", always_2d=True)[0]
    assert audio.shape == (480, 2) and np.isfinite(audio).all()


def test_unsupported_option_is_one_line_error(cam_run, tmp_path, capsys):
    code = main(["generate", str(cam_run), "--seconds", "0.05", "--out", str(tmp_path / "x.wav"), "--top-k", "5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "cam" in err and "--top-k" in err
    code = main(["generate", str(cam_run), "--seconds", "0.05", "--out", str(tmp_path / "x.wav"), "--class", "zebra"])
    assert code == 2 and "zebra" in capsys.readouterr().err
    np.save(tmp_path / "e.npy", np.ones(4, dtype=np.float32))
    code = main(
        [
            "generate",
            str(cam_run),
            "--seconds",
            "0.05",
            "--out",
            str(tmp_path / "x.wav"),
            "--embedding",
            str(tmp_path / "e.npy"),
        ]
    )
    assert code == 2 and "--embedding" in capsys.readouterr().err


def test_stream_to_file_and_json(cam_run, tmp_path, capsys):
    out = tmp_path / "live.wav"
    assert main(["stream", str(cam_run), "--seconds", "0.1", "--out", str(out), "--seed", "2", "--json"]) == 0
    captured = capsys.readouterr()
    info = last_json(captured.out)
    assert info["audio_s"] == pytest.approx(0.1) and info["rtf"] > 0 and info["first_audio_ms"] > 0
    assert "real time" in captured.err and "first audio" in captured.err
    streamed, sr = sf.read(out, always_2d=True, dtype="float32")
    assert sr == 16000 and streamed.shape == (1600, 2)
    # the header was patched to the true length, and the audio equals `generate` with the same seed
    main(["generate", str(cam_run), "--seconds", "0.1", "--out", str(tmp_path / "gen.wav"), "--seed", "2"])
    generated = sf.read(tmp_path / "gen.wav", always_2d=True, dtype="float32")[0]
    np.testing.assert_allclose(streamed, generated, atol=2 / 32767)


def test_stream_to_stdout(cam_run, capsysbinary):
    assert main(["stream", str(cam_run), "--seconds", "0.05", "--seed", "1"]) == 0
    captured = capsysbinary.readouterr()
    data = captured.out
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt "
    channels, rate = struct.unpack("<HI", data[22:28])
    assert (channels, rate) == (2, 16000) and len(data) - 44 == 800 * 2 * 2
    # pytest's capture is seekable, so the sizes were patched (a pipe keeps 0xFFFFFFFF: next test)
    assert sf.read(io.BytesIO(data), dtype="int16", always_2d=True)[0].shape == (800, 2)
    assert b"real time" in captured.err


class Pipe(io.BytesIO):
    def seekable(self):
        return False

    def seek(self, *args):
        raise io.UnsupportedOperation("pipe")


def test_wav_stream_writer_on_a_pipe():
    pipe = Pipe()
    writer = WavStreamWriter(pipe, 16000, 2)
    header = pipe.getvalue()
    assert len(header) == 44  # audio follows the header at once
    chunks = [torch.rand(2, 160) * 2 - 1 for _ in range(3)]
    for c in chunks:
        writer.write(c)
    writer.close()
    data = pipe.getvalue()
    assert struct.unpack("<I", data[4:8])[0] == 0xFFFFFFFF and struct.unpack("<I", data[40:44])[0] == 0xFFFFFFFF
    pcm = np.frombuffer(data[44:], dtype="<i2").reshape(-1, 2)
    np.testing.assert_array_equal(pcm, np.round(torch.cat(chunks, 1).T.numpy() * 32767).astype(np.int16))
    # with the sizes filled in, it is an ordinary WAV file
    fixed = data[:4] + struct.pack("<I", len(data) - 8) + data[8:40] + struct.pack("<I", len(data) - 44) + data[44:]
    np.testing.assert_array_equal(sf.read(io.BytesIO(fixed), dtype="int16", always_2d=True)[0], pcm)


def test_stream_refuses_json_to_stdout(cam_run, capsys):
    assert main(["stream", str(cam_run), "--json"]) == 2
    assert "--json" in capsys.readouterr().err
