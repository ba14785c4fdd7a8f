"""Bundled pretrained models (issues 10/11): export a run into a bundle, load it BY NAME wherever a run is
taken (arwave.load, generate, encode/decode, eval recon, --codec for training), same outputs as the run
(fp32) and close ones (fp16); `arwave models`; the one-line error for a known model that is not bundled."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import arwave
from arwave import pretrained
from arwave.cli.main import main
from arwave.errors import ArwaveError
from arwave.pretrained import bundle

sys.path.insert(0, str(Path(__file__).parent))
from test_cam_task import write_corpus  # noqa: E402


@pytest.fixture
def bundles(tmp_path, monkeypatch):
    """An empty bundle root in place of the package's (so no real bundle is ever touched)."""
    root = tmp_path / "bundles"
    root.mkdir()
    monkeypatch.setenv(pretrained.ENV, str(root))
    return root


@pytest.fixture
def exported(cam_run, bundles):
    """The tiny CAM run of conftest and its codec, exported fp32 as tiny-codec and tiny-cam."""
    bundle.export(cam_run / "codec", "tiny-codec")
    bundle.export(
        cam_run, "tiny-cam", parent="tiny-codec", command="arwave train cam --preset tiny", quality={"fad": 1.5}
    )
    return bundles


def test_bundle_files_and_card(exported, cam_run):
    folder = exported / "tiny-cam"
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "config.json", "model.safetensors"]
    card = pretrained.read_card(folder)
    model = arwave.load(cam_run)
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert card["size_bytes"] == (folder / "model.safetensors").stat().st_size
    assert card["format"] == "safetensors fp32" and card["steps"] == 1 and card["parent"] == "tiny-codec"
    assert card["training_command"] == "arwave train cam --preset tiny" and card["quality"] == {"fad": 1.5}
    assert card["sha256"] == pretrained.sha256(folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == "cam" and config["parent"] == "tiny-codec" and config["model"]["codec_run"] == "tiny-codec"
    # the codec's config is the run's, byte for byte (AR runs trained on the bundle are recognised by it)
    assert (exported / "tiny-codec" / "config.json").read_text() == (cam_run / "codec" / "config.json").read_text()


def test_a_manifest_under_the_current_folder_is_recorded_relative(cam_run, bundles, tmp_path, monkeypatch):
    """A bundle names its training data as scripts/pretrained-data.sh makes it (data/...), not by the
    absolute path of the machine that trained it; a path elsewhere stays as it was."""
    codec = tmp_path / "copy" / "codec"
    shutil.copytree(cam_run / "codec", codec)
    config = json.loads((codec / "config.json").read_text())
    config["data"]["manifest"] = str(tmp_path / "data" / "train.jsonl")
    (codec / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    bundle.export(codec, "here-codec")
    saved = json.loads((bundles / "here-codec" / "config.json").read_text())
    assert saved["data"]["manifest"] == "data/train.jsonl"
    monkeypatch.chdir(tmp_path / "copy")
    bundle.export(codec, "elsewhere-codec")
    saved = json.loads((bundles / "elsewhere-codec" / "config.json").read_text())
    assert saved["data"]["manifest"] == str(tmp_path / "data" / "train.jsonl")


def test_load_by_name_equals_the_run_fp32(exported, cam_run):
    run, named = arwave.load(cam_run), arwave.load("tiny-cam")
    assert named.run_dir == exported / "tiny-cam"
    for k, v in run.state_dict().items():
        assert torch.equal(v, named.state_dict()[k])
    a = run.generate(0.1, num=2, seed=3, class_label="low")
    b = named.generate(0.1, num=2, seed=3, class_label="low")
    assert torch.equal(a, b)
    codec = arwave.load("tiny-codec")
    x = torch.randn(1, 2, 1600)
    assert torch.equal(codec.reconstruct(x), arwave.load(cam_run / "codec").reconstruct(x))


def test_fp16_bundle_loads_as_float32_and_close(cam_run, bundles):
    bundle.export(cam_run / "codec", "tiny-codec", fp16=True)
    bundle.export(cam_run, "tiny-cam", parent="tiny-codec", fp16=True)
    from arwave.checkpoint import load_tensors

    stored = load_tensors(bundles / "tiny-cam" / "model.safetensors")
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    assert pretrained.read_card(bundles / "tiny-cam")["format"].startswith("safetensors fp16")
    named, run = arwave.load("tiny-cam"), arwave.load(cam_run)
    assert all(p.dtype == torch.float32 for p in named.parameters())
    assert all(p.dtype == torch.float32 for p in named.codec.parameters())
    a = run.generate(0.1, num=2, seed=3, class_label="low")
    b = named.generate(0.1, num=2, seed=3, class_label="low")
    assert not torch.equal(a, b)  # rounded weights ...
    torch.testing.assert_close(b, a, atol=2e-3 * float(a.abs().max()) + 1e-5, rtol=0)  # ... close outputs


def test_half_keeps_out_of_range_tensors_float32():
    out, kept = bundle._half({"w": torch.ones(3), "count": torch.tensor([1e6, 1.0]), "i": torch.arange(3)})
    assert out["w"].dtype == torch.float16 and out["count"].dtype == torch.float32 and out["i"].dtype == torch.int64
    assert kept == 1


def test_known_but_missing_is_one_clear_line(bundles, capsys, tmp_path):
    with pytest.raises(
        ArwaveError,
        match=r"^codec-sat is not bundled in this install; train it with "
        r"scripts/train-pretrained\.sh codec-sat$",
    ):
        arwave.load("codec-sat")
    assert main(["generate", "cam", "--seconds", "1", "--out", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "arwave: error: cam is not bundled in this install; train it with scripts/train-pretrained.sh cam"
    with pytest.raises(ArwaveError, match="no such run folder .*arwave models"):
        arwave.load("no-such-model")


def test_a_folder_of_that_name_wins(exported, cam_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(cam_run, tmp_path / "tiny-cam")
    assert arwave.load("tiny-cam").run_dir == Path("tiny-cam")


def test_models_json_and_table(exported, capsys):
    assert main(["models", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {r["name"]: r for r in out["models"]}
    assert set(pretrained.KNOWN) <= set(rows) and not rows["cam"]["bundled"]
    assert rows["cam"]["train"] == "scripts/train-pretrained.sh cam"
    tiny = rows["tiny-cam"]
    assert tiny["bundled"] and tiny["kind"] == "cam" and tiny["parameters"] > 0 and tiny["quality"] == {"fad": 1.5}
    assert out["total_size_bytes"] == tiny["size_bytes"] + rows["tiny-codec"]["size_bytes"]
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "tiny-cam" in table and "command: arwave train cam --preset tiny" in table and "fad 1.5" in table
    assert "codec-sat" in table and "train: scripts/train-pretrained.sh codec-sat" in table


def test_cli_generate_encode_decode_by_name(exported, cam_run, tmp_path, capsys):
    out = tmp_path / "gen.wav"
    assert main(["generate", "tiny-cam", "--seconds", "0.1", "--seed", "4", "--class", "high", "--out", str(out)]) == 0
    audio, sr = sf.read(out, always_2d=True)
    ref = arwave.load(cam_run).generate(0.1, seed=4, class_label="high")[0]
    assert sr == 16000 and np.allclose(audio.T, ref.clamp(-1, 1).numpy(), atol=1 / 2**14)
    wav = tmp_path / "in.wav"
    sf.write(wav, 0.3 * np.random.default_rng(0).standard_normal((1600, 2)).astype(np.float32), 16000)
    assert main(["encode", "tiny-codec", str(wav), str(tmp_path / "z.safetensors")]) == 0
    assert main(["decode", "tiny-codec", str(tmp_path / "z.safetensors"), str(tmp_path / "y.wav")]) == 0
    assert sf.info(tmp_path / "y.wav").frames == 1600
    manifest = write_corpus(tmp_path / "data")
    assert (
        main(["eval", "recon", "tiny-codec", "--data", str(manifest), "--split", "val", "--seconds", "0.5", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["num_items"] == 2


def test_classifier_embedder_by_name(bundles, tmp_path):
    """`--classifier NAME` / `classifier:NAME` embedders resolve a bundled classifier."""
    from arwave.checkpoint import save_checkpoint
    from arwave.config import run_config_to_json
    from arwave.evaluation.embedders.by_name import get_embedder
    from arwave.registry import get_kind, preset

    cfg = preset("classifier", "tiny")
    cfg.model.num_classes, cfg.model.label_names = 2, ["high", "low"]
    run = tmp_path / "cls"
    run.mkdir()
    (run / "config.json").write_text(run_config_to_json(cfg))
    save_checkpoint(run, 3, {"model": get_kind("classifier").build_model(cfg, None).state_dict()}, {"step": 3})
    bundle.export(run, "instrument-classifier")
    emb = get_embedder("classifier:instrument-classifier")
    assert emb.name == "classifier:instrument-classifier" and emb.class_names == ["high", "low"]


def test_train_on_a_bundled_codec_then_export_and_load(bundles, cam_run, tmp_path, monkeypatch, capsys):
    """`arwave train cam --codec NAME`: the run copies the bundle (recognised again on --resume), caches
    its encodings outside the package, and exports with the bundle as its parent."""
    bundle.export(cam_run / "codec", "tiny-codec", fp16=True)
    before = sorted(p.name for p in (bundles / "tiny-codec").iterdir())
    manifest = write_corpus(tmp_path / "data")
    run = tmp_path / "cam"
    args = [
        "train",
        "cam",
        "--preset",
        "tiny",
        "--codec",
        "tiny-codec",
        "--data",
        str(manifest),
        "--max-steps",
        "2",
        "--set",
        "conditional=true",
        "--set",
        "train.val_every=0",
        "--out",
        str(run),
        "--quiet",
    ]
    monkeypatch.chdir(tmp_path)
    assert main(args) == 0
    assert json.loads((run / "config.json").read_text())["model"]["codec_run"] == "tiny-codec"
    assert sorted(p.name for p in (bundles / "tiny-codec").iterdir()) == before  # nothing written into a bundle
    from arwave.checkpoint import read_config
    from arwave.registry import get_kind

    get_kind("cam").build_task(read_config(run), run)  # what --resume does first: the copy is recognised
    bundle.export(run, "tiny-cam", parent="tiny-codec")
    model = arwave.load("tiny-cam")
    assert model.label_names == ["high", "low"] and model.generate(0.05, seed=0).shape == (1, 2, 800)
    # a run is refused as the child of a bundle with other codec weights (same config)
    from arwave.checkpoint import save_checkpoint

    other = tmp_path / "other-codec-run"
    other.mkdir()
    shutil.copy(cam_run / "codec" / "config.json", other / "config.json")
    torch.manual_seed(1)
    weights = get_kind("codec").build_model(arwave.load(cam_run / "codec").config, None).state_dict()
    save_checkpoint(other, 5, {"model": weights}, {"step": 5})
    bundle.export(other, "other-codec")
    with pytest.raises(ArwaveError, match="different codec than the bundled other-codec .weights differ"):
        bundle.export(run, "other-cam", parent="other-codec")


def test_export_refuses_mismatches(exported, cam_run):
    with pytest.raises(ArwaveError, match="cam is a cam model"):
        bundle.export(cam_run / "codec", "cam")
    with pytest.raises(ArwaveError, match="--parent no-codec: no bundled model"):
        bundle.export(cam_run, "x-cam", parent="no-codec")
    with pytest.raises(ArwaveError, match="has no parent codec"):
        bundle.export(cam_run / "codec", "x-codec", parent="tiny-codec")
    with pytest.raises(ArwaveError, match="already a bundle"):
        bundle.export(exported / "tiny-codec", "again")


def test_load_by_name_never_unpickles(exported, monkeypatch):
    import pickle

    def forbidden(*a, **k):
        raise AssertionError("unpickling during load")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    arwave.load("tiny-cam")


def test_package_data_includes_bundle_files():
    """pyproject ships <name>/{config.json,model.safetensors,card.json} of arwave.pretrained in a
    non-editable install."""
    import fnmatch

    import tomllib

    cfg = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    patterns = cfg["tool"]["setuptools"]["package-data"]["arwave.pretrained"]
    for f in (pretrained.CONFIG, pretrained.WEIGHTS, pretrained.CARD):
        assert any(fnmatch.fnmatch(f"cam/{f}", p) for p in patterns), f


SCRIPT = Path(__file__).parent.parent / "scripts" / "train-pretrained.sh"


def _script(*args, **env):
    import os
    import subprocess

    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


def test_train_script_starts_then_resumes_then_exports(tmp_path):
    """One row per known model; a fresh run starts with the row's command, an existing one resumes;
    the export records the exact first command (dry run: the commands only)."""
    text = SCRIPT.read_text()
    for name in pretrained.KNOWN:
        assert f"[{name}]=" in text, name
    fresh = _script("aar", DRY_RUN="1", RUNS=str(tmp_path))
    assert fresh.returncode == 0, fresh.stderr
    train_line, export_line = fresh.stdout.strip().splitlines()
    words = train_line.split()
    assert words[4:9] == ["aar", "--preset", "small", "--codec", "codec-sat"]
    assert words[-2:] == ["--out", str(tmp_path / "aar")]
    assert export_line.split()[3:6] == ["export", str(tmp_path / "aar"), "aar"] and "--fp16" in export_line
    (tmp_path / "aar" / "checkpoints" / "step-00000010").mkdir(parents=True)
    (tmp_path / "aar" / "checkpoints" / "step-00000010" / "state.json").write_text("{}")
    again = _script("aar", DRY_RUN="1", RUNS=str(tmp_path))
    assert again.stdout.splitlines()[0].split()[4:] == ["aar", "--out", str(tmp_path / "aar"), "--resume"]


def test_train_script_refuses_unknown_names_and_has_no_placeholders():
    assert 'PLACEHOLDER"' not in SCRIPT.read_text().split("declare -A TRAIN")[1].split(")")[0]
    unknown = _script("no-such-model")
    assert unknown.returncode == 2 and "unknown model 'no-such-model'" in unknown.stderr
