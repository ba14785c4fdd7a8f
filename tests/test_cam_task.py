"""CAM training task: latent crops, the codec copy + latent cache, the sample-rate check, and a short
run through the one training loop that `arwave.load` then samples from."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

import arwave
from arwave.checkpoint import save_checkpoint
from arwave.config import run_config_to_json
from arwave.errors import ArwaveError
from arwave.models.cam.task import LatentCrops
from arwave.registry import get_kind, preset


def save_codec_run(path, name="tiny-continuous"):
    cfg = preset("codec", name)
    torch.manual_seed(0)
    codec = get_kind("codec").build_model(cfg, None)
    path.mkdir(parents=True)
    (path / "config.json").write_text(run_config_to_json(cfg))
    save_checkpoint(path, 0, {"model": codec.state_dict()}, {"step": 0})
    return cfg


def write_corpus(folder, sample_rate=16000, seconds=0.6):
    """Six stereo tone files, two labels, 4 train / 2 val."""
    folder.mkdir(parents=True)
    rows = []
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for i in range(6):
        wave = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t)
        path = folder / f"tone{i}.wav"
        sf.write(path, np.stack([wave, wave * 0.5], 1), sample_rate)
        rows.append(
            {
                "path": str(path),
                "duration": seconds,
                "sample_rate": sample_rate,
                "channels": 2,
                "label": "low" if i % 2 else "high",
                "split": "train" if i < 4 else "val",
            }
        )
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def task_latents(codec_run):
    from arwave.checkpoint import load_tensors

    path = next((codec_run / "cache").glob("cam-latents-train-*"))
    tensors = load_tensors(path)
    return [tensors[str(i)] for i in range(len(tensors))]


def test_latent_crops():
    lat = [torch.arange(30.0).view(1, 30).repeat(2, 1), torch.zeros(2, 5), torch.ones(2, 12)]
    ds = LatentCrops(lat, [0, 1, 2], context=10, random_crop=False)
    assert ds.skipped == 1 and len(ds) == 3 + 1  # 30 // 10 + 12 // 10 chunks
    item = ds[(1, 0)]
    assert item["latents"].shape == (10, 2) and item["label"] == 0
    assert torch.equal(item["latents"][:, 0], torch.arange(10.0, 20.0))  # chunk 1 of file 0
    rnd = LatentCrops(lat, [0, 1, 2], context=10, random_crop=True)
    a, b = rnd[(0, 5)]["latents"], rnd[(0, 5)]["latents"]
    assert torch.equal(a, b)  # crop decided by the seed alone
    starts = {int(rnd[(0, s)]["latents"][0, 0]) for s in range(40)}
    assert len(starts) > 5 and all(0 <= s <= 20 for s in starts)


def test_train_load_generate(tmp_path):
    from arwave.training.loop import train

    codec_run = tmp_path / "codec"
    save_codec_run(codec_run)
    manifest = write_corpus(tmp_path / "data")
    cfg = preset("cam", "tiny")
    cfg.data.manifest = str(manifest)
    cfg.model.codec_run = str(codec_run)
    cfg.model.conditional = True
    cfg.train.max_steps, cfg.train.val_every, cfg.train.ckpt_every = 4, 2, 4
    run = tmp_path / "cam"
    train(cfg, run, progress=False)
    # the run carries its own codec copy and the resolved config
    saved = json.loads((run / "config.json").read_text())
    assert saved["parent"] == "codec" and saved["model"]["label_names"] == ["high", "low"]
    assert saved["model"]["latent_dim"] == 8 and saved["model"]["hop"] == 160
    rms = torch.cat([t.flatten() for t in task_latents(codec_run)]).pow(2).mean().sqrt()
    assert saved["model"]["latent_scale"] == pytest.approx(float(rms), rel=1e-4)  # measured on train latents
    assert (run / "codec" / "config.json").is_file()
    caches = sorted((codec_run / "cache").glob("cam-latents-*"))
    assert len(caches) == 2  # train + val, beside the codec run
    metrics = (run / "metrics.csv").read_text()
    assert "val" in metrics
    assert [p.name for p in (run / "samples").glob("*.wav")] == ["sample-00000004.wav"]  # at the checkpoint
    model = arwave.load(run)
    assert model.sample_rate == 16000 and model.channels == 2 and model.label_names == ["high", "low"]
    audio = model.generate(0.05, num=2, seed=0, class_label="low")
    assert audio.shape == (2, 2, 800) and torch.isfinite(audio).all()
    # a second task on the same codec reuses the cache (no new files)
    cfg2 = preset("cam", "tiny")
    cfg2.data.manifest, cfg2.model.codec_run = str(manifest), str(codec_run)
    task = get_kind("cam").build_task(cfg2, tmp_path / "cam2")
    assert sorted((codec_run / "cache").glob("cam-latents-*")) == caches
    batch = torch.utils.data.default_collate([task.train_set[(i, i)] for i in range(3)])
    loss, _ = task.loss(task.model, batch, 0)
    assert batch["latents"].shape == (3, 16, 8) and torch.isfinite(loss)


def test_data_follows_the_codec_format_and_a_codec_is_required(tmp_path):
    codec_run = tmp_path / "codec"
    save_codec_run(codec_run)
    cfg = preset("cam", "tiny")
    cfg.data.manifest = str(write_corpus(tmp_path / "data"))
    with pytest.raises(ArwaveError, match="codec_run"):
        get_kind("cam").build_task(cfg, tmp_path / "a")
    cfg.model.codec_run = str(codec_run)
    cfg.data.sample_rate, cfg.data.channels = 24000, 1  # a preset written for another codec format
    resolved = get_kind("cam").build_task(cfg, tmp_path / "b").config
    codec_cfg = preset("codec", "tiny-continuous").model
    data, m = resolved.data, resolved.model
    assert (data.sample_rate, data.channels) == (codec_cfg.sample_rate, codec_cfg.channels)  # the codec's
    assert data.segment_seconds == m.context * m.hop / data.sample_rate
