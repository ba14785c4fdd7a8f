"""Note events -> stereo audio: a General MIDI SoundFont played by tinysoundfont, a synthetic room,
loudness normalisation (the built-in corpus's sound).

    instrument  one General MIDI program per file (INSTRUMENTS: program and the pitch range a piece is
                folded into)
    stereo      each voice on its own MIDI channel and pan position; a synthetic room reverb
    loudness    RMS normalised to -20 dBFS, then scaled down if the peak would exceed 0.95
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from arwave.errors import ArwaveError

# name -> (General MIDI program, 0-based; lowest and highest MIDI note the piece is folded into)
INSTRUMENTS: dict[str, tuple[int, int, int]] = {
    "piano": (0, 36, 96),
    "harpsichord": (6, 36, 89),
    "vibraphone": (11, 53, 89),
    "marimba": (12, 45, 96),
    "church_organ": (19, 36, 96),
    "nylon_guitar": (24, 40, 83),
    "steel_guitar": (25, 40, 83),
    "acoustic_bass": (32, 28, 60),
    "violin": (40, 55, 100),
    "viola": (41, 48, 88),
    "cello": (42, 36, 76),
    "string_ensemble": (48, 36, 96),
    "choir": (52, 40, 81),
    "trumpet": (56, 54, 86),
    "trombone": (57, 40, 72),
    "french_horn": (60, 41, 77),
    "alto_sax": (65, 49, 81),
    "oboe": (68, 58, 91),
    "bassoon": (70, 34, 72),
    "clarinet": (71, 50, 91),
    "flute": (73, 60, 96),
}
# eight General MIDI families: piano, chromatic percussion, organ, guitar, strings, brass, reed, pipe
DEFAULT_INSTRUMENTS = ("piano", "vibraphone", "church_organ", "nylon_guitar", "violin", "trumpet", "clarinet", "flute")

VELOCITY = 90
TAIL_SECONDS = 1.0  # release after the last note-off
FADE_SECONDS = 0.05  # linear fade at the very end (no click)
ROOM_SECONDS = 1.5  # reverb impulse response length
ROOM_WET = 0.3  # reverb level relative to the dry sound (unit-energy impulse response)
TARGET_RMS = 0.1  # -20 dBFS
MAX_PEAK = 0.95


def default_soundfont() -> Path:
    """TimGM6mb.sf2 from inside the pretty_midi package (found without importing it)."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.origin:
        raise ArwaveError(
            "no SoundFont given and pretty_midi (which ships TimGM6mb.sf2) is not installed: "
            "pip install pretty-midi, or pass --soundfont FILE.sf2"
        )
    path = Path(spec.origin).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise ArwaveError(f"{path}: the SoundFont that pretty_midi ships is missing; pass --soundfont FILE.sf2")
    return path


