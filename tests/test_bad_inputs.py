"""Bad inputs and faults (issue 15): each gives exit code 2 and one clear line, and no file the user
already had is changed. Tiny CAM run from conftest for generate/stream/encode/decode/eval, the toy
kind for the training loop."""

import argparse
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import arwave
from arwave import checkpoint as ckpt
from arwave.cli.main import main
from arwave.config import ConfigError, DataConfig, TrainConfig, apply_overrides, validate_config
from arwave.errors import ArwaveError, ArwaveWarning, Terminated
from arwave.registry import KIND_NAMES, get_kind, preset
from arwave.training.loop import DivergenceWatch, train

sys.path.insert(0, str(Path(__file__).parent))
from toy_kind import ToyTask, register_toy, toy_preset  # noqa: E402

register_toy()


@pytest.fixture(autouse=True)
def _no_loss_plot(monkeypatch):
    """The PNG of the curves is most of a toy run's time and none of what is tested here."""
    monkeypatch.setattr("arwave.training.loop.plot_metrics", lambda *a, **k: None)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: what must not change."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("arwave: error: "), err
    return lines[0]


@pytest.fixture
def files(tmp_path):
    """A folder with an existing wav, a regular file used as a 'folder', an audio input and a link loop."""
    d = tmp_path / "user"
    d.mkdir()
    sf.write(d / "old.wav", 0.1 * np.ones((100, 2)), 16000)
    (d / "old.safetensors").write_bytes(b"precious")
    (d / "afile").write_text("not a folder")
    sf.write(d / "in.wav", 0.1 * np.sin(np.arange(8000) / 5.0)[:, None].repeat(2, 1), 16000)
    os.symlink(d / "loop-b", d / "loop-a")
    os.symlink(d / "loop-a", d / "loop-b")
    (d / "folder.wav").mkdir()
    (d / "songs").mkdir()
    sf.write(d / "songs" / "a.wav", 0.1 * np.ones((1600, 1)), 16000)
    (d / "songs" / "manifest.jsonl").write_text('{"path": "mine"}\n')
    return d


# ---------------------------------------------------------------------------------------------------
# the command line: (argv with RUN, CODEC and D for the user folder, message expected)

