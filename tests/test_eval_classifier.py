"""In-domain classifier: training smoke test, run-folder round trip, embedder wrapper, evaluation."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

import arwave
from arwave.config import to_dict
from arwave.errors import ArwaveError
from arwave.evaluation.classifier import AudioClassifier, build_model, evaluate_classifier
from arwave.evaluation.classifier_task import ClassifierTask
from arwave.registry import get_kind, preset, run_config_from_dict

SR = 16000
FREQS = {"high": 2000.0, "low": 300.0}  # label_names are sorted: 0 = high, 1 = low


def tone(freq, seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = freq * (1 + 0.05 * rng.uniform(-1, 1))
    x = rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) + 0.02 * rng.standard_normal(
        len(t)
    )
    return x.astype(np.float32)


class TwoTones(torch.utils.data.Dataset):
    """Items as AudioCropDataset serves them: {"audio": (1, N), "label": int, "index": int}."""

    label_names = sorted(FREQS)
    sample_rate = SR

    def __init__(self, n, seconds=0.5, offset=0):
        self.n, self.seconds, self.offset = n, seconds, offset

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        index, seed = key
        label = index % 2
        x = tone(FREQS[self.label_names[label]], self.seconds, seed=(self.offset + index) * 1000 + seed)
        return {"audio": torch.from_numpy(x)[None], "label": label, "index": index}


def tiny_cfg():
    cfg = preset("classifier", "tiny")
    cfg.data.segment_seconds = 0.5
    return cfg


def test_training_steps_separate_two_sine_frequencies():
    torch.manual_seed(0)
    cfg = tiny_cfg()
    task = ClassifierTask(cfg, None, train_set=TwoTones(64), val_set=TwoTones(16, offset=1000))
    assert task.config.model.label_names == ["high", "low"] and not cfg.model.label_names  # a new config
    model = task.model
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    collate = torch.utils.data.default_collate
    first = None
    for step in range(25):
        batch = collate([task.train_set[(i, step)] for i in range(step * 8 % 64, step * 8 % 64 + 8)])
        loss, logs = task.loss(model, batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    model.eval()
    with torch.no_grad():
        val = task.val_metrics(model, collate([task.val_set[(i, 0)] for i in range(16)]))
    assert val["accuracy"] >= 0.9, val
    assert float(loss.detach()) < first
    probs = model.posteriors(torch.from_numpy(tone(300.0, 2.0, 99))[None, None], SR)
    assert probs.shape == (1, 2) and probs[0].argmax() == 1  # "low"


def test_build_from_config_alone_and_shapes():
    cfg = tiny_cfg()
    cfg.model.label_names = ["a", "b", "c"]
    again = run_config_from_dict(json.loads(json.dumps(to_dict(cfg))))  # as read back from config.json
    m1, m2 = build_model(cfg), get_kind("classifier").build_model(again, None)
    m2.load_state_dict(m1.state_dict())
    m1.eval(), m2.eval()
    wave = torch.randn(2, 1, 8000)
    torch.testing.assert_close(m1(wave), m2(wave))
    assert m1(wave).shape == (2, 3)
    long = torch.randn(1, 2, 3 * SR)  # stereo, 3 s: blocks of 0.5 s with 0.25 s hop
    emb, probs = m1.block_outputs(long[0].mean(0))
    assert emb.shape == (11, cfg.model.embed_dim) and probs.shape == (11, 3)
    assert m1.embed(long, SR).shape == (1, cfg.model.embed_dim)
    cfg.model.label_names = ["only"]
    with pytest.raises(ArwaveError, match="at least 2 classes"):
        build_model(cfg)


def test_presets_build():
    for name in ("tiny", "small", "paper"):
        cfg = preset("classifier", name)
        cfg.model.label_names = ["x", "y"]
        assert isinstance(build_model(cfg), AudioClassifier)


def test_trained_run_as_embedder_and_evaluation(tmp_path, monkeypatch):
    """The whole path: manifest -> `train` (the shared loop) -> run folder -> arwave.load -> embedder -> eval."""
    from arwave.evaluation.embedders.by_name import get_embedder
    from arwave.training.loop import train

    monkeypatch.setenv("ARWAVE_CACHE", str(tmp_path / "cache"))
    rows = []
    for i in range(16):
        label = "low" if i % 2 else "high"
        split = "test" if i >= 12 else ("val" if i >= 10 else "train")
        path = tmp_path / "audio" / f"{label}{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, tone(FREQS[label], 1.0, i), SR)
        rows.append({"path": str(path), "label": label, "split": split, "duration": 1.0})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tiny_cfg()
    cfg.data.manifest = str(manifest)
    cfg.train.max_steps, cfg.train.ckpt_every, cfg.train.val_every, cfg.train.warmup_steps = 20, 20, 20, 2
    cfg.train.lr = 3e-3
    run = tmp_path / "run"
    torch.manual_seed(0)
    train(cfg, run, progress=False)
    assert json.loads((run / "config.json").read_text())["model"]["label_names"] == ["high", "low"]
    model = arwave.load(run)
    assert isinstance(model, AudioClassifier) and model.label_names == ["high", "low"]

    emb = get_embedder(f"classifier:{run}")
    assert emb.name == "classifier:run" and emb.class_names == ["high", "low"]
    feats = emb.features(torch.from_numpy(np.stack([tone(300.0, 1.0, 50), tone(2000.0, 1.0, 51)]))[:, None], SR)
    assert feats.frames.shape == (6, cfg.model.embed_dim) and feats.posteriors.shape == (2, 2)

    report = evaluate_classifier(run, "test", progress=False)
    assert report["num_items"] == 4 and set(report["per_class"]) == {"high", "low"}
    assert report["accuracy"] >= 0.75, report
    assert sum(map(sum, report["confusion"])) == 4
