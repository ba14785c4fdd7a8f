"""Fine-tuning (`arwave train KIND --init-from NAME|RUN`): a new run from another run's or a bundle's
weights, the source's config and codec, a fresh optimiser; fine-tuning lowers the loss on new data;
a changed architecture or kind is one clear line."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from test_aar_train import make_codec_run, make_manifest
from test_cam_task import save_codec_run, write_corpus

from arwave import checkpoint as ckpt
from arwave.cli.main import main
from arwave.registry import preset
from arwave.training.loop import train


def _source_cam(tmp_path):
    """A tiny class-conditioned CAM run (2 steps on tones labelled high/low) on a tiny causal codec."""
    codec = tmp_path / "codec"
    save_codec_run(codec)
    cfg = preset("cam", "tiny")
    cfg.data.manifest = str(write_corpus(tmp_path / "tones"))
    cfg.model.codec_run, cfg.model.conditional = str(codec), True
    cfg.train.max_steps, cfg.train.val_every, cfg.train.ckpt_every = 2, 0, 2
    return train(cfg, tmp_path / "source", progress=False)


def _new_audio(folder, n=8, sample_rate=16000, seconds=0.6):
    """A folder of unlabelled audio unlike the tones: decaying noise bursts."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for i in range(n):
        burst = rng.standard_normal(t.size) * np.exp(-8 * (t % 0.2)) * 0.3
        sf.write(folder / f"burst{i}.wav", np.stack([burst, burst], 1).astype(np.float32), sample_rate)
    return folder


def _loss_on(task, weights: dict) -> float:
    """Mean loss of `weights` over fixed crops of the task's training data, with fixed noise draws."""
    model = task.model
    model.load_state_dict(weights)
    model.eval()
    items = [task.train_set[(i % len(task.train_set), i)] for i in range(16)]
    batch = torch.utils.data.default_collate(items)
    torch.manual_seed(0)
    with torch.no_grad():
        return float(task.loss(model, batch, -1)[0])