CLI_CASES = {
    "generate-existing-out": (
        ["generate", "RUN", "--seconds", "0.05", "--out", "D/old.wav"],
        "already exists; pass --overwrite",
    ),
    "generate-bad-extension": (["generate", "RUN", "--seconds", "0.05", "--out", "D/clip.txt"], "extension '.txt'"),
    "generate-parent-is-file": (
        ["generate", "RUN", "--seconds", "0.05", "--out", "D/afile/x.wav"],
        "afile is a file, not a folder",
    ),
    "generate-out-is-folder": (["generate", "RUN", "--seconds", "0.05", "--out", "D/folder.wav"], "is a folder"),
    "generate-seconds-inf": (
        ["generate", "RUN", "--seconds", "inf", "--out", "D/new.wav"],
        "--seconds inf: must be a finite number > 0",
    ),
    "generate-seconds-nan": (
        ["generate", "RUN", "--seconds", "nan", "--out", "D/new.wav"],
        "must be a finite number > 0",
    ),
    "generate-seconds-huge": (
        ["generate", "RUN", "--seconds", "1e9", "--out", "D/new.wav"],
        "pass --max-seconds 1e+09",
    ),
    "generate-num-huge": (
        ["generate", "RUN", "--seconds", "10", "--num", "1000000", "--out", "D/new.wav"],
        "GB of memory",
    ),
    "generate-head-steps-negative": (
        ["generate", "RUN", "--seconds", "0.05", "--head-steps", "-3", "--out", "D/new.wav"],
        "--head-steps -3: must be >= 1",
    ),
    "generate-temperature-negative": (
        ["generate", "RUN", "--seconds", "0.05", "--temperature", "-1", "--out", "D/new.wav"],
        "--temperature -1: must be >= 0",
    ),
    "generate-on-a-codec-run": (
        ["generate", "CODEC", "--seconds", "0.05", "--out", "D/new.wav"],
        "does not generate audio",
    ),
    "generate-run-is-link-loop": (
        ["generate", "D/loop-a", "--seconds", "0.05", "--out", "D/new.wav"],
        "symbolic link loop",
    ),
    "generate-prompt-is-link-loop": (
        ["generate", "RUN", "--seconds", "0.05", "--prompt", "D/loop-a", "--out", "D/new.wav"],
        "loop-a: symbolic link loop",
    ),
    "stream-existing-out": (["stream", "RUN", "--seconds", "0.05", "--out", "D/old.wav"], "already exists"),
    "stream-bad-k-inf-over-existing": (
        ["stream", "RUN", "--k-inf", "2", "--out", "D/old.wav", "--overwrite"],
        "--k-inf 2: must be in [0, 1)",
    ),
    "stream-seconds-inf-over-existing": (
        ["stream", "RUN", "--seconds", "inf", "--out", "D/old.wav", "--overwrite"],
        "must be a finite number > 0",
    ),
    "stream-not-wav": (["stream", "RUN", "--seconds", "0.05", "--out", "D/new.mp3"], "extension '.mp3'"),
    "encode-existing-out": (["encode", "CODEC", "D/in.wav", "D/old.safetensors"], "already exists"),
    "encode-bad-extension": (["encode", "CODEC", "D/in.wav", "D/codes.npy"], "extension '.npy'"),
    "encode-with-a-cam-run": (["encode", "RUN", "D/in.wav", "D/codes.safetensors"], "not a codec run"),
    "decode-existing-out": (["decode", "CODEC", "D/old.safetensors", "D/old.wav"], "already exists"),
    "decode-not-an-encoded-file": (
        ["decode", "CODEC", "D/old.safetensors", "D/new.wav"],
        "not a readable safetensors file",
    ),
    "prepare-existing-manifest": (["data", "prepare", "D/songs"], "manifest.jsonl: already exists; pass --overwrite"),
    "prepare-out-under-a-file": (["data", "prepare", "D/songs", "--out", "D/afile/m.jsonl"], "is a file, not a folder"),
    "prepare-dir-is-link-loop": (["data", "prepare", "D/loop-a", "--out", "D/m.jsonl"], "symbolic link loop"),
    "eval-recon-on-a-cam-run": (["eval", "recon", "RUN"], "eval recon measures codec runs"),
    "eval-gen-on-a-codec-run": (["eval", "gen", "CODEC", "--seconds", "0.05"], "does not generate audio"),
    "train-set-betas-scalar": (
        ["train", "cam", "--set", "train.betas=0.9", "--out", "D/run"],
        "train.betas must be 2 values",
    ),
    "train-set-batch-zero": (
        ["train", "cam", "--set", "data.batch_size=0", "--out", "D/run"],
        "data.batch_size must be a whole number >= 1",
    ),
    "train-set-log-every-zero": (
        ["train", "cam", "--set", "train.log_every=0", "--out", "D/run"],
        "train.log_every must be a whole number >= 1",
    ),
    "train-set-lr-nan": (["train", "cam", "--set", "train.lr=nan", "--out", "D/run"], "train.lr must be a number > 0"),
    "train-set-lr-negative": (
        ["train", "cam", "--set", "train.lr=-1", "--out", "D/run"],
        "train.lr must be a number > 0",
    ),
    "train-set-model-section": (["train", "cam", "--set", "model=3", "--out", "D/run"], "model is a section"),
    "train-set-kind": (["train", "cam", "--set", "kind=codec", "--out", "D/run"], "chosen by the command"),
    "train-set-device-tpu": (
        ["train", "cam", "--set", "train.device=tpu", "--out", "D/run"],
        "must be one of auto, cpu, cuda",
    ),
    "train-set-width-text": (
        ["train", "cam", "--set", "width=wide", "--out", "D/run"],
        "model.width must be a whole number >= 1",
    ),
    "train-out-under-a-file": (["train", "cam", "--codec", "CODEC", "--out", "D/afile/run"], "is a file, not a folder"),
    "train-codec-is-a-cam-run": (["train", "cam", "--codec", "RUN", "--out", "D/run"], "a cam run, not a codec run"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_input_is_one_line_and_changes_nothing(case, cam_run, files, capsys):
    argv, message = CLI_CASES[case]
    argv = [
        a.replace("CODEC", str(cam_run / "codec")).replace("RUN", str(cam_run)).replace("D/", f"{files}/") for a in argv
    ]
    before_user, before_run = snapshot(files), snapshot(cam_run)
    code = main(argv)
    line = one_error_line(capsys.readouterr().err)
    assert code == 2
    assert message in line, line
    assert snapshot(files) == before_user  # nothing the user had changed, nothing half-written left
    assert snapshot(cam_run) == before_run


def test_cli_overwrite_replaces_only_when_asked(cam_run, files, capsys):
    target = files / "old.wav"
    assert main(["stream", str(cam_run), "--seconds", "0.05", "--out", str(target), "--overwrite"]) == 0
    assert sf.read(target)[0].shape == (800, 2)
    assert [p.name for p in files.iterdir() if p.name.startswith(".")] == []  # the temp file was renamed away
    assert main(["generate", str(cam_run), "--seconds", "0.05", "--out", str(target), "--overwrite"]) == 0


def test_read_only_folder_is_refused_before_any_work(cam_run, files, capsys, monkeypatch):
    real = tempfile.mkstemp

    def refuse_in_files(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == files:
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse_in_files)
    loaded = []
    monkeypatch.setattr(arwave, "load", lambda *a, **k: loaded.append(a))
    assert main(["generate", str(cam_run), "--seconds", "0.05", "--out", str(files / "new.wav")]) == 2
    assert "is not writable" in one_error_line(capsys.readouterr().err)
    assert loaded == []  # refused before the model was even loaded


@pytest.mark.skipif(not os.path.isdir("/sys"), reason="needs Linux /sys")
@pytest.mark.parametrize("command", ["generate", "train", "prepare"])
def test_a_folder_that_refuses_writes_is_found_even_as_root(command, cam_run, files, capsys):
    """Permission bits say yes to root everywhere; /sys (like a read-only mount) still refuses a new file."""
    out = "/sys/arwave-out"
    argv = {
        "generate": ["generate", str(cam_run), "--seconds", "0.05", "--out", out + ".wav"],
        "train": ["train", "cam", "--out", out],
        "prepare": ["data", "prepare", str(files), "--out", out + ".jsonl"],
    }[command]
    assert main(argv) == 2
    assert "is not writable" in one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------------------------------
# every load path: a wrong checkpoint is one clear line


def _break_config(run: Path, how: str) -> None:
    cfg = json.loads((run / "config.json").read_text())
    if how == "not-json":
        (run / "config.json").write_text("{ half")
    elif how == "missing-model":
        del cfg["model"]
    elif how == "mistyped-lr":
        cfg["train"]["lr"] = "fast"
    elif how == "bool-as-int":
        cfg["model"]["depth"] = True
    elif how == "wrong-shape":
        cfg["model"]["width"] = 64
    elif how == "wrong-kind":
        cfg["kind"] = "codec"
    elif how == "not-an-object":
        cfg = [1, 2]
    if how != "not-json":
        (run / "config.json").write_text(json.dumps(cfg))


LOAD_CASES = {
    "not-json": "unreadable config",
    "missing-model": "missing 'model'",
    "mistyped-lr": 'train.lr = "fast": must be a number > 0',
    "bool-as-int": "model.depth = true",
    "wrong-shape": "weights do not match the config (size mismatch",
    "wrong-kind": "unknown keys",
    "not-an-object": "expected a JSON object",
}


@pytest.mark.parametrize("how", list(LOAD_CASES))
def test_wrong_checkpoint_is_one_line_on_every_load_path(how, cam_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(cam_run, run, symlinks=True)
    _break_config(run, how)
    for argv in (
        ["generate", str(run), "--seconds", "0.05", "--out", str(tmp_path / "x.wav")],
        ["stream", str(run), "--seconds", "0.05", "--out", str(tmp_path / "x.wav")],
        ["eval", "gen", str(run), "--seconds", "0.05"],
    ):
        assert main(argv) == 2
        assert LOAD_CASES[how] in one_error_line(capsys.readouterr().err)
    with pytest.raises(ArwaveError, match="config.json"):
        arwave.load(run) if how != "wrong-shape" else arwave.load(tmp_path / "nowhere" / "config.json")


def test_crafted_encoded_files_are_one_line(cam_run, files, tmp_path, capsys):
    codec = cam_run / "codec"
    enc = tmp_path / "in.safetensors"
    assert main(["encode", str(codec), str(files / "in.wav"), str(enc)]) == 0
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(enc), framework="pt") as f:
        meta, latents = f.metadata(), f.get_tensor("latents")
    cases = {
        "no-metadata": ({"latents": latents}, None, "not an arwave encoded file"),
        "wrong-dim": ({"latents": latents[:, :3]}, meta, "latents must be finite floats of shape (1, 8, frames)"),
        "wrong-name": ({"codes": latents.long()}, meta, "should hold latents, found codes"),
        "no-length": ({"latents": latents}, {k: v for k, v in meta.items() if k != "num_samples"}, "damaged metadata"),
    }
    for name, (tensors, metadata, message) in cases.items():
        bad = tmp_path / f"{name}.safetensors"
        save_file(tensors, str(bad), metadata=metadata)
        assert main(["decode", str(codec), str(bad), str(tmp_path / f"{name}.wav")]) == 2, name
        assert message in one_error_line(capsys.readouterr().err), name
        assert not (tmp_path / f"{name}.wav").exists()


# ---------------------------------------------------------------------------------------------------
# config validation: one place, the dataclasses say what is allowed


def test_every_limit_names_a_real_field_and_every_preset_passes():
    for kind in KIND_NAMES:
        k = get_kind(kind)
        for cls in (k.config_cls, DataConfig, TrainConfig):
            assert set(getattr(cls, "LIMITS", {})) <= {f.name for f in dataclasses.fields(cls)}, cls
        for name in k.presets:
            validate_config(preset(kind, name))


def test_config_values_from_python_are_checked_when_training_starts(tmp_path):
    cfg = toy_preset()
    cfg.train.keep_checkpoints = -1
    with pytest.raises(ConfigError, match=r"train.keep_checkpoints = -1: must be a whole number >= 0"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_set_values_are_normalised():
    cfg = apply_overrides(preset("cam", "tiny"), ["train.betas=0.8,0.9", "train.lr=1", "train.device=cuda:1"])
    assert cfg.train.betas == (0.8, 0.9) and cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


# ---------------------------------------------------------------------------------------------------
# training: resume never damages the run, divergence keeps the good checkpoint, faults


def _trained(tmp_path, steps=10, keep=10) -> Path:
    cfg = toy_preset()
    cfg.train.max_steps, cfg.train.keep_checkpoints = steps, keep
    return train(cfg, tmp_path / "run", progress=False)


def _resume_args(run: Path, overrides=(), max_steps=None) -> argparse.Namespace:
    return argparse.Namespace(
        kind="toy",
        preset="tiny",
        out=str(run),
        resume=True,
        quiet=True,
        data=None,
        codec=None,
        overrides=list(overrides),
        max_steps=max_steps,
        minutes=None,
    )


@pytest.mark.parametrize(
    "overrides,max_steps,message",
    [
        (["width=64"], None, "weights do not match the config (size mismatch"),
        ([], 5, "its checkpoint is at step 10"),
        (["train.lr=-1"], None, "train.lr must be a number > 0"),
    ],
)
def test_failing_resume_leaves_the_run_as_it_was(tmp_path, overrides, max_steps, message):
    from arwave.cli.train import run as cli_train

    run = _trained(tmp_path)
    before = snapshot(run)
    with pytest.raises(ArwaveError, match=message.replace("(", r"\(")):
        cli_train(_resume_args(run, overrides, max_steps))
    assert snapshot(run) == before
    arwave.load(run)  # and it still loads
    cli_train(_resume_args(run, max_steps=15))  # and the corrected resume works
    assert ckpt.latest_checkpoint(run).name == "step-00000015"


def test_resume_with_the_wrong_kind_or_a_broken_state_is_one_line(tmp_path):
    from arwave.cli.train import run as cli_train

    run = _trained(tmp_path)
    args = _resume_args(run)
    args.kind = "cam"
    with pytest.raises(ArwaveError, match="a toy run; resume it with `arwave train toy"):
        cli_train(args)
    (ckpt.latest_checkpoint(run) / "state.json").write_text('{"step": "ten"}')
    before = snapshot(run)
    with pytest.raises(ArwaveError, match="needs an object with an integer 'step'"):
        cli_train(_resume_args(run, max_steps=15))
    assert snapshot(run) == before


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    run = _trained(tmp_path, keep=1)
    good = snapshot(run / "checkpoints")
    cfg = ckpt.read_config(run)
    cfg.train.lr, cfg.train.max_steps = 1e10, 40  # the lr: the loss stays finite but explodes
    with pytest.raises(ArwaveError, match="training diverged at step 11: the loss .* is over 1000× its running median"):
        train(cfg, run, resume=True, progress=False)
    assert snapshot(run / "checkpoints") == good  # no checkpoint from blown-up weights, none pruned
    assert torch.isfinite(next(iter(arwave.load(run).parameters()))).all()


class _LossAt(ToyTask):
    """The toy task whose loss is replaced by `value` (or a signal is sent) at one step."""

    def __init__(self, cfg, at, value=None, sig=None):
        super().__init__(cfg)
        self.at, self.value, self.sig = at, value, sig

    def loss(self, model, batch, step):
        loss, logs = super().loss(model, batch, step)
        if step == self.at and self.sig is not None:
            os.kill(os.getpid(), self.sig)
        if step == self.at and self.value is not None:
            loss = loss * 0 + self.value
        return loss, logs


@pytest.mark.parametrize(
    "value,message",
    [
        (float("nan"), "the loss became nan"),
        (float("inf"), "the loss became inf"),
        (1e7, "the loss 1e\\+07 is over 1000× its running median"),
    ],
)
def test_a_bad_loss_stops_before_the_checkpoint_due_at_that_step(tmp_path, value, message):
    cfg = toy_preset()
    with pytest.raises(ArwaveError, match=f"diverged at step 10: {message}.*step-00000005, is kept"):
        train(cfg, tmp_path / "run", progress=False, task=_LossAt(cfg, 10, value))
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "run")] == ["step-00000005"]


def test_divergence_watch_ignores_noise_near_zero():
    watch = DivergenceWatch()
    assert all(
        watch.check(v) is None for v in [0.01, -0.02, 0.5, 3.0, -2.0, 400.0]
    )  # |loss| <= 1000 × max(|median|, 1)
    assert watch.check(5000.0) is not None


def test_sigterm_saves_a_checkpoint_like_ctrl_c(tmp_path):
    cfg = toy_preset()
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        train(cfg, tmp_path / "run", progress=False, task=_LossAt(cfg, 7, sig=signal.SIGTERM))
    assert ckpt.latest_checkpoint(tmp_path / "run").name == "step-00000007"
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is only installed while training
    train(cfg, tmp_path / "run", resume=True, progress=False)
    assert ckpt.latest_checkpoint(tmp_path / "run").name == "step-00000020"


def test_cli_exit_codes_for_sigterm_and_ctrl_c(monkeypatch, capsys):
    import arwave.cli.train as cli_train

    def raiser(exc):
        def run(args):
            raise exc

        return run

    monkeypatch.setattr(cli_train, "run", raiser(Terminated()))
    assert main(["train", "cam"]) == 143
    monkeypatch.setattr(cli_train, "run", raiser(KeyboardInterrupt()))
    assert main(["train", "cam"]) == 130


def test_stale_temp_folders_are_removed_and_a_torn_metrics_line_dropped(tmp_path):
    run = _trained(tmp_path)
    stray = run / "checkpoints" / ".tmp-step-00000015-abc"
    stray.mkdir()
    (stray / "model.safetensors").write_bytes(b"partial")
    with (run / "metrics.csv").open("a") as f:
        f.write("11,tra")  # the last write of a killed run
    cfg = ckpt.read_config(run)
    cfg.train.max_steps = 12
    with pytest.warns(ArwaveWarning, match="dropped 1 unreadable line"):
        train(cfg, run, resume=True, progress=False)
    assert not stray.exists()
    from arwave.training.logger import read_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten log is clean
        steps = sorted({r["step"] for r in read_metrics(run / "metrics.csv")})
    assert steps[-2:] == [11, 12]


@pytest.mark.parametrize(
    ("kind", "codec_preset"), [("aar", "tiny"), ("nexttoken", "tiny-rvq"), ("cam", "tiny-continuous")]
)
def test_a_vanished_training_file_is_skipped_and_the_labels_stay_aligned(kind, codec_preset, tmp_path):
    """docs/data.md: a file gone since indexing costs one warning, not the run; the labels of the files
    after it must not shift onto the wrong audio."""
    from test_aar_train import make_codec_run, make_manifest

    cfg = preset(kind, "tiny")
    cfg.model.codec_run = str(make_codec_run(tmp_path / "codec", codec_preset))
    cfg.data.manifest = str(make_manifest(tmp_path / "data"))  # train: tone0 low, tone1 high, tone2 low, tone3 high
    if kind == "nexttoken":
        cfg.model.context_frames = 20
    if kind == "cam":
        cfg.model.conditional = True
    os.remove(tmp_path / "data" / "tone1.wav")
    with pytest.warns(ArwaveWarning, match="skipped 1 of 4 file") as record:
        task = get_kind(kind).build_task(cfg, tmp_path / "run")
    assert len([w for w in record if issubclass(w.category, ArwaveWarning)]) == 1
    names = task.config.model.label_names
    low, high = names.index("low"), names.index("high")
    if kind == "aar":  # one label per window: 3 windows per kept file
        assert task.train_set.labels.tolist() == [low] * 6 + [high] * 3
    else:  # one label per kept file
        assert task.train_set.labels == [low, low, high]


def test_vanished_data_files_are_skipped_with_one_warning(tmp_path):
    from arwave.data.encoded import encode_files

    paths = []
    for i in range(3):
        sf.write(tmp_path / f"{i}.wav", 0.1 * np.ones((160, 1)), 16000)
        paths.append(str(tmp_path / f"{i}.wav"))
    os.remove(paths[1])
    skipped = []
    with pytest.warns(ArwaveWarning, match="skipped 1 of 3 file") as record:
        out = encode_files(
            paths, lambda a: a.mean(-1), tmp_path / "cache", "t", 16000, 1, progress=False, skipped=skipped
        )
    assert len(record) == 1 and len(out) == 2 and skipped == [1]
    again = []  # from the cache: the same answer
    assert len(
        encode_files(paths, lambda a: a.mean(-1), tmp_path / "cache", "t", 16000, 1, progress=False, skipped=again)
    ) == 2 and again == [1]
