"""Scores that ship inside music21 -> note events placed for one instrument (the built-in corpus's input).

pieces      chorales (4-part) and folk tunes from essenFolksong and oneills1850 (monophonic), each
            list shuffled with `seed`, then interleaved 1:1
tempo       quarter = 80..100 bpm, from a hash of the piece id; score tempo marks are ignored
pitch       whole piece shifted by octaves towards the instrument's range, stray notes folded in
stereo      each part (voice) at its own pan position
"""

from __future__ import annotations

import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arwave.data.manifest import group_hash

FOLK_COLLECTIONS = ("essenFolksong", "oneills1850")


@dataclass(frozen=True)
class Piece:
    id: str  # group key for the split, e.g. "bach/bwv269", "oneills1850/0001-0050#3"
    source: str  # music21 corpus path
    number: int | None = None  # tune number inside an ABC collection file


def piece_candidates(seed: int) -> list[Piece]:
    """Every usable piece in a fixed order: chorales and folk tunes, shuffled, interleaved 1:1."""
    from music21 import corpus

    chorales = [Piece(name, name) for name in dict.fromkeys(corpus.chorales.Iterator(returnType="filename"))]
    root = Path(corpus.__file__).parent
    folk = []
    for collection in FOLK_COLLECTIONS:
        for file in sorted((root / collection).glob("*.abc")):
            text = file.read_text(encoding="latin-1")
            for number in dict.fromkeys(int(n) for n in re.findall(r"^X:\s*(\d+)", text, re.M)):
                folk.append(Piece(f"{collection}/{file.stem}#{number}", f"{collection}/{file.name}", number))
    rng = random.Random(seed)
    rng.shuffle(chorales)
    rng.shuffle(folk)
    mixed = [p for pair in zip(chorales, folk) for p in pair]
    n = min(len(chorales), len(folk))
    return mixed + chorales[n:] + folk[n:]


def piece_notes(piece: Piece) -> tuple[str, list[tuple[float, float, int, int]]]:
    """(title, [(onset, offset, midi pitch, voice)] in quarter notes) of a piece; voice = part index.
    Ties are merged, grace notes dropped. Raises whatever music21 raises for a score it cannot read."""
    from music21 import corpus, stream

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = (
            corpus.parse(piece.source, number=piece.number) if piece.number is not None else corpus.parse(piece.source)
        )
        if isinstance(score, stream.Opus):
            score = score.scores[0]
        notes = []
        for voice, part in enumerate(score.parts or [score]):
            part.stripTies(inPlace=True)
            for n in part.flatten().notes:
                length = float(n.quarterLength)
                if length <= 0:
                    continue
                onset = float(n.offset)
                notes += [(onset, onset + length, int(p.midi), voice) for p in n.pitches]
    title = (score.metadata.title if score.metadata is not None else None) or piece.id
    return str(title), notes


def tempo_bpm(piece_id: str) -> int:
    """quarter = 80..100, fixed per piece."""
    return 80 + int(group_hash(f"tempo:{piece_id}") * 21)


def place_notes(
    notes: list[tuple[float, float, int, int]], bpm: float, clip_seconds: float, low: int, high: int
) -> tuple[list[tuple[float, float, int, int]], int]:
    """Quarter-note events -> seconds, starting at the first onset, cut at clip_seconds, pitches moved
    into [low, high]: whole piece by the octave shift that brings its median nearest the range's
    centre, then any note still outside folded in by octaves. Returns (events, octave shift)."""
    beat = 60.0 / bpm
    first = min(n[0] for n in notes)
    events = [
        ((a - first) * beat, (b - first) * beat, p, v) for a, b, p, v in notes if (a - first) * beat < clip_seconds
    ]
    median = float(np.median([e[2] for e in events]))
    shift = 12 * round(((low + high) / 2 - median) / 12)
    placed = []
    for onset, offset, pitch, voice in events:
        pitch += shift
        while pitch < low and pitch + 12 <= 127:
            pitch += 12
        while pitch > high and pitch - 12 >= 0:
            pitch -= 12
        placed.append((onset, min(offset, clip_seconds), pitch, voice))
    return placed, shift // 12


def voice_pans(piece_id: str, voices: int) -> list[float]:
    """Stereo position of each voice in [-1, 1]: a per-piece centre in [-0.3, 0.3], parts spread over
    0.8 around it (soprano left ... bass right), like players seated in a row."""
    centre = 0.6 * group_hash(f"pan:{piece_id}") - 0.3
    if voices == 1:
        return [centre]
    return [max(-1.0, min(1.0, centre + 0.8 * (v / (voices - 1) - 0.5))) for v in range(voices)]
