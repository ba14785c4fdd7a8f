"""AudioCropDataset: crop lengths, seeded determinism, eval crops, padding, labels, resampling, cache."""

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import default_collate

from arwave.config import DataConfig
from arwave.data.dataset import AudioCropDataset, dataset_for_split, datasets_from_config
from arwave.data.manifest import write_manifest
from arwave.errors import ArwaveError

RATE = 16000


def ramp(n, channels=1, rate=RATE):
    """Distinct value at every sample (so a crop's position can be read back from its first value)."""
    x = (np.arange(n, dtype=np.float64) / n * 0.9 + 0.05).astype(np.float32)
    return np.stack([x * (1 - 0.1 * c) for c in range(channels)], axis=1)


@pytest.fixture()
def manifest(tmp_path):
    rows = []
    spec = [  # name, seconds, channels, label, split
        ("a", 2.0, 2, "violin", "train"),
        ("b", 1.5, 1, "piano", "train"),
        ("c", 0.25, 2, "flute", "train"),
        ("d", 1.0, 2, "violin", "val"),
        ("e", 1.2, 2, "organ", "val"),
        ("f", 1.0, 2, None, "test"),
    ]
    for name, seconds, channels, label, split in spec:
        p = tmp_path / f"{name}.wav"
        sf.write(p, ramp(int(seconds * RATE), channels), RATE, subtype="FLOAT")
        row = {"path": str(p), "duration": seconds, "sample_rate": RATE, "channels": channels, "split": split}
        if label:
            row["label"] = label
        rows.append(row)
    return write_manifest(tmp_path / "manifest.jsonl", rows)


def make(manifest, split="train", segment=4000, random_crop=True, **kw):
    return AudioCropDataset(manifest, split, RATE, 2, segment, random_crop, **kw)


def test_items_have_the_contract_shapes(manifest):
    ds = make(manifest)
    assert len(ds) == 3 and ds.file_paths[0].endswith("a.wav")
    for i in range(len(ds)):
        item = ds[(i, 123)]
        assert item["audio"].shape == (2, 4000) and item["audio"].dtype == torch.float32
        assert item["index"] == i and isinstance(item["label"], int)
    batch = default_collate([ds[(i, 7)] for i in range(3)])  # works with the default DataLoader collate
    assert batch["audio"].shape == (3, 2, 4000) and batch["label"].tolist() == [3, 2, 0]


def test_random_crop_determined_by_seed_only(manifest):
    ds = make(manifest)
    first = ds[(0, 42)]["audio"]
    assert torch.equal(first, ds[(0, 42)]["audio"])
    assert torch.equal(first, make(manifest)[(0, 42)]["audio"])  # a fresh dataset (no cache) agrees
    starts = {float(ds[(0, seed)]["audio"][0, 0]) for seed in range(20)}
    assert len(starts) > 15  # different seeds, different crops
    # the crop is a contiguous window of the file at the position random.Random(seed) picks
    import random

    full = ds.load_file(0)
    start = random.Random(42).randrange(full.shape[1] - 4000 + 1)
    assert torch.equal(first, full[:, start : start + 4000])


def test_eval_crop_is_centre_and_ignores_seed(manifest):
    ds = make(manifest, random_crop=False)
    a = ds[(0, 1)]["audio"]
    assert torch.equal(a, ds[(0, 999)]["audio"]) and torch.equal(a, ds[0]["audio"])
    full = ds.load_file(0)
    start = (full.shape[1] - 4000) // 2
    assert torch.equal(a, full[:, start : start + 4000])


def test_short_files_are_zero_padded(manifest):
    long = make(manifest, segment=6000)  # file c is 0.25 s = 4000 samples
    item = long[(2, 5)]["audio"]
    full = long.load_file(2)
    assert full.shape[1] == 4000
    assert torch.equal(item[:, :4000], full) and float(item[:, 4000:].abs().max()) == 0.0
    assert torch.equal(make(manifest)[(2, 5)]["audio"], full)  # exactly one segment long: the whole file


