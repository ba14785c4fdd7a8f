"""`arwave bench codec-quality --labelled`: the classifier's recognition of labelled test clips before
and after a codec reconstructs them — a codec that loses a class shows it in `recon`, not in `real`."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from arwave.bench.codec_quality import recognised_after_reconstruction
from arwave.errors import ArwaveError

RATE = 8000


def _labelled(folder):
    """Two classes of tones, two test files each (and one train file, never used)."""
    folder.mkdir()
    t = np.arange(RATE) / RATE
    rows = []
    tones = [("low", 220, "test"), ("low", 250, "test"), ("high", 1800, "test"), ("high", 2000, "test")]
    for i, (label, freq, split) in enumerate([*tones, ("low", 230, "train")]):
        path = folder / f"{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE)
        rows.append({"path": str(path), "label": label, "split": split, "duration": 1.0})
    (folder / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "m.jsonl"


class PitchJudge:
    """A stand-in classifier: 'low' when most energy lies below 1 kHz."""

    label_names = ["low", "high"]

    def posteriors(self, waves, rate):
        out = []
        for w in waves:
            spec = torch.fft.rfft(w.mean(0)).abs() ** 2
            freqs = torch.fft.rfftfreq(w.shape[-1], 1 / rate)
            low = float(spec[freqs < 1000].sum() / spec.sum())
            out.append([low, 1 - low])
        return torch.tensor(out)


class ToneCodec:
    """Reconstructs everything as `freq` Hz (None: the input itself)."""

    sample_rate, channels = RATE, 1

    def __init__(self, freq=None):
        self.freq = freq

    def reconstruct(self, x):
        if self.freq is None:
            return x.clone()
        t = torch.arange(x.shape[-1]) / RATE
        return (0.3 * torch.sin(2 * torch.pi * self.freq * t)).expand_as(x).clone()


def test_recognition_after_reconstruction_sees_the_class_a_codec_loses(tmp_path):
    manifest = _labelled(tmp_path / "d")
    faithful = recognised_after_reconstruction(ToneCodec(), PitchJudge(), manifest, seconds=0.5)
    assert faithful == {"high": {"clips": 2, "real": 1.0, "recon": 1.0}, "low": {"clips": 2, "real": 1.0, "recon": 1.0}}
    lossy = recognised_after_reconstruction(ToneCodec(freq=1900), PitchJudge(), manifest, seconds=0.5)
    assert lossy["low"] == {"clips": 2, "real": 1.0, "recon": 0.0} and lossy["high"]["recon"] == 1.0


def test_recognition_needs_labels_the_classifier_knows(tmp_path):
    manifest = _labelled(tmp_path / "d")

    class OtherJudge(PitchJudge):
        label_names = ["cat", "dog"]

    with pytest.raises(ArwaveError, match="no test clips labelled with a class"):
        recognised_after_reconstruction(ToneCodec(), OtherJudge(), manifest, seconds=0.5)
