"""`prepare_folder` / `arwave data prepare` on a folder of good and bad files; deterministic splits."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from arwave.cli.main import main
from arwave.data.manifest import SPLITS, assign_splits, prepare_folder, read_manifest, write_manifest
from arwave.errors import ArwaveError


def tone(rate, seconds, channels=1, freq=440.0):
    t = np.arange(int(rate * seconds)) / rate
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1)


GOOD = ["dogs/bark1.wav", "dogs/bark2.flac", "cats/meow1.ogg", "cats/meow2.wav", "cats/deep/meow3.wav"]
ODD_BUT_GOOD = ["birds/five_channels.wav", "birds/eight_k.wav"]  # decodable: indexed, converted later
BAD = {  # file -> words its reason must contain
    "broken/corrupt.wav": "cannot decode",
    "broken/empty.wav": "empty",
    "broken/nans.wav": "NaN",
    "broken/one_sample.wav": "too short",
    "broken/silence.flac": "silent",
}


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "audio"
    for i, name in enumerate(GOOD):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, tone(16000, 0.5 + 0.1 * i, channels=1 + i % 2, freq=300 + 50 * i), 16000)
    (root / "birds").mkdir()
    sf.write(root / ODD_BUT_GOOD[0], tone(22050, 0.4, channels=5), 22050)
    sf.write(root / ODD_BUT_GOOD[1], tone(8000, 0.7), 8000)
    (root / "broken").mkdir()
    (root / "broken/corrupt.wav").write_bytes(b"RIFF$\x00\x00\x00WAVEjunkjunkjunk" * 50)
    (root / "broken/empty.wav").write_bytes(b"")
    x = tone(16000, 0.3)
    x[:] = np.nan
    sf.write(root / "broken/nans.wav", x, 16000, subtype="FLOAT")
    sf.write(root / "broken/one_sample.wav", np.array([[0.5]], np.float32), 16000)
    sf.write(root / "broken/silence.flac", np.zeros((16000, 2), np.float32), 16000)
    (root / "notes.txt").write_text("not audio: ignored")
    return root


def check_result(manifest, skipped_pairs, root):
    indexed = {Path(r["path"]).relative_to(root).as_posix() for r in read_manifest(manifest)}
    assert indexed == set(GOOD + ODD_BUT_GOOD)
    skipped = {Path(p).relative_to(root).as_posix(): reason for p, reason in skipped_pairs}
    assert set(skipped) == set(BAD)
    for name, words in BAD.items():
        assert words in skipped[name], (name, skipped[name])


def test_prepare_folder_indexes_good_and_lists_bad(folder):
    report = prepare_folder(folder, progress=False)
    assert report.manifest == folder / "manifest.jsonl"
    assert report.indexed == len(GOOD) + len(ODD_BUT_GOOD)
    check_result(report.manifest, report.skipped, folder)
    rows = {Path(r["path"]).relative_to(folder).as_posix(): r for r in read_manifest(report.manifest)}
    for row in rows.values():
        assert Path(row["path"]).is_absolute() and row["split"] in SPLITS
        assert set(row) >= {"path", "duration", "sample_rate", "channels", "split"}
    assert rows["birds/five_channels.wav"]["channels"] == 5
    assert rows["birds/eight_k.wav"]["sample_rate"] == 8000
    assert rows["birds/eight_k.wav"]["duration"] == pytest.approx(0.7)
    # labels = top-level sub-folder
    assert rows["dogs/bark1.wav"]["label"] == "dogs" and rows["cats/deep/meow3.wav"]["label"] == "cats"
    assert report.labels == ["birds", "cats", "dogs"]
    assert sum(report.splits.values()) == report.indexed
    # raw JSONL: one object per line
    lines = report.manifest.read_text().splitlines()
    assert len(lines) == report.indexed and all(isinstance(json.loads(line), dict) for line in lines)
    # deterministic: a second run writes the same manifest
    first = report.manifest.read_text()
    prepare_folder(folder, progress=False)
    assert report.manifest.read_text() == first


def test_prepare_cli_exit_zero_lists_reasons_and_json(folder, tmp_path, capsys):
    out = tmp_path / "m.jsonl"
    code = main(["data", "prepare", str(folder), "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0
    lines = captured.out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["indexed"] == 7 and summary["skipped"] == 5 and summary["manifest"] == str(out)
    for name, words in BAD.items():
        line = next(line for line in lines if name in line)
        assert "skipped" in line and words in line
    assert {Path(f["path"]).name for f in summary["skipped_files"]} == {Path(n).name for n in BAD}
    assert "indexed 7 files" in captured.out and "skipped 5" in captured.out
    check_result(out, [(f["path"], f["reason"]) for f in summary["skipped_files"]], folder)


def test_prepare_cli_missing_dir_is_one_line_error(tmp_path, capsys):
    code = main(["data", "prepare", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().count("\n") == 0 and "no such folder" in err and "Traceback" not in err


def test_labels_csv_wins_over_folders(folder):
    (folder / "labels.csv").write_text("path,label\ndogs/bark1.wav,loud\n" + f"{folder / 'cats/meow1.ogg'},soft\n")
    rows = {Path(r["path"]).name: r for r in read_manifest(prepare_folder(folder, progress=False).manifest)}
    assert rows["bark1.wav"]["label"] == "loud" and rows["meow1.ogg"]["label"] == "soft"
    assert "label" not in rows["bark2.flac"]  # not listed in labels.csv: unlabelled
    with pytest.raises(ArwaveError, match="no such labels file"):
        prepare_folder(folder, labels=folder / "missing.csv", progress=False)


def test_files_in_root_have_no_label(tmp_path):
    sf.write(tmp_path / "a.wav", tone(16000, 0.2), 16000)
    sf.write(tmp_path / "b.wav", tone(16000, 0.2), 16000)
    rows = read_manifest(prepare_folder(tmp_path, progress=False).manifest)
    assert len(rows) == 2 and all("label" not in r for r in rows)


# ---------------------------------------------------------------------------------------------------
# splits


def test_split_by_group_is_deterministic_and_disjoint():
    keys = [f"piece{i // 3}" for i in range(3000)]  # 1000 groups of three files
    a, b = assign_splits(keys), assign_splits(list(keys))
    assert a == b
    by_group = {}
    for key, split in zip(keys, a):
        by_group.setdefault(key, set()).add(split)
    assert all(len(s) == 1 for s in by_group.values())  # a group never spans two splits
    counts = Counter(a)
    assert 0.75 < counts["train"] / 3000 < 0.85 and 0.06 < counts["val"] / 3000 < 0.14
    # adding groups never moves an existing group
    more = assign_splits(keys + [f"new{i}" for i in range(500)])
    assert more[:3000] == a
    # fractions are honoured
    assert set(assign_splits(keys, (1, 0, 0))) == {"train"}


def test_small_sets_get_every_split():
    for n in (3, 4, 7, 10):
        splits = assign_splits([f"k{i}" for i in range(n)])
        assert set(splits) == set(SPLITS), n
    assert assign_splits(["only"]) == ["train"]
    with pytest.raises(ArwaveError):
        assign_splits(["a"], (0.5, 0.5))


def test_read_manifest_errors_and_relative_paths(tmp_path):
    m = tmp_path / "m.jsonl"
    write_manifest(m, [{"path": "sub/a.wav", "duration": 1.0}])
    assert read_manifest(m)[0]["path"] == str(tmp_path / "sub" / "a.wav")
    m.write_text('{"path": "a.wav"}\nnot json\n')
    with pytest.raises(ArwaveError, match="m.jsonl:2"):
        read_manifest(m)
    with pytest.raises(ArwaveError, match="no such manifest"):
        read_manifest(tmp_path / "none.jsonl")