def test_labels_consistent_across_splits(manifest):
    train, val, test = make(manifest, "train"), make(manifest, "val"), make(manifest, "test")
    assert train.label_names == val.label_names == test.label_names == ["flute", "organ", "piano", "violin"]
    assert train.labels == [3, 2, 0] and val.labels == [3, 1] and test.labels == [-1]
    assert train[(0, 0)]["label"] == val[(0, 0)]["label"] == 3  # violin in both splits
    assert test[(0, 0)]["label"] == -1
    assert make(manifest, None).labels == [3, 2, 0, 3, 1, -1]  # split=None: every file


def test_resampling_and_channels(tmp_path):
    t = np.arange(8000) / 8000
    p = tmp_path / "tone8k.wav"
    sf.write(p, (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 8000)
    rows = [{"path": str(p), "duration": 1.0, "sample_rate": 8000, "channels": 1, "split": "train"}]
    ds = AudioCropDataset(rows, "train", 24000, 2, 4800, random_crop=False)
    full = ds.load_file(0)
    assert full.shape == (2, 24000) and torch.equal(full[0], full[1])  # 3x the samples, mono duplicated
    spectrum = torch.fft.rfft(full[0] * torch.hann_window(24000)).abs()
    assert abs(int(spectrum.argmax()) - 1000) <= 1  # 1 Hz bins: still 1 kHz
    assert ds[(0, 0)]["audio"].shape == (2, 4800)


def test_cache_is_bounded_and_transparent(manifest):
    ds = make(manifest, cache_mb=0.2)  # ~200 kB: holds one or two decoded files at most
    for seed in range(3):
        for i in range(3):
            ds[(i, seed)]
    assert ds._cached_bytes <= 0.2 * 2**20 and len(ds._cache) < 3
    big = make(manifest)
    for i in range(3):
        assert torch.equal(big[(i, 11)]["audio"], ds[(i, 11)]["audio"])
    assert len(big._cache) == 3


def test_unreadable_file_is_replaced_not_fatal(manifest, tmp_path):
    ds = make(manifest)
    (tmp_path / "a.wav").write_bytes(b"corrupted since indexing")
    with pytest.warns(UserWarning, match="a.wav"):
        item = ds[(0, 3)]
    assert item["index"] == 1 and item["audio"].shape == (2, 4000)
    assert ds[(0, 4)]["index"] == 1  # remembered: no second warning needed


def test_from_config(manifest):
    cfg = DataConfig(manifest=str(manifest), sample_rate=RATE, channels=2, segment_seconds=0.125)
    train, val = datasets_from_config(cfg)
    assert train.random_crop and not val.random_crop
    assert train.segment_samples == val.segment_samples == 2000 and len(train) == 3 and len(val) == 2
    test = dataset_for_split(cfg, "test", segment_samples=1000, random_crop=False)
    assert len(test) == 1 and test[(0, 0)]["audio"].shape == (2, 1000)
    with pytest.raises(ArwaveError, match="unknown split"):
        dataset_for_split(cfg, "dev", 1000, False)
    with pytest.raises(IndexError):
        train[(3, 0)]


def test_pickles_without_its_cache(manifest):
    import pickle

    ds = make(manifest)
    item = ds[(0, 9)]["audio"]
    assert len(ds._cache) == 1
    copy = pickle.loads(pickle.dumps(ds))  # what DataLoader workers receive
    assert len(copy._cache) == 0 and torch.equal(copy[(0, 9)]["audio"], item)


def test_tiled_dataset_covers_every_segment_in_order(manifest):
    from arwave.data.dataset import TiledDataset

    base = make(manifest, split="train", segment=4000, random_crop=False)
    tiled = TiledDataset(base)
    # a: 2.0 s -> 8 segments, b: 1.5 s -> 6, c: 0.25 s -> exactly 1
    assert len(tiled) == 8 + 6 + 1
    whole = base.load_file(0)
    for k in range(8):
        torch.testing.assert_close(tiled[(k, 0)]["audio"], whole[:, k * 4000 : (k + 1) * 4000])
    torch.testing.assert_close(tiled[(14, 0)]["audio"], base.load_file(2))
    short = TiledDataset(make(manifest, split="train", segment=6000, random_crop=False))
    assert len(short) == 5 + 4 + 1  # c is shorter than a segment: one padded item
    assert float(short[(9, 0)]["audio"][:, 4000:].abs().max()) == 0.0
    assert [tiled[(i, 0)]["label"] for i in (0, 8, 14)] == [base.labels[0], base.labels[1], base.labels[2]]
