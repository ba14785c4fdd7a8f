"""Audio I/O on real files the tests write: errors, resampling, channels, atomic writes, formats."""

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from arwave.data import audio as audio_mod
from arwave.data.audio import AudioError, audio_info, check_audio, convert_channels, load_audio, write_audio
from arwave.errors import ArwaveError


def sine(freq, rate, seconds, amp=0.5):
    t = np.arange(int(round(rate * seconds))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(x, rate):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()]


# ---------------------------------------------------------------------------------------------------
# unusable files: one error type, message names the file and the reason


@pytest.fixture()
def bad_files(tmp_path):
    files = {}
    files["corrupt"] = tmp_path / "corrupt.wav"
    files["corrupt"].write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage that is no audio" * 20)
    files["zero_bytes"] = tmp_path / "zero.flac"
    files["zero_bytes"].write_bytes(b"")
    files["no_frames"] = tmp_path / "noframes.wav"
    sf.write(files["no_frames"], np.zeros((0, 2), np.float32), 16000)
    files["nan"] = tmp_path / "nan.wav"
    x = sine(440, 16000, 0.5)
    x[100] = np.nan
    sf.write(files["nan"], x, 16000, subtype="FLOAT")
    files["inf"] = tmp_path / "inf.wav"
    x = sine(440, 16000, 0.5)
    x[7] = np.inf
    sf.write(files["inf"], x, 16000, subtype="FLOAT")
    files["one_sample"] = tmp_path / "one.wav"
    sf.write(files["one_sample"], np.array([0.5], np.float32), 16000)
    files["silent"] = tmp_path / "silent.wav"
    sf.write(files["silent"], np.zeros((8000, 2), np.float32), 16000)
    files["mp3_garbage"] = tmp_path / "fake.mp3"
    files["mp3_garbage"].write_bytes(b"\x00" * 5000)
    return files


@pytest.mark.parametrize(
    "name, reason",
    [
        ("corrupt", "cannot decode"),
        ("zero_bytes", "empty"),
        ("no_frames", "empty (0 samples)"),
        ("nan", "NaN"),
        ("inf", "NaN or infinite"),
        ("one_sample", "too short"),
        ("silent", "silent"),
        ("mp3_garbage", "cannot decode"),
    ],
)
def test_check_audio_reports_file_and_reason(bad_files, name, reason):
    path = bad_files[name]
    with pytest.raises(AudioError) as err:
        check_audio(path, min_samples=100)
    assert str(path) in str(err.value) and reason in str(err.value)
    assert isinstance(err.value, ArwaveError)


@pytest.mark.parametrize("name", ["corrupt", "zero_bytes", "no_frames", "nan", "inf", "one_sample", "mp3_garbage"])
def test_load_audio_rejects_unusable(bad_files, name):
    with pytest.raises(AudioError, match=str(bad_files[name].name)):
        load_audio(bad_files[name], min_samples=100)


def test_silence_is_allowed_by_load_but_not_when_asked(bad_files):
    wave = load_audio(bad_files["silent"])
    assert wave.shape == (2, 8000) and float(wave.abs().max()) == 0.0
    with pytest.raises(AudioError, match="silent"):
        load_audio(bad_files["silent"], allow_silent=False)


def test_missing_file_and_min_seconds(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "nope.wav")
    p = tmp_path / "short.wav"
    sf.write(p, sine(440, 16000, 0.05), 16000)  # 800 samples
    assert check_audio(p, min_seconds=0.05)["frames"] == 800
    with pytest.raises(AudioError, match="too short"):
        check_audio(p, min_seconds=0.1)


def test_audio_info_is_header_only_and_correct(tmp_path):
    p = tmp_path / "x.flac"
    sf.write(p, np.stack([sine(440, 22050, 1.5)] * 3, axis=1), 22050)
    info = audio_info(p)
    assert info == {"duration": pytest.approx(1.5), "sample_rate": 22050, "channels": 3, "frames": 33075}
    full = check_audio(p)
    assert full["frames"] == 33075 and full["peak"] == pytest.approx(0.5, abs=1e-3)


# ---------------------------------------------------------------------------------------------------
# resampling and channels


def test_resample_keeps_frequency_and_length(tmp_path):
    p = tmp_path / "sine8k.wav"
    sf.write(p, sine(1000, 8000, 1.0), 8000, subtype="FLOAT")
    wave = load_audio(p, sample_rate=48000)
    assert wave.dtype == torch.float32 and wave.shape == (1, 48000)
    x = wave[0].numpy()
    assert abs(peak_frequency(x, 48000) - 1000) <= 1.0
    # against the analytic 1 kHz sine at 48 kHz, away from the edges (filter transients)
    ref = sine(1000, 48000, 1.0)
    assert np.abs(x[2000:-2000] - ref[2000:-2000]).max() < 2e-3
    # and back down: 48 kHz -> 8 kHz -> same length as the original
    q = tmp_path / "sine48k.wav"
    write_audio(q, wave, 48000, subtype="FLOAT")
    assert load_audio(q, sample_rate=8000).shape == (1, 8000)