def parse_instruments(spec: str | Sequence[str] | None) -> list[str]:
    """'piano,violin' / ['piano', 'violin'] / None (the default eight) -> validated names."""
    if spec is None or spec == "" or spec == []:
        return list(DEFAULT_INSTRUMENTS)
    names = [n.strip().lower() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    if not names:
        raise ArwaveError(f"no instrument named in {spec!r}")
    unknown = [n for n in names if n not in INSTRUMENTS]
    if unknown:
        raise ArwaveError(f"unknown instrument(s) {', '.join(unknown)} (known: {', '.join(INSTRUMENTS)})")
    if len(set(names)) != len(names):
        raise ArwaveError(f"instrument listed twice in {','.join(names)}")
    return names


MIDI_CHANNELS = [c for c in range(16) if c != 9]  # channel 10 (index 9) is drums in General MIDI


class Renderer:
    """One tinysoundfont synth with the SoundFont loaded once; renders note events on one program,
    each voice on its own MIDI channel and stereo position, then adds a small synthetic room."""

    def __init__(self, soundfont: Path, sample_rate: int):
        try:
            import tinysoundfont
        except ImportError:
            raise ArwaveError("the built-in corpus needs tinysoundfont: pip install --no-deps tinysoundfont") from None
        self.sample_rate = sample_rate
        self.synth = tinysoundfont.Synth(samplerate=sample_rate)
        try:
            self.sfid = self.synth.sfload(str(soundfont))
        except Exception as err:
            raise ArwaveError(f"{soundfont}: cannot load SoundFont ({err})") from None
        self.soundfont = soundfont

    def silence(self) -> None:
        """Stop every voice and run the synth until it is silent: sounds_off only starts a fast
        release, whose last few ms would otherwise leak into the next file (renders must not depend
        on what was rendered before)."""
        self.synth.sounds_off()
        for _ in range(50):
            if not np.frombuffer(self.synth.generate_simple(self.sample_rate // 20), np.float32).any():
                break

    def render(
        self,
        events: list[tuple[float, float, int, int]],
        program: int,
        name: str,
        pans: Sequence[float],
        room_seed: int,
    ) -> np.ndarray:
        """-> (2, samples) float32, loudness-normalised, ending TAIL_SECONDS after the last note-off."""
        synth, rate = self.synth, self.sample_rate
        self.silence()
        channel = lambda voice: MIDI_CHANNELS[voice % len(MIDI_CHANNELS)]
        for voice, pan in enumerate(pans[: len(MIDI_CHANNELS)]):
            try:
                synth.program_select(channel(voice), self.sfid, 0, program)
            except Exception as err:
                raise ArwaveError(f"{self.soundfont}: no General MIDI program {program} ({name}): {err}") from None
            synth.control_change(channel(voice), 10, round(64 + 63 * pan))  # CC 10 = pan
        total = int(round((max(e[1] for e in events) + TAIL_SECONDS) * rate))
        messages = sorted(
            [(round(a * rate), 1, p, v) for a, _, p, v in events]
            + [(round(b * rate), 0, p, v) for _, b, p, v in events]
        )
        out = np.zeros((total, 2), np.float32)
        pos = 0
        for when, is_on, pitch, voice in messages:  # offs sort before ons at the same sample: repeats re-strike
            when = min(when, total)
            if when > pos:
                out[pos:when] = np.frombuffer(synth.generate_simple(when - pos), np.float32).reshape(-1, 2)
                pos = when
            if is_on:
                synth.noteon(channel(voice), pitch, VELOCITY)
            else:
                synth.noteoff(channel(voice), pitch)
        if total > pos:
            out[pos:] = np.frombuffer(synth.generate_simple(total - pos), np.float32).reshape(-1, 2)
        wave = add_room(out.T, rate, room_seed)
        fade = min(total, int(FADE_SECONDS * rate))
        wave[:, total - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return normalise(wave)


def add_room(dry: np.ndarray, rate: int, seed: int) -> np.ndarray:
    """dry + ROOM_WET * (dry convolved with a decaying-noise impulse response, independent noise per
    side): a cheap diffuse reverb that gives the files a real stereo image. RT60 in [0.6, 1.4] s."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    rt60 = 0.6 + 0.8 * rng.random()
    t = np.arange(int(ROOM_SECONDS * rate)) / rate
    envelope = np.exp(-6.908 * t / rt60)  # -60 dB (ln 1000 = 6.908) after rt60 seconds
    envelope[: int(0.01 * rate)] = 0.0  # 10 ms pre-delay before the first reflections
    ir = rng.standard_normal((2, t.size)) * envelope
    ir /= np.sqrt((ir**2).sum(axis=1, keepdims=True))  # unit energy per side
    wet = fftconvolve(dry, ir.astype(np.float32), axes=1)[:, : dry.shape[1]]
    return (dry + ROOM_WET * wet).astype(np.float32)


def normalise(wave: np.ndarray) -> np.ndarray:
    """RMS to TARGET_RMS, then scaled down so the peak stays <= MAX_PEAK."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    if rms <= 0:
        return wave
    gain = TARGET_RMS / rms
    gain = min(gain, MAX_PEAK / float(np.abs(wave).max()))
    return (wave * gain).astype(np.float32)
