"""The built-in corpus: real renders of music21 scores, 48 kHz stereo, labelled, split by piece, cached."""

import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from arwave.cli.main import main
from arwave.config import DataConfig
from arwave.data import corpus as corpus_mod
from arwave.data import synth
from arwave.data.corpus import ensure_corpus, render_corpus
from arwave.data.dataset import datasets_from_config
from arwave.data.manifest import read_manifest, split_of
from arwave.data.scores import place_notes
from arwave.data.synth import DEFAULT_INSTRUMENTS

MINUTES = 2.0  # about 8 files of <= 16 s: one per default instrument, a few seconds to render


def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    return out, json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    code = main(["data", "corpus", "--out", str(out), "--minutes", str(MINUTES), "--json"])
    assert code == 0
    return out


def audio_state(folder):
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted((folder / "audio").glob("*.flac"))}


def test_corpus_content(built):
    rows = read_manifest(built / "manifest.jsonl")
    total = sum(r["duration"] for r in rows)
    assert total >= MINUTES * 60
    assert total - rows[-1]["duration"] < MINUTES * 60  # the shortest prefix that is long enough
    assert {r["label"] for r in rows} == set(DEFAULT_INSTRUMENTS)  # 8 instruments, 8 GM families
    counts = Counter(r["label"] for r in rows)
    assert max(counts.values()) - min(counts.values()) <= 1  # even shares
    for r in rows:
        info = sf.info(r["path"])
        assert (info.samplerate, info.channels, info.format) == (48000, 2, "FLAC")
        assert info.duration == pytest.approx(r["duration"], abs=1e-3) and r["sample_rate"] == 48000
        x, _ = sf.read(r["path"], dtype="float32")
        assert np.isfinite(x).all() and 0.05 < np.sqrt((x**2).mean()) < 0.2 and np.abs(x).max() <= 0.96
        assert np.abs(x[:, 0] - x[:, 1]).max() > 1e-3  # real stereo, not two equal channels
    # split by piece: every piece in exactly one split, every split used
    pieces = {}
    for r in rows:
        pieces.setdefault(r["piece"], set()).add(r["split"])
    assert all(len(s) == 1 for s in pieces.values())
    assert all(r["split"] == split_of(r["piece"]) for r in rows)  # a piece's split is its hash rule
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    # both kinds of score material
    assert any(r["piece"].startswith("bach/") for r in rows)
    assert any(r["piece"].startswith(("essenFolksong/", "oneills1850/")) for r in rows)
    state = json.loads((built / "corpus.json").read_text())
    assert (
        state["identity"]["instruments"] == list(DEFAULT_INSTRUMENTS)
        and len(state["identity"]["soundfont_sha256"]) == 64
    )


def test_second_call_reuses_everything(built, capsys):
    before, manifest_before = audio_state(built), (built / "manifest.jsonl").stat().st_mtime_ns
    out, summary = run_cli(["data", "corpus", "--out", str(built), "--minutes", str(MINUTES), "--json"], capsys)
    assert summary["rendered"] == 0 and summary["reused"] == summary["files"] == len(before)
    assert "reused" in out and "nothing rendered" in out
    assert audio_state(built) == before and (built / "manifest.jsonl").stat().st_mtime_ns == manifest_before
    # ensure_corpus (what `arwave train` calls) finds the same corpus without rendering
    manifest = ensure_corpus(DataConfig(corpus_dir=str(built), corpus_minutes=MINUTES))
    assert manifest == built / "manifest.jsonl" and audio_state(built) == before
    train, val = datasets_from_config(
        DataConfig(corpus_dir=str(built), corpus_minutes=MINUTES, sample_rate=16000, channels=1, segment_seconds=0.5)
    )
    assert train.label_names == sorted(DEFAULT_INSTRUMENTS) and train[(0, 1)]["audio"].shape == (1, 8000)
    assert val is not None and len(train) + len(val) < len(before)  # test files are held out


