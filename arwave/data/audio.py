"""Audio files in and out: decode (soundfile), resample (soxr), convert channels, write atomically.

Everything that touches an audio file goes through here, so every unusable file fails the same way:
one `AudioError` whose message names the file and the reason (cannot decode, empty, too short,
NaN/inf, silent).

Channel rule (`convert_channels`), C = channels in the file, K = channels wanted:
    K == C          -> unchanged
    C == 1          -> the mono channel duplicated K times
    K == 1          -> the average of all C channels
    C >  K >= 2     -> the first K channels (WAV/FLAC order: front-left, front-right, ...)
    1 < C < K       -> channels repeated cyclically (out[k] = in[k mod C])

A stream (`arwave stream`, the web app) is a 16-bit WAV written chunk by chunk (`WavStreamWriter`).
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
import soxr
import torch

from arwave.errors import ArwaveError
from arwave.paths import replacing

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff")

# extension -> (libsndfile container, default subtype). WAV is 16-bit PCM: plays everywhere, half the
# size of float, and its quantisation noise (-96 dBFS) is far below anything a model produces.
_WRITE_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".aif": ("AIFF", "PCM_16"),
    ".aiff": ("AIFF", "PCM_16"),
}
WRITE_EXTENSIONS = tuple(_WRITE_FORMATS)
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III")

SILENCE_PEAK = 1e-5  # a file whose |sample| never exceeds this is "silent" (-100 dBFS)
_BLOCK = 1 << 16  # frames per block when scanning a whole file


class AudioError(ArwaveError):
    """An audio file that cannot be used; the message names the file and the reason."""


# ---------------------------------------------------------------------------------------------------
# reading


def _exists(path: Path) -> None:
    if not path.exists():
        from arwave.paths import missing_reason

        reason = missing_reason(path)
        raise AudioError(f"{path}: {'no such file' if reason.startswith('no such') else reason}")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")


def audio_info(path: str | os.PathLike) -> dict[str, Any]:
    """Header-only facts: duration (s), sample_rate, channels, frames. Cheap: decodes nothing.
    (For MP3 the frame count is libsndfile's estimate; `check_audio` counts exactly.)"""
    path = Path(path)
    _exists(path)
    try:
        info = sf.info(str(path))
    except Exception as err:  # libsndfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(f"{path}: cannot decode ({_reason(err)})") from None
    return {
        "duration": info.frames / info.samplerate if info.samplerate else 0.0,
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "frames": int(info.frames),
    }


def check_audio(
    path: str | os.PathLike, min_samples: int = 1, min_seconds: float = 0.0, silence_peak: float = SILENCE_PEAK
) -> dict[str, Any]:
    """Decode the whole file (in blocks, so long files cost no memory) and raise AudioError if it is
    undecodable, empty, shorter than `min_samples` frames or `min_seconds`, holds NaN/inf, or is silent
    (peak below `silence_peak`). Returns audio_info's dict with the exact frame count and the peak."""
    path = Path(path)
    _exists(path)
    frames, peak = 0, 0.0
    try:
        with sf.SoundFile(str(path)) as f:
            rate, channels = int(f.samplerate), int(f.channels)
            for block in f.blocks(blocksize=_BLOCK, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    raise AudioError(f"{path}: contains NaN or infinite samples")
                frames += block.shape[0]
                if block.size:
                    peak = max(peak, float(np.abs(block).max()))
    except AudioError:
        raise
    except Exception as err:
        raise AudioError(f"{path}: cannot decode ({_reason(err)})") from None
    _check_length(path, frames, max(min_samples, math.ceil(min_seconds * rate)), rate)
    if peak < silence_peak:
        raise AudioError(f"{path}: silent (peak {peak:.2g} < {silence_peak:g})")
    return {"duration": frames / rate, "sample_rate": rate, "channels": channels, "frames": frames, "peak": peak}


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    channels: int | None = None,
    min_samples: int = 1,
    allow_silent: bool = True,
) -> torch.Tensor:
    """Decode a file to a float32 tensor (channels, samples) in [-1, 1]-ish, optionally resampled to
    `sample_rate` (soxr, high quality) and converted to `channels` (module docstring: channel rule).

    Raises AudioError if the file cannot be decoded, is empty or shorter than `min_samples` frames (at
    the file's own rate), holds NaN/inf, or (with allow_silent=False) is silent. Silence is allowed by
    default: a quiet generated file is still a valid file to measure."""
    path = Path(path)
    _exists(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (N, C)
    except Exception as err:
        raise AudioError(f"{path}: cannot decode ({_reason(err)})") from None
    _check_length(path, data.shape[0], min_samples, rate)
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if not allow_silent and float(np.abs(data).max()) < SILENCE_PEAK:
        raise AudioError(f"{path}: silent (peak below {SILENCE_PEAK:g})")
    if sample_rate is not None and int(sample_rate) != rate:
        data = resample(data, rate, int(sample_rate))
    wave = torch.from_numpy(np.ascontiguousarray(data.T))
    if channels is not None:
        wave = convert_channels(wave, channels)
    return wave


def _check_length(path: Path, frames: int, min_samples: int, rate: int) -> None:
    if frames == 0:
        raise AudioError(f"{path}: empty (0 samples)")
    if frames < min_samples:
        raise AudioError(f"{path}: too short ({frames} samples at {rate} Hz, need at least {min_samples})")


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    # libsndfile repeats the file name; keep only what it says about the file
    if "Error opening" in text and ": " in text:
        text = text.rsplit(": ", 1)[-1]
    if "does not exist" in text:  # what libsndfile says about an undecodable mp3 that does exist
        text = "not a recognised audio format, or corrupt"
    return text.rstrip(".")


# ---------------------------------------------------------------------------------------------------
# signal conversions


def resample(data: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """(N, C) float32 at from_rate -> (round(N * to_rate / from_rate), C) float32 at to_rate.
    soxr 'HQ' (20-bit, linear phase) is transparent for audio and fast enough to do on every load."""
    if from_rate == to_rate:
        return data
    out = soxr.resample(np.ascontiguousarray(data, dtype=np.float32), from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype=np.float32).reshape(-1, data.shape[1])


def convert_channels(wave: torch.Tensor, channels: int) -> torch.Tensor:
    """(C, N) -> (channels, N) by the channel rule in the module docstring."""
    have = wave.shape[0]
    if channels < 1:
        raise AudioError(f"cannot convert to {channels} channels")
    if have == channels:
        return wave
    if have == 1:
        return wave.expand(channels, -1).contiguous()
    if channels == 1:
        return wave.mean(dim=0, keepdim=True)
    if have > channels:
        return wave[:channels].contiguous()
    return wave[[k % have for k in range(channels)]].contiguous()


# ---------------------------------------------------------------------------------------------------
# writing


def write_audio(
    path: str | os.PathLike, wave: torch.Tensor | np.ndarray, sample_rate: int, subtype: str | None = None
) -> Path:
    """Write `wave` ((C, N) or (N,), tensor or array) to `path`, format from the extension (.wav
    16-bit PCM, .flac 16-bit, .ogg Vorbis, .opus, .mp3, .aif[f]); `subtype` overrides (e.g. "FLOAT").
    Integer formats are clipped to [-1, 1]. Atomic: written to a temp file in the same folder, then
    renamed over `path`, so a crash or error never leaves a half-written file or destroys an old one."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _WRITE_FORMATS:
        known = " ".join(_WRITE_FORMATS)
        raise AudioError(f"{path}: cannot write audio with extension {ext!r} (known: {known})")
    container, default_subtype = _WRITE_FORMATS[ext]
    subtype = (subtype or default_subtype).upper()

    if isinstance(wave, torch.Tensor):
        wave = wave.detach().to("cpu", torch.float32).numpy()
    data = np.asarray(wave, dtype=np.float32)
    if data.ndim == 1:
        data = data[None]
    if data.ndim != 2 or data.shape[1] == 0:
        raise AudioError(
            f"{path}: expected audio of shape (channels, samples) or (samples,), got {tuple(np.shape(wave))}"
        )
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: refusing to write NaN or infinite samples")
    if subtype not in _FLOAT_SUBTYPES:
        data = np.clip(data, -1.0, 1.0)

    try:
        with replacing(path) as tmp:
            sf.write(str(tmp), data.T, int(sample_rate), format=container, subtype=subtype)
    except Exception as err:
        raise AudioError(f"{path}: cannot write ({_reason(err)})") from err
    return path


class WavStreamWriter:
    """16-bit PCM WAV written chunk by chunk. Sizes are 0xFFFFFFFF until `close`, which patches them
    when the output is seekable (a file) and leaves them "unknown" otherwise (a pipe)."""

    UNKNOWN = 0xFFFFFFFF

    def __init__(self, f: BinaryIO, sample_rate: int, channels: int):
        self.f, self.sample_rate, self.channels = f, int(sample_rate), int(channels)
        self.data_bytes = 0
        self.f.write(self._header(self.UNKNOWN))
        self.f.flush()

    def _header(self, data_bytes: int) -> bytes:
        riff = self.UNKNOWN if data_bytes == self.UNKNOWN else 36 + data_bytes
        block = 2 * self.channels
        return (
            b"RIFF"
            + struct.pack("<I", riff)
            + b"WAVE"
            + b"fmt "
            + struct.pack("<IHHIIHH", 16, 1, self.channels, self.sample_rate, self.sample_rate * block, block, 16)
            + b"data"
            + struct.pack("<I", data_bytes)
        )

    def write(self, chunk: torch.Tensor) -> None:
        """chunk (channels, n) float in [-1, 1]."""
        data = np.clip(chunk.detach().cpu().float().numpy(), -1.0, 1.0)
        pcm = np.round(data.T * 32767.0).astype("<i2").tobytes()  # interleaved frames
        self.f.write(pcm)
        self.f.flush()
        self.data_bytes += len(pcm)

    def close(self) -> None:
        try:
            seekable = self.f.seekable()
        except (AttributeError, OSError):
            seekable = False
        if seekable:
            self.f.seek(0)
            self.f.write(self._header(self.data_bytes))
            self.f.seek(0, 2)
        self.f.flush()


def write_wav_stream(f: BinaryIO, chunks, sample_rate: int, channels: int) -> int:
    """Write a 16-bit WAV header, then each (channels, n) chunk as it comes; returns the samples written."""
    writer = WavStreamWriter(f, sample_rate, channels)
    samples = 0
    for chunk in chunks:
        writer.write(chunk)
        samples += chunk.shape[-1]
    writer.close()
    return samples
