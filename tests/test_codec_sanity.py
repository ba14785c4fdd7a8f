"""Sanity checks that catch a collapsed codec (one output whatever the input; issue: every demo clip was
the same buzz): trained briefly on one clip through the real training loop, the codec must reconstruct
that clip clearly better than it matches silence or another clip, stay quiet on silence, and the task
must warn when reconstructions stop depending on their input. Also: the spectral decoder streams exactly."""

from __future__ import annotations

import math

import pytest
import torch

from arwave.codec.model import Codec, CodecConfig
from arwave.codec.task import CodecTask, warn_if_collapsed
from arwave.data.audio import write_audio
from arwave.data.manifest import write_manifest
from arwave.evaluation.recon import clip_mel_distance, input_specificity, rms_db
from arwave.registry import preset

SR = 16000


def _chord(seconds: float, f0: float, seed: int) -> torch.Tensor:
    """A decaying harmonic note every 0.25 s (pitch steps up), a little noise: music-like and learnable."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    x = torch.zeros_like(t)
    for i, start in enumerate(torch.arange(0, seconds, 0.25).tolist()):
        f = f0 * 2 ** ((i % 4) / 12)
        env = ((t - start) >= 0) * torch.exp(-6 * (t - start).clamp_min(0))
        x += env * sum(math.pow(0.5, h) * torch.sin(2 * math.pi * f * (h + 1) * t) for h in range(4))
    return (0.25 * x / x.abs().max() + 0.003 * torch.randn(t.shape, generator=g))[None]


def _spectral_cfg(tmp_path, *clips: torch.Tensor):
    rows = []
    for i, clip in enumerate(clips):
        write_audio(tmp_path / f"clip{i}.wav", clip, SR)
        rows += [
            {
                "path": str(tmp_path / f"clip{i}.wav"),
                "duration": clip.shape[-1] / SR,
                "sample_rate": SR,
                "channels": 1,
                "split": split,
            }
            for split in ("train", "train", "val")
        ]
    write_manifest(tmp_path / "manifest.jsonl", rows)
    cfg = preset("codec", "tiny-continuous")
    cfg.model = CodecConfig(
        bottleneck="continuous",
        architecture="spectral",
        sample_rate=SR,
        channels=1,
        strides=(64, 2),
        spectral_dim=64,
        spectral_blocks=1,
        latent_dim=16,
        window_frames=16,
        disc_start=10**9,
    )
    cfg.data.manifest, cfg.data.sample_rate, cfg.data.channels, cfg.data.batch_size = (
        str(tmp_path / "manifest.jsonl"),
        SR,
        1,
        4,
    )
    cfg.train.max_steps, cfg.train.warmup_steps, cfg.train.lr, cfg.train.betas = 200, 10, 3e-3, (0.8, 0.99)
    cfg.train.val_every, cfg.train.ckpt_every, cfg.train.log_every = 0, 0, 50
    return cfg


def test_briefly_trained_codec_reconstructs_each_input_not_a_constant(tmp_path):
    """Two clips, 200 steps of the real loop: each reconstruction is nearer its own input than the other
    clip (a constant or average output scores ≈ 1 here), keeps its loudness roughly, and is not silence.
    Two clips rather than one: a codec trained on one clip may memorise it and play it for any input."""
    from arwave import load
    from arwave.training.loop import train

    torch.manual_seed(0)
    x, y = _chord(2.0, 220.0, 0), _chord(2.0, 523.0, 1)
    cfg = _spectral_cfg(tmp_path, x, y)
    run = train(cfg, tmp_path / "run", progress=False)
    codec = load(run).eval()
    rx, ry = codec.reconstruct(x[None])[0], codec.reconstruct(y[None])[0]
    assert clip_mel_distance(x, rx, SR) < 0.8 * clip_mel_distance(y, rx, SR)
    assert clip_mel_distance(y, ry, SR) < 0.8 * clip_mel_distance(x, ry, SR)
    assert abs(rms_db(rx) - rms_db(x)) < 8.0 and abs(rms_db(ry) - rms_db(y)) < 8.0
    silence = torch.zeros_like(x)  # and the output is not (near) silence
    assert clip_mel_distance(x, rx, SR) < 0.5 * clip_mel_distance(silence, rx, SR)


def test_input_specificity_separates_a_faithful_from_a_constant_codec():
    a, b, c = _chord(1.0, 220.0, 0), _chord(1.0, 330.0, 1), _chord(1.0, 494.0, 2)
    faithful = input_specificity([a, b, c], [a + 0.001, b + 0.001, c + 0.001], SR)
    constant = input_specificity([a, b, c], [a, a, a], SR)
    assert max(faithful) < 0.05
    assert constant[1] > 1.0 and constant[2] > 1.0  # the constant output is nearer to another clip


def test_collapsed_codec_warns_during_validation(tmp_path):
    cfg = _spectral_cfg(tmp_path, _chord(2.0, 220.0, 0))
    task = CodecTask(cfg, datasets=(None, None))
    with torch.no_grad():
        task.model.decoder.inp.weight.zero_()  # the decoder ignores its input: one output for all
    task.model.eval()
    batch = {"audio": torch.stack([_chord(1.0, 220.0, 0), _chord(1.0, 523.0, 1)])}
    with pytest.warns(RuntimeWarning, match="near-identical"):
        metrics = task.val_metrics(task.model, batch)
    assert metrics["specificity"] > 0.9
    assert not warn_if_collapsed(0.3)


@pytest.mark.parametrize("bottleneck, strides", [("continuous", (64, 4)), ("msrq", (80,))])
def test_spectral_decoder_streams_exactly_what_it_decodes_offline(bottleneck, strides):
    torch.manual_seed(0)
    cfg = CodecConfig(
        bottleneck=bottleneck,
        architecture="spectral",
        sample_rate=SR,
        channels=2,
        strides=strides,
        spectral_dim=32,
        spectral_blocks=2,
        latent_dim=8,
        window_frames=16,
        num_scales=4,
        codebook_size=16,
        kmeans_iters=1,
    )
    codec = Codec(cfg).eval()
    assert codec.causal
    z = torch.randn(2, codec.latent_dim, 11)
    offline = codec.decode_latents(z, chunk_frames=0)
    stream = codec.streaming_decoder()
    pieces = [stream.step(z[..., i : i + n]) for i, n in ((0, 1), (1, 3), (4, 7))]
    assert torch.allclose(torch.cat(pieces, -1), offline, atol=1e-5)
    assert offline.shape == (2, 2, 11 * codec.hop)
    # causal: changing a later latent frame leaves earlier audio untouched
    z2 = z.clone()
    z2[..., 6:] += 1.0
    changed = codec.decode_latents(z2, chunk_frames=0)
    assert torch.equal(changed[..., : 6 * codec.hop], offline[..., : 6 * codec.hop])
    assert not torch.allclose(changed[..., 6 * codec.hop :], offline[..., 6 * codec.hop :])