def test_finetune_a_run_on_a_folder_lowers_its_loss(tmp_path, capsys):
    from arwave.registry import get_kind

    source = _source_cam(tmp_path)
    folder = _new_audio(tmp_path / "mine")
    out = tmp_path / "tuned"
    assert (
        main(
            [
                "train",
                "cam",
                "--init-from",
                str(source),
                "--data",
                str(folder),
                "--max-steps",
                "10",
                "--set",
                "train.val_every=0",
                "--set",
                "train.ckpt_every=10",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == ""
    src, cfg = ckpt.read_config(source), ckpt.read_config(out)
    # a new run: the source's model config, its codec and classes, the folder indexed into the run, a fresh count
    assert cfg.init_from == str(source.resolve()) and cfg.model == src.model.__class__(
        **{**src.model.__dict__, "codec_run": str((source / "codec").resolve())}
    )
    assert cfg.data.manifest == str((out / "manifest.jsonl").resolve()) and cfg.data.label_names == ["high", "low"]
    assert (out / "codec" / "config.json").read_text() == (source / "codec" / "config.json").read_text()
    assert ckpt.latest_checkpoint(out).name == "step-00000010"
    optim = ckpt.load_tensors(ckpt.latest_checkpoint(out) / "optim.safetensors")
    assert float(optim["opt.0.step"]) == 10  # AdamW started anew
    assert list((out / "samples").glob("sample-*.wav"))
    # the fine-tuned weights fit the new audio better than the weights it started from
    task = get_kind("cam").build_task(ckpt.read_config(out), out)
    before = _loss_on(task, ckpt.load_tensors(ckpt.latest_checkpoint(source) / "model.safetensors"))
    after = _loss_on(task, ckpt.load_tensors(ckpt.latest_checkpoint(out) / "model.safetensors"))
    assert after < 0.9 * before, (before, after)


def test_finetune_refuses_another_architecture_kind_or_codec(tmp_path, capsys):
    source = _source_cam(tmp_path)
    manifest = str(tmp_path / "tones" / "manifest.jsonl")
    base = ["train", "cam", "--init-from", str(source), "--data", manifest, "--max-steps", "1"]
    assert main([*base, "--set", "width=64", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "its weights do not fit" in err and "model.width: 32 -> 64" in err
    assert not (tmp_path / "a").exists()  # nothing written
    assert main([*base[:-4], "--data", str(tmp_path / "tones"), "--set", "width=64", "--out", str(tmp_path / "e")]) == 2
    assert not (tmp_path / "e").exists() and "model.width: 32 -> 64" in capsys.readouterr().err  # folder not indexed
    assert main(["train", "aar", "--init-from", str(source), "--out", str(tmp_path / "b")]) == 2
    assert "a cam model, not aar; fine-tune it with `arwave train cam --init-from" in capsys.readouterr().err
    assert main([*base, "--codec", str(tmp_path / "codec"), "--out", str(tmp_path / "c")]) == 2
    assert "keeps the codec its source was trained on" in capsys.readouterr().err
    assert main([*base, "--preset", "small", "--out", str(tmp_path / "d")]) == 2
    assert "drop --preset" in capsys.readouterr().err


@pytest.mark.parametrize("kind,codec", [("codec", None), ("aar", "tiny"), ("nexttoken", "tiny-rvq")])
def test_finetune_starts_from_the_source_weights(tmp_path, kind, codec):
    """Every kind: one step at a vanishing learning rate leaves the source's trained parameters."""
    manifest = make_manifest(tmp_path / "data")
    if kind == "codec":  # a codec run as training leaves it, without training it first
        source = make_codec_run(tmp_path / "source", "tiny-rvq")
    else:
        cfg = preset(kind, "tiny")
        cfg.data.manifest = str(manifest)
        cfg.train.max_steps, cfg.train.val_every, cfg.train.ckpt_every, cfg.train.tensorboard = 2, 0, 2, False
        cfg.model.codec_run = str(make_codec_run(tmp_path / "codec", codec))
        source = train(cfg, tmp_path / "source", progress=False)
    tuned = tmp_path / "tuned"
    assert (
        main(
            [
                "train",
                kind,
                "--init-from",
                str(source),
                "--data",
                str(manifest),
                "--max-steps",
                "1",
                "--set",
                "train.lr=1e-12",
                "--set",
                "train.warmup_steps=0",
                "--set",
                "train.val_every=0",
                "--set",
                "train.tensorboard=false",
                "--out",
                str(tuned),
                "--quiet",
            ]
        )
        == 0
    )
    a = ckpt.load_tensors(ckpt.latest_checkpoint(source) / "model.safetensors")
    b = ckpt.load_tensors(ckpt.latest_checkpoint(tuned) / "model.safetensors")
    model = ckpt.load(tuned)
    params = [name for name, _ in model.named_parameters()]
    for name in params:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)
    if codec:
        assert (tuned / "codec" / "config.json").read_text() == (source / "codec" / "config.json").read_text()


def test_finetune_the_bundled_classifier_keeps_its_classes(tmp_path, capsys):
    """A bundle by name: its classes stay (label ids of the new data follow the bundle's list)."""
    from arwave import pretrained

    names = json.loads((pretrained.root() / "instrument-classifier" / "config.json").read_text())["model"][
        "label_names"
    ]
    folder = tmp_path / "mine"
    t = np.arange(24000 * 2) / 24000
    for i, label in enumerate([names[1], names[1], names[0], names[0], "kazoo", "kazoo"] * 2):
        (folder / label).mkdir(parents=True, exist_ok=True)
        sf.write(folder / label / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32), 24000)
    out = tmp_path / "tuned"
    assert (
        main(
            [
                "train",
                "classifier",
                "--init-from",
                "instrument-classifier",
                "--data",
                str(folder),
                "--max-steps",
                "1",
                "--set",
                "data.batch_size=2",
                "--set",
                "train.val_every=0",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert "labels kazoo of" in capsys.readouterr().err  # a warning, not an error
    cfg = ckpt.read_config(out)
    assert cfg.init_from == "instrument-classifier" and cfg.model.label_names == names
    assert cfg.data.label_names == names


@pytest.mark.parametrize("codec", ["tiny", "tiny-rvq"])
def test_a_decoder_only_finetune_keeps_every_token(tmp_path, codec, capsys):
    """train.freeze=encoder,bottleneck: the decoder learns (its weights move at a real learning rate)
    while the encoder and bottleneck, codebook buffers included (EMA updates, dead-code resets), stay
    bit-identical, so the tokens of any audio are unchanged and generators trained on them stay valid."""
    manifest = make_manifest(tmp_path / "data")
    source = make_codec_run(tmp_path / "source", codec)
    tuned = tmp_path / "tuned"
    args = ["train", "codec", "--init-from", str(source), "--data", str(manifest), "--max-steps", "3"]
    sets = ["train.lr=1e-2", "train.warmup_steps=0", "train.val_every=0", "train.tensorboard=false"]
    frozen = [*args, *sum((["--set", s] for s in sets), []), "--set", "train.freeze=encoder,bottleneck"]
    assert main([*frozen, "--out", str(tuned), "--quiet"]) == 0
    a = ckpt.load_tensors(ckpt.latest_checkpoint(source) / "model.safetensors")
    b = ckpt.load_tensors(ckpt.latest_checkpoint(tuned) / "model.safetensors")
    for name in a:
        if name.startswith(("encoder.", "bottleneck.")):
            assert torch.equal(a[name], b[name]), name
    assert any(not torch.equal(a[n], b[n]) for n in a if n.startswith("decoder.")), "the decoder did not train"
    audio = torch.randn(1, 1, 16000) * 0.1
    before, after = ckpt.load(source), ckpt.load(tuned)
    tokens = [before.encode(audio), after.encode(audio)]
    flat = [t if torch.is_tensor(t) else torch.cat([s.flatten() for s in t]) for t in tokens]
    assert torch.equal(flat[0], flat[1])
    # a whole model frozen, or a part that does not exist: one line naming the parts there are
    assert main([*args, "--set", "train.freeze=encoder,bottleneck,decoder", "--out", str(tmp_path / "x")]) == 2
    assert "leaves nothing of the model to train" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main([*args, "--set", "train.freeze=encodr", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "encodr is not a part of this model" in err and "encoder" in err and not (tmp_path / "y").exists()
