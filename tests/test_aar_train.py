"""AAR end to end on the one training loop: a (random) tiny msrq codec run + a few labelled files ->
`train` for a handful of steps -> `arwave.load(RUN)` alone -> generate. Token caching is checked too."""

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import arwave
from arwave.checkpoint import load_tensors, save_checkpoint
from arwave.codec.msrq import msrq_scales
from arwave.config import run_config_to_json
from arwave.registry import get_kind, preset


def make_codec_run(folder: Path, preset_name: str) -> Path:
    """A codec run folder (config.json + one checkpoint) holding a randomly initialised codec."""
    cfg = preset("codec", preset_name)
    torch.manual_seed(0)
    codec = get_kind("codec").build_model(cfg, None)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(run_config_to_json(cfg))
    save_checkpoint(folder, 1, {"model": codec.state_dict()}, {"step": 1})
    return folder


def make_manifest(folder: Path, sample_rate: int = 16000, seconds: float = 0.6, vectors: int = 0) -> Path:
    """Six tones in two classes (4 train, 2 val); optional random 'vec' embeddings per row."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for i in range(6):
        label = "low" if i % 2 == 0 else "high"
        freq = (220 if label == "low" else 880) * (1 + 0.05 * i)
        path = folder / f"tone{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sample_rate)
        row = {"path": str(path), "label": label, "split": "train" if i < 4 else "val", "duration": seconds}
        if vectors:
            row["vec"] = rng.standard_normal(vectors).tolist()
        rows.append(row)
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def test_train_load_generate(tmp_path):
    from arwave.training.loop import train

    codec_run = make_codec_run(tmp_path / "codec", "tiny")
    cfg = preset("aar", "tiny")
    cfg.model.codec_run = str(codec_run)
    cfg.data.manifest = str(make_manifest(tmp_path / "data"))
    run = train(cfg, tmp_path / "aar", progress=False)

    assert (run / "codec" / "config.json").is_file()
    saved = json.loads((run / "config.json").read_text())
    assert saved["parent"] == "codec" and saved["model"]["label_names"] == ["high", "low"]
    assert saved["model"]["scales"] == msrq_scales(25, 6)
    cached = list((codec_run / "cache").glob("aar-codes-train-*.safetensors"))
    assert len(cached) == 1
    # 4 files of 0.6 s = 9600 samples, windows of 4000 samples every 2000 -> 3 windows of L tokens each
    per_file = load_tensors(cached[0])
    assert [tuple(per_file[str(i)].shape) for i in range(4)] == [(3, sum(msrq_scales(25, 6)))] * 4

    model = arwave.load(run)
    assert type(model).__name__ == "AAR" and model.sample_rate == 16000
    audio = model.generate(seconds=0.6, num=2, seed=0, class_label="low", cfg=2.0, top_k=10)
    assert audio.shape == (2, 1, 9600) and torch.isfinite(audio).all()
    assert list((run / "samples").glob("sample-*.wav"))


def test_embedding_condition_from_manifest_vectors(tmp_path):
    """cond=embedding with embedder=manifest:KEY: every window of a file carries that file's vector."""
    from arwave.models.aar.task import AARTask

    cfg = preset("aar", "tiny")
    cfg.model.codec_run = str(make_codec_run(tmp_path / "codec", "tiny"))
    cfg.model.cond, cfg.model.embedder = "embedding", "manifest:vec"
    manifest = make_manifest(tmp_path / "data", vectors=5)
    cfg.data.manifest = str(manifest)
    task = AARTask(cfg, tmp_path / "run")
    assert task.config.model.embed_dim == 5 and task.config.parent == "codec" and cfg.parent == ""
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    item = task.train_set[(4, 0)]  # window 4 = file 1 (3 windows per file)
    torch.testing.assert_close(item["embedding"], torch.tensor(rows[1]["vec"], dtype=torch.float32))
    batch = torch.utils.data.default_collate([task.train_set[(i, 0)] for i in range(4)])
    loss, logs = task.loss(task.model, batch, step=0)
    loss.backward()
    assert torch.isfinite(loss) and task.model.condition.mlp[0].weight.grad is not None