def test_more_minutes_renders_only_the_missing_tail_and_fewer_reuses(built, capsys):
    before = audio_state(built)
    old_rows = read_manifest(built / "manifest.jsonl")
    _, summary = run_cli(["data", "corpus", "--out", str(built), "--minutes", str(MINUTES + 0.3), "--json"], capsys)
    after = audio_state(built)
    assert summary["rendered"] == len(after) - len(before) >= 1 and summary["reused"] == len(before)
    assert {k: after[k] for k in before} == before  # old files untouched
    rows = read_manifest(built / "manifest.jsonl")
    assert [r["path"] for r in rows[: len(old_rows)]] == [r["path"] for r in old_rows]
    assert sum(r["duration"] for r in rows) >= (MINUTES + 0.3) * 60
    # back to the smaller size: the manifest is the old prefix again, nothing rendered
    _, summary = run_cli(["data", "corpus", "--out", str(built), "--minutes", str(MINUTES), "--json"], capsys)
    assert summary["rendered"] == 0 and read_manifest(built / "manifest.jsonl") == old_rows


def test_deleted_file_is_rendered_again_identically(built):
    rows = read_manifest(built / "manifest.jsonl")
    victim = rows[1]["path"]
    before, _ = sf.read(victim, dtype="int16")
    import os

    os.unlink(victim)
    report = render_corpus(built, minutes=MINUTES, progress=False, log=None)
    assert report.rendered == 1
    again, _ = sf.read(victim, dtype="int16")
    assert np.array_equal(before, again)  # rendering is deterministic


def test_changed_parameters_rerender(tmp_path):
    a = render_corpus(tmp_path, minutes=0.1, instruments="flute,piano", clip_seconds=4, progress=False, log=None)
    assert a.rendered == a.files >= 1 and set(a.instruments) <= {"flute", "piano"}
    old = set((tmp_path / "audio").glob("*.flac"))
    b = render_corpus(tmp_path, minutes=0.1, instruments="violin", clip_seconds=4, progress=False, log=None)
    assert b.rendered == b.files and b.instruments == ["violin"]
    assert not (old & set((tmp_path / "audio").glob("*.flac")))  # the old renders are gone


def test_cli_errors_are_one_line(tmp_path, capsys):
    for args, words in (
        (["--soundfont", str(tmp_path / "none.sf2")], "no such SoundFont"),
        (["--instruments", "piano,kazoo"], "unknown instrument"),
    ):
        code = main(["data", "corpus", "--out", str(tmp_path / "c"), *args])
        err = capsys.readouterr().err
        assert code == 2 and words in err and err.strip().count("\n") == 0 and "Traceback" not in err
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"this is not a soundfont")
    code = main(["data", "corpus", "--out", str(tmp_path / "c"), "--soundfont", str(bad), "--minutes", "0.1"])
    assert code == 2 and "cannot load SoundFont" in capsys.readouterr().err


def test_place_notes_moves_into_range_and_clips():
    notes = [(0.0, 1.0, 30, 0), (1.0, 2.0, 36, 0), (2.0, 40.0, 100, 1), (50.0, 51.0, 40, 0)]
    events, shift = place_notes(notes, bpm=60, clip_seconds=10.0, low=55, high=79)
    assert len(events) == 3  # the note starting at 50 s is cut
    assert all(55 <= p <= 79 for _, _, p, _ in events)
    assert events[2][1] == 10.0  # held note ends at the clip
    # median 36 -> range centre 67: up 3 octaves (66, 72), then 136 folded down by octaves to 76
    assert [p for _, _, p, _ in events] == [66, 72, 76] and shift == 3


def test_normalise_hits_rms_or_peak_limit():
    x = np.random.default_rng(0).standard_normal((2, 48000)).astype(np.float32) * 0.01
    y = synth.normalise(x)
    assert np.sqrt((y**2).mean()) == pytest.approx(synth.TARGET_RMS, rel=1e-3)
    spiky = np.zeros((2, 1000), np.float32)
    spiky[:, 10] = 1.0
    assert np.abs(synth.normalise(spiky)).max() == pytest.approx(synth.MAX_PEAK)


def test_default_folder_follows_arwave_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARWAVE_CACHE", str(tmp_path))
    assert corpus_mod.default_corpus_dir() == tmp_path / "corpus"
    monkeypatch.delenv("ARWAVE_CACHE")
    assert corpus_mod.default_corpus_dir().parts[-3:] == (".cache", "arwave", "corpus")