def test_resample_odd_ratio_length():
    x = np.random.default_rng(0).standard_normal((1001, 2)).astype(np.float32) * 0.1
    y = audio_mod.resample(x, 44100, 48000)
    assert y.shape == (round(1001 * 48000 / 44100), 2) and y.dtype == np.float32


def test_channel_rules(tmp_path):
    n = 1000
    five = np.stack([np.full(n, 0.1 * (k + 1), np.float32) for k in range(5)], axis=1)  # channel k = 0.1(k+1)
    p5 = tmp_path / "five.wav"
    sf.write(p5, five, 16000, subtype="FLOAT")
    assert torch.allclose(load_audio(p5, channels=2)[:, 0], torch.tensor([0.1, 0.2]))  # first two
    assert torch.allclose(load_audio(p5, channels=1)[:, 0], torch.tensor([0.3]))  # average
    assert load_audio(p5).shape == (5, n)
    mono = tmp_path / "mono.wav"
    sf.write(mono, sine(300, 16000, 0.1), 16000, subtype="FLOAT")
    m = load_audio(mono)
    st = load_audio(mono, channels=2)
    assert st.shape == (2, 1600) and torch.equal(st[0], m[0]) and torch.equal(st[1], m[0])  # duplicated
    stereo = torch.stack([torch.full((4,), 0.2), torch.full((4,), 0.4)])
    assert torch.allclose(convert_channels(stereo, 1), torch.full((1, 4), 0.3))
    assert torch.allclose(convert_channels(stereo, 3)[:, 0], torch.tensor([0.2, 0.4, 0.2]))  # cyclic


# ---------------------------------------------------------------------------------------------------
# writing


def test_write_shapes_types_and_clipping(tmp_path):
    x = sine(440, 16000, 0.25)
    write_audio(tmp_path / "a.wav", x, 16000)  # (N,) ndarray -> mono
    assert load_audio(tmp_path / "a.wav").shape == (1, 4000)
    loud = torch.tensor(np.stack([x * 3, -x]))  # (C, N) tensor, peaks at 1.5
    write_audio(tmp_path / "b.wav", loud, 16000)
    b = load_audio(tmp_path / "b.wav")
    assert b.shape == (2, 4000) and float(b.abs().max()) <= 1.0 and float(b[0].max()) > 0.99  # clipped
    assert sf.info(tmp_path / "b.wav").subtype == "PCM_16"
    write_audio(tmp_path / "c.wav", loud, 16000, subtype="FLOAT")  # float keeps the overshoot
    assert float(load_audio(tmp_path / "c.wav").abs().max()) == pytest.approx(1.5, abs=1e-4)
    with pytest.raises(AudioError, match="NaN"):
        write_audio(tmp_path / "d.wav", np.array([0.0, np.nan], np.float32), 16000)
    with pytest.raises(AudioError, match="extension"):
        write_audio(tmp_path / "e.xyz", x, 16000)
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "b.wav", "c.wav"]


@pytest.mark.parametrize(
    "ext, exact", [(".wav", True), (".flac", True), (".ogg", False), (".opus", False), (".mp3", False)]
)
def test_round_trip_formats(tmp_path, ext, exact):
    x = np.stack([sine(440, 48000, 1.0), sine(660, 48000, 1.0, amp=0.3)])
    p = tmp_path / f"r{ext}"
    write_audio(p, x, 48000)
    y = load_audio(p).numpy()
    assert y.shape[0] == 2 and audio_info(p)["sample_rate"] == 48000
    if exact:  # 16-bit PCM: error at most one quantisation step
        assert y.shape == x.shape and np.abs(y - x).max() <= 1.0 / 32767 + 1e-6
    else:  # lossy: same tones, similar level
        assert abs(y.shape[1] - x.shape[1]) < 0.05 * 48000
        for c, f in ((0, 440), (1, 660)):
            assert abs(peak_frequency(y[c], 48000) - f) <= 2
            assert np.sqrt((y[c] ** 2).mean()) == pytest.approx(np.sqrt((x[c] ** 2).mean()), rel=0.15)


def test_atomic_write_leaves_no_temp_and_failure_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "keep.wav"
    write_audio(p, sine(440, 16000, 0.5), 16000)
    before = p.read_bytes()
    assert os.listdir(tmp_path) == ["keep.wav"]

    real_write = audio_mod.sf.write

    def half_then_crash(file, data, *args, **kwargs):  # writes part of the file, then dies
        real_write(file, data[: len(data) // 2], *args, **kwargs)
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(audio_mod.sf, "write", half_then_crash)
    with pytest.raises(AudioError, match="disk full"):
        write_audio(p, sine(880, 16000, 2.0), 16000)
    monkeypatch.undo()
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["keep.wav"]

    # a real libsndfile refusal (MP3 cannot be 96 kHz) also leaves the old file alone
    m = tmp_path / "keep.mp3"
    write_audio(m, sine(440, 48000, 0.5), 48000)
    old = m.read_bytes()
    with pytest.raises(AudioError, match="keep.mp3"):
        write_audio(m, sine(440, 96000, 0.5), 96000)
    assert m.read_bytes() == old and sorted(os.listdir(tmp_path)) == ["keep.mp3", "keep.wav"]
