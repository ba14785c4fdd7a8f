"""The built-in corpus: real music rendered offline, so every command works on a fresh machine.

Scores that ship inside music21 (Bach chorales, 4-part; German and Irish folk tunes from
essenFolksong and oneills1850, monophonic; arwave.data.scores) are rendered through a General MIDI
SoundFont (by default TimGM6mb.sf2, which ships inside pretty_midi) with tinysoundfont
(arwave.data.synth) into single-instrument recordings: one piece (an excerpt of at most `clip_seconds`)
on one instrument per file, 48 kHz stereo FLAC, labelled by instrument. This module decides which
piece goes to which split and instrument, and keeps the rendered files cached.

    split       by piece: a piece's split is the hash rule of `manifest.split_of(piece id)`; the
                next item comes from the split furthest below its share (0.8/0.1/0.1 of the audio),
                so even a tiny corpus has all three splits and a large one has them in proportion
    instrument  each new item goes to the instrument with the least audio so far in its split
                (ties: least audio overall), so every split covers the instruments evenly

Cache: `out_dir/corpus.json` records the parameters that fix the audio (instruments, SoundFont hash,
rate, seed, clip length, versions) and every rendered item in order. Items are a prefix-stable
sequence, so a second call reuses every file and a larger `minutes` renders only the missing tail;
`manifest.jsonl` always lists exactly the shortest prefix reaching `minutes`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from arwave.console import bars
from arwave.data.audio import write_audio
from arwave.data.manifest import MANIFEST_NAME, SPLITS, group_hash, read_manifest, split_of, write_manifest
from arwave.data.scores import Piece, piece_candidates, piece_notes, place_notes, tempo_bpm, voice_pans
from arwave.data.synth import INSTRUMENTS, Renderer, default_soundfont, parse_instruments
from arwave.errors import ArwaveError
from arwave.paths import atomic_write_text, cache_root

CORPUS_VERSION = 2
STATE_NAME = "corpus.json"

MIN_PIECE_SECONDS = 4.0  # shorter pieces are skipped
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train / val / test, by piece


def default_corpus_dir() -> Path:
    """$ARWAVE_CACHE/corpus, else ~/.cache/arwave/corpus."""
    return cache_root() / "corpus"


# ---------------------------------------------------------------------------------------------------
# the cached build


@dataclass
class CorpusReport:
    manifest: Path
    files: int
    seconds: float
    instruments: list[str]
    splits: dict[str, int]
    rendered: int = 0  # files rendered by this call
    reused: int = 0  # files taken from the cache
    rendered_seconds: float = 0.0
    render_wall: float = 0.0  # wall time spent parsing + synthesising + writing
    render_cpu: float = 0.0  # CPU time of this process for the same work
    skipped_pieces: list[str] = field(default_factory=list)
    soundfont: str = ""

    @property
    def realtime_factor(self) -> float:
        return self.rendered_seconds / self.render_wall if self.render_wall > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest),
            "files": self.files,
            "minutes": round(self.seconds / 60, 3),
            "instruments": self.instruments,
            "splits": self.splits,
            "rendered": self.rendered,
            "reused": self.reused,
            "rendered_minutes": round(self.rendered_seconds / 60, 3),
            "render_seconds": round(self.render_wall, 3),
            "x_realtime": round(self.realtime_factor, 1),
            "render_cpu_seconds": round(self.render_cpu, 3),
            "x_realtime_cpu": round(self.rendered_seconds / self.render_cpu, 1) if self.render_cpu > 0 else 0.0,
            "skipped_pieces": self.skipped_pieces,
            "soundfont": self.soundfont,
        }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _identity(instruments: list[str], soundfont: Path, sample_rate: int, seed: int, clip_seconds: float) -> dict:
    """Everything that fixes the audio of item i. Same identity -> same files."""
    return {
        "version": CORPUS_VERSION,
        "instruments": instruments,
        "programs": [INSTRUMENTS[n][0] for n in instruments],
        "soundfont": soundfont.name,
        "soundfont_sha256": _sha256(soundfont),
        "sample_rate": int(sample_rate),
        "seed": int(seed),
        "clip_seconds": float(clip_seconds),
        "music21": importlib.metadata.version("music21"),
    }


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Exclusive lock on the corpus folder, so parallel processes (DDP ranks) render it once."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: no lock
            pass
        yield


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=1)
    if path.is_file() and path.read_text() == text:
        return
    atomic_write_text(path, text)


def _log_stderr(message: str) -> None:
    from arwave.console import note

    note(f"arwave: {message}")


def render_corpus(
    out_dir: str | os.PathLike | None = None,
    minutes: float = 6.0,
    instruments: str | Sequence[str] | None = None,
    soundfont: str | os.PathLike | None = None,
    sample_rate: int = 48000,
    seed: int = 0,
    clip_seconds: float = 15.0,
    progress: bool = True,
    log: Callable[[str], None] | None = _log_stderr,
) -> CorpusReport:
    """Build (or reuse) the corpus in `out_dir` with at least `minutes` of audio; see module docstring."""
    out_dir = Path(out_dir).expanduser() if out_dir else default_corpus_dir()
    names = parse_instruments(instruments)
    font = Path(soundfont).expanduser() if soundfont else default_soundfont()
    if not font.is_file():
        raise ArwaveError(f"{font}: no such SoundFont file")
    if minutes <= 0:
        raise ArwaveError(f"--minutes must be positive, got {minutes}")
    if clip_seconds < MIN_PIECE_SECONDS:
        raise ArwaveError(f"clip_seconds must be at least {MIN_PIECE_SECONDS}, got {clip_seconds}")
    log = log or (lambda message: None)
    identity = _identity(names, font, sample_rate, seed, clip_seconds)
    needed = minutes * 60.0

    with _locked(out_dir):
        state_path = out_dir / STATE_NAME
        state = json.loads(state_path.read_text()) if state_path.is_file() else None
        if state is not None and state.get("identity") != identity:
            log(f"corpus parameters changed in {out_dir}: rendering it again")
            for item in state.get("items", []):
                (out_dir / item["file"]).unlink(missing_ok=True)
            state = None
        state = state or {"identity": identity, "items": [], "cursor": {s: 0 for s in SPLITS}, "skipped": []}
        items: list[dict] = state["items"]

        # the prefix we need: cached items first (re-rendering any whose file has gone), then new ones
        count, have = 0, 0.0
        while count < len(items) and have < needed:
            have += items[count]["duration"]
            count += 1
        missing = [i for i in range(count) if not (out_dir / items[i]["file"]).is_file()]
        renderer, candidates, exhausted = None, None, set()
        report_rendered, rendered_seconds, t0, c0 = 0, 0.0, time.perf_counter(), time.process_time()
        bar = None
        if missing or have < needed:
            renderer = Renderer(font, sample_rate)
            bar = tqdm(
                total=round(needed),
                initial=round(have),
                unit="s",
                desc="rendering corpus",
                disable=not bars(progress),
                leave=False,
            )
        for i in missing:
            item = items[i]
            _, notes = piece_notes(Piece(item["piece"], item["source"], item.get("number")))
            _render_item(renderer, out_dir, item, notes)
            report_rendered += 1
            rendered_seconds += item["duration"]
        while have < needed:
            if candidates is None:
                candidates = piece_candidates(seed)
            split = _next_split(items, exhausted)
            if split is None:
                log(f"the score collection is exhausted at {have / 60:.1f} min")
                break
            piece = _next_piece(candidates, state["cursor"], split)
            if piece is None:
                exhausted.add(split)
                continue
            item = _new_item(renderer, out_dir, piece, split, items, names, clip_seconds, state["skipped"])
            if item is None:
                continue
            items.append(item)
            count = len(items)
            have += item["duration"]
            report_rendered += 1
            rendered_seconds += item["duration"]
            _write_json(state_path, state)
            if bar is not None:
                bar.update(round(have) - bar.n)
        if bar is not None:
            bar.close()
        render_wall, render_cpu = time.perf_counter() - t0, time.process_time() - c0

        rows = _manifest_rows(out_dir, items[:count])
        state["minutes"] = minutes
        _write_json(state_path, state)
        manifest = out_dir / MANIFEST_NAME
        if not manifest.is_file() or read_manifest(manifest) != rows:  # untouched when nothing changed
            write_manifest(manifest, rows)

    report = CorpusReport(
        manifest=manifest,
        files=len(rows),
        seconds=sum(r["duration"] for r in rows),
        instruments=sorted({r["label"] for r in rows}),
        splits={s: sum(r["split"] == s for r in rows) for s in SPLITS},
        rendered=report_rendered,
        reused=len(rows) - report_rendered,
        rendered_seconds=rendered_seconds,
        render_wall=render_wall if report_rendered else 0.0,
        render_cpu=render_cpu if report_rendered else 0.0,
        skipped_pieces=list(state["skipped"]),
        soundfont=str(font),
    )
    if report_rendered:
        log(
            f"corpus: rendered {report.rendered} files ({rendered_seconds / 60:.1f} min of audio) in "
            f"{render_wall:.1f} s ({report.realtime_factor:.0f}x real time), reused {report.reused}, in {out_dir}"
        )
    elif str(out_dir) not in _ANNOUNCED:  # say it once per process, not per dataset
        _ANNOUNCED.add(str(out_dir))
        log(f"corpus: reusing {report.reused} cached files ({report.seconds / 60:.1f} min) in {out_dir}")
    return report


_ANNOUNCED: set[str] = set()


def _next_split(items: list[dict], exhausted: set[str]) -> str | None:
    """The split furthest below its share SPLIT_FRACTIONS of the audio so far (ties: train, val, test),
    so even a tiny corpus has all three splits and a large one has them in proportion."""
    total = sum(item["duration"] for item in items)
    have = {s: sum(item["duration"] for item in items if item["split"] == s) for s in SPLITS}
    open_splits = [s for s, f in zip(SPLITS, SPLIT_FRACTIONS) if f > 0 and s not in exhausted]
    if not open_splits:
        return None
    fraction = dict(zip(SPLITS, SPLIT_FRACTIONS))
    return max(open_splits, key=lambda s: (fraction[s] * total - have[s], -SPLITS.index(s)))


def _next_piece(candidates: list[Piece], cursor: dict[str, int], split: str) -> Piece | None:
    """The next candidate (after cursor[split]) whose piece id hashes into `split` (manifest.split_of)."""
    while cursor[split] < len(candidates):
        piece = candidates[cursor[split]]
        cursor[split] += 1
        if split_of(piece.id, SPLIT_FRACTIONS) == split:
            return piece
    return None


def _new_item(
    renderer: Renderer,
    out_dir: Path,
    piece: Piece,
    split: str,
    items: list[dict],
    names: list[str],
    clip_seconds: float,
    skipped: list[str],
) -> dict | None:
    try:
        title, notes = piece_notes(piece)
    except Exception as err:  # music21 cannot read a few scores (e.g. bwv277 in some versions)
        skipped.append(f"{piece.id}: {type(err).__name__}")
        return None
    if not notes:
        skipped.append(f"{piece.id}: no notes")
        return None
    bpm = tempo_bpm(piece.id)
    length = (max(n[1] for n in notes) - min(n[0] for n in notes)) * 60.0 / bpm
    if length < MIN_PIECE_SECONDS:
        skipped.append(f"{piece.id}: only {length:.1f} s")
        return None
    # the instrument with the least audio so far in this split gets the piece; ties: least audio
    # overall, then list order (so each split covers every instrument and the totals stay even)
    in_split, overall = {n: 0.0 for n in names}, {n: 0.0 for n in names}
    for item in items:
        overall[item["instrument"]] += item["duration"]
        if item["split"] == split:
            in_split[item["instrument"]] += item["duration"]
    instrument = min(names, key=lambda n: (in_split[n], overall[n]))
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", piece.id).strip("-")
    item = {
        "file": f"audio/{len(items):05d}_{instrument}_{slug}.flac",
        "piece": piece.id,
        "source": piece.source,
        "number": piece.number,
        "title": title,
        "split": split,
        "instrument": instrument,
        "program": INSTRUMENTS[instrument][0],
        "bpm": bpm,
        "clip_seconds": clip_seconds,
    }
    _render_item(renderer, out_dir, item, notes)
    return item


def _render_item(renderer: Renderer, out_dir: Path, item: dict, notes: list[tuple[float, float, int, int]]) -> None:
    program, low, high = INSTRUMENTS[item["instrument"]]
    events, octaves = place_notes(notes, item["bpm"], item["clip_seconds"], low, high)
    voices = 1 + max(e[3] for e in notes)
    room_seed = int(group_hash(f"room:{item['piece']}") * 2**32)
    wave = renderer.render(events, program, item["instrument"], voice_pans(item["piece"], voices), room_seed)
    write_audio(out_dir / item["file"], wave, renderer.sample_rate)
    item["octave_shift"] = octaves
    item["duration"] = round(wave.shape[1] / renderer.sample_rate, 6)
    item["sample_rate"] = renderer.sample_rate


def _manifest_rows(out_dir: Path, items: list[dict]) -> list[dict]:
    return [
        {
            "path": str((out_dir / item["file"]).resolve()),
            "duration": item["duration"],
            "sample_rate": item["sample_rate"],
            "channels": 2,
            "label": item["instrument"],
            "split": item["split"],
            "piece": item["piece"],
            "title": item["title"],
            "instrument": item["instrument"],
            "program": item["program"],
            "bpm": item["bpm"],
        }
        for item in items
    ]


def build_corpus(
    out_dir: str | os.PathLike | None = None,
    minutes: float = 6.0,
    instruments: str | Sequence[str] | None = None,
    soundfont: str | os.PathLike | None = None,
    sample_rate: int = 48000,
    seed: int = 0,
    clip_seconds: float = 15.0,
    progress: bool = True,
) -> Path:
    """Render (or reuse) the built-in corpus; returns the path of its manifest.jsonl."""
    return render_corpus(out_dir, minutes, instruments, soundfont, sample_rate, seed, clip_seconds, progress).manifest


def ensure_corpus(data_cfg) -> Path:
    """The manifest of the built-in corpus for a DataConfig (corpus_dir, corpus_minutes), rendering
    what is missing. Always 48 kHz stereo on disk; datasets resample and convert channels."""
    return render_corpus(data_cfg.corpus_dir or None, minutes=data_cfg.corpus_minutes).manifest
