"""Training as a tool (issue 13): gradient accumulation equals the large batch, a TOML config file
with --set on top, progress lines with loss, steps/s and ETA, TensorBoard event files and samples."""

import sys
from pathlib import Path

import pytest
import torch

from arwave import checkpoint as ckpt
from arwave.training.loop import Progress, format_seconds, train
from arwave.training.sampler import ResumableBatchSampler

sys.path.insert(0, str(Path(__file__).parent))
from toy_kind import register_toy, toy_preset  # noqa: E402

register_toy()


def toy_cli(argv: list[str]) -> int:
    """`arwave train toy ARGS` as main() runs it (the toy kind is not among the CLI's choices)."""
    from arwave.cli.main import build_parser
    from arwave.errors import ArwaveError

    args = build_parser().parse_args(["train", "codec", *argv])
    args.kind = "toy"
    try:
        return args.func(args)
    except ArwaveError as err:
        print(f"arwave: error: {err}", file=sys.stderr)
        return 2


def weights(run_dir, name="model"):
    return ckpt.load_tensors(ckpt.latest_checkpoint(run_dir) / f"{name}.safetensors")


def _toy(batch, accumulate, steps=6):
    cfg = toy_preset()
    cfg.data.batch_size, cfg.train.accumulate, cfg.train.max_steps = batch, accumulate, steps
    cfg.train.ema_decay, cfg.train.val_every, cfg.train.tensorboard = 0.0, 0, False
    return cfg


def test_sampler_micro_batches_make_up_the_large_batch():
    big = ResumableBatchSampler(64, 8, seed=3)
    small = ResumableBatchSampler(64, 4, seed=3, accumulate=2)
    b, s = iter(big), iter(small)
    for _ in range(10):  # crosses an epoch boundary (8 steps per epoch)
        assert next(b) == next(s) + next(s)
    assert small.steps_per_epoch == big.steps_per_epoch == 8
    with pytest.raises(Exception, match="× 4 accumulated"):
        ResumableBatchSampler(10, 4, accumulate=4)


def test_accumulating_two_micro_batches_equals_one_double_batch(tmp_path):
    large = train(_toy(8, 1), tmp_path / "large", progress=False)
    accumulated = train(_toy(4, 2), tmp_path / "accumulated", progress=False)
    single = train(_toy(4, 1), tmp_path / "single", progress=False)
    a, b, c = weights(large), weights(accumulated), weights(single)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    assert any(not torch.allclose(a[k], c[k], atol=1e-4) for k in a)  # a plain batch of 4 differs

    # the logged loss of a step is the mean over its micro-batches: the large batch's loss
    def losses(run):
        rows = [r.split(",") for r in (run / "metrics.csv").read_text().splitlines()[1:]]
        return [float(r[3]) for r in rows if r[1] == "train" and r[2] == "loss"]

    assert losses(large) == pytest.approx(losses(accumulated), rel=1e-4)


def test_accumulation_resumes_exactly(tmp_path):
    straight = train(_toy(4, 2, steps=10), tmp_path / "straight", progress=False)
    cfg = _toy(4, 2, steps=10)
    cfg.model.interrupt_at = 7
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed", progress=False)
    train(_toy(4, 2, steps=10), tmp_path / "resumed", resume=True, progress=False)
    for name in ("model", "optim"):
        a, b = weights(straight, name), weights(tmp_path / "resumed", name)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=f"{name}:{k}")


def test_accumulate_must_be_at_least_one(capsys):
    assert toy_cli(["--set", "train.accumulate=0", "--out", "/nonexistent/x"]) == 2
    assert "train.accumulate must be a whole number >= 1" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# --config FILE.toml


def test_toml_config_then_set_overrides(tmp_path, capsys):
    conf = tmp_path / "run.toml"
    conf.write_text(
        'kind = "toy"\n\n[model]\nwidth = 8\n\n[data]\nbatch_size = 2\n\n'
        "[train]\nmax_steps = 4\nlr = 0.02\nbetas = [0.8, 0.9]\nval_every = 0\ntensorboard = false\n"
    )
    run = tmp_path / "run"
    assert toy_cli(["--config", str(conf), "--set", "train.lr=0.05", "--out", str(run), "--quiet"]) == 0
    saved = ckpt.read_config(run)
    assert saved.model.width == 8 and saved.data.batch_size == 2 and saved.train.max_steps == 4
    assert saved.train.betas == (0.8, 0.9)
    assert saved.train.lr == 0.05  # --set wins over the file
    assert ckpt.latest_checkpoint(run).name == "step-00000004"


@pytest.mark.parametrize(
    "text,message",
    [
        ("[train]\nlr = -1\n", "train.lr = -1: must be a number > 0"),
        ("[train]\nspeed = 3\n", "[train] has no setting 'speed'"),
        ('kind = "cam"\n', "is a cam config"),
        ('[model]\nwidth = "wide"\n', 'model.width = "wide": must be a whole number'),
        ("learning_rate = 1\n", "unknown keys ['learning_rate']"),
        ("[train\n", "not valid TOML"),
    ],
)
def test_bad_toml_is_one_line_naming_the_file(tmp_path, capsys, text, message):
    conf = tmp_path / "bad.toml"
    conf.write_text(text)
    assert toy_cli(["--config", str(conf), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "bad.toml" in err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------------
# progress lines, TensorBoard, samples


def test_progress_lines_have_loss_speed_and_eta(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        toy_cli(
            [
                "--max-steps",
                "12",
                "--set",
                "train.print_every=4",
                "--set",
                "train.val_every=0",
                "--set",
                "train.tensorboard=false",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["1/12", "4/12", "8/12", "12/12"]
    assert all("loss " in line and "steps/s" in line and "ETA " in line for line in lines)
    assert lines[-1].endswith("ETA 0s")
    assert toy_cli(["--max-steps", "12", "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""  # --quiet: nothing but errors and warnings


def test_progress_eta_follows_the_budget():
    class TC:
        print_every, log_every, max_steps, minutes = 10, 5, 100, 0.0

    p = Progress(TC, 0, 0.0)
    for _ in range(10):
        p.add(2.0)
    assert p.line(10, 5.0, 0.0) == "step  10/100  loss 2  2 steps/s  ETA 45s"  # 90 steps at 2/s
    TC.minutes, TC.max_steps = 1.0, 10**9
    q = Progress(TC, 0, 0.0)
    assert q.line(10, 20.0, 0.0).endswith("ETA 40s")  # the time budget ends first
    assert format_seconds(125) == "2m05s" and format_seconds(3725) == "1h02m"


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"audio": 0, "images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_tensorboard_scalars_audio_and_spectrograms(tmp_path):
    from arwave.training.logger import TensorBoard, spectrogram_image
    from arwave.training.loop import write_samples

    cfg = toy_preset()
    cfg.train.max_steps = 6
    run = train(cfg, tmp_path / "run", progress=False)
    acc = _events(run / "tensorboard")
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    assert {"val/loss", "train/lr", "train/grad_norm"} <= set(acc.Tags()["scalars"])

    class Clips:
        def samples(self, model, step):
            t = torch.arange(8000) / 8000
            return {
                "tone": (0.5 * torch.sin(2 * torch.pi * 440 * t).repeat(2, 1), 8000),
                "reference": (torch.zeros(1, 8000), 8000),
            }

    tb = TensorBoard(tmp_path / "tb")
    paths = write_samples(Clips(), torch.nn.Linear(1, 1), tmp_path, 3, tb)
    paths += write_samples(Clips(), torch.nn.Linear(1, 1), tmp_path, 6, tb)
    tb.close()
    assert sorted(p.name for p in paths) == ["reference.wav", "tone-00000003.wav", "tone-00000006.wav"]
    acc = _events(tmp_path / "tb")
    assert [a.step for a in acc.Audio("samples/tone")] == [3, 6]
    assert acc.Audio("samples/tone")[0].sample_rate == 8000
    assert [i.step for i in acc.Images("spectrogram/tone")] == [3, 6]
    img = spectrogram_image(0.5 * torch.sin(2 * torch.pi * 1000 * torch.arange(8000) / 8000), 8000)
    assert img.dtype.name == "uint8" and img.shape[2] == 3
    row = img[:, :, :].astype(float).sum(axis=(1, 2))
    # 1 kHz of a 4 kHz band: the brightest row a quarter of the way up from the bottom (high frequencies on top)
    assert abs(row.argmax() / img.shape[0] - 0.75) < 0.05


def test_tensorboard_resume_purges_what_came_after_the_checkpoint(tmp_path):
    cfg = toy_preset()
    cfg.train.max_steps, cfg.model.interrupt_at = 20, 13
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", progress=False)
    cfg = toy_preset()
    cfg.train.max_steps = 20
    train(cfg, tmp_path / "run", resume=True, progress=False)
    steps = [e.step for e in _events(tmp_path / "run" / "tensorboard").Scalars("train/loss")]
    assert steps == list(range(1, 21))
