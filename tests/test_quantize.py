"""int8 inference (arwave/models/quantize.py): which layers change, and that the quantized models' outputs
stay close to float32 on the same seeds (the quality check of `arwave.bench.precision_quality`)."""

import pytest
import torch
import torch.nn as nn
from test_aar_model import codes_of, make_model, make_quantizer
from test_cam_model import make

from arwave.bench.precision_quality import _token_stats, cam_quality
from arwave.errors import ArwaveError
from arwave.models.quantize import is_quantized, quantize_int8, weight_dtype


def test_quantize_int8_replaces_large_linears_only_and_stays_close():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 512), nn.GELU(), nn.Linear(512, 8)).eval()
    x = torch.randn(5, 64)
    with torch.no_grad():
        ref = net(x)
    assert quantize_int8(net, min_features=64 * 512) == 1  # 512 x 8 stays float32
    assert type(net[2]) is nn.Linear and type(net[0]) is not nn.Linear
    assert weight_dtype(net[0]) == torch.float32 and weight_dtype(net[2]) == torch.float32
    with torch.no_grad():
        out = net(x)
    err = float((out - ref).norm() / ref.norm())
    assert 0 < err < 0.02  # changed, but by rounding only


def test_cam_int8_frames_close_to_float32():
    ref = make(head="rf")
    test = make(head="rf")
    test.int8_min_features = 0  # the tiny model's layers are all small
    test.set_precision("int8")
    assert is_quantized(test.backbone) and is_quantized(test.head)
    q = cam_quality(model_pair=(ref, test), frames=10, seeds=(0, 1))
    assert 0 < q["frame_rel_mse"] < 1e-3
    assert q["rollout_rel_mse"] < 0.05 * q["seed_rel_mse"]  # far closer to fp32 than another seed


def test_cam_int8_cannot_go_back_and_bfloat16_still_works():
    model = make(head="rf")
    model.int8_min_features = 0
    model.set_precision("int8").set_precision("int8")  # idempotent
    with pytest.raises(ArwaveError, match="already int8"):
        model.set_precision("float32")
    other = make(head="rf").set_precision("bfloat16")
    assert next(other.backbone.parameters()).dtype == torch.bfloat16


def test_aar_int8_logits_close_to_float32():
    q = make_quantizer()
    ref, test = make_model(q), make_model(q)
    test.int8_min_features = 0  # the tiny model's layers are all small
    test.set_precision("int8")
    assert is_quantized(test.transformer)
    with pytest.raises(ArwaveError, match="precision"):
        make_model(q).set_precision("bfloat16")
    codes = codes_of(q)
    labels = torch.tensor([0, 2])
    with torch.inference_mode():
        kl, top1 = _token_stats(ref(codes, labels), test(codes, labels))
        windows = test.sample_tokens(2, 8, seed=0, class_label=1)
    assert 0 < kl < 0.01 and top1 > 0.95
    assert windows[0].codes.shape == (2, sum(q.scales))


def test_generate_cli_precision_int8_and_quantize(cam_run, tmp_path, capsys):
    import soundfile as sf

    from arwave.cli.main import main

    for i, flags in enumerate((["--precision", "int8"], ["--quantize", "int8"], ["--precision", "auto"])):
        out = tmp_path / f"q{i}.wav"
        assert main(["generate", str(cam_run), "--seconds", "0.03", "--out", str(out), "--seed", "1", *flags]) == 0
        audio = sf.read(out, always_2d=True)[0]
        assert audio.shape == (480, 2)
    code = main(
        [
            "generate",
            str(cam_run),
            "--seconds",
            "0.03",
            "--out",
            str(tmp_path / "x.wav"),
            "--quantize",
            "int8",
            "--precision",
            "bfloat16",
        ]
    )
    assert code == 2 and "contradicts" in capsys.readouterr().err


def test_auto_precision_picks_int8_only_where_layers_are_large():
    from arwave.models.quantize import auto_precision

    small = make(head="rf")  # 32-wide: nothing to gain
    assert auto_precision(small) == "float32"
    small.int8_min_features = 0
    assert auto_precision(small) == "int8"
    small.set_precision("int8")
    assert auto_precision(small) == "float32"  # already quantized: nothing to do


def test_profile_breakdown_and_interleaved_ab():
    from arwave.bench.ab import interleaved
    from arwave.bench.profile import profile_cam

    r = profile_cam("tiny", codec="tiny", seconds=0.05, repeats=1)
    frames = r["frames"]
    assert r["parts"]["backbone"]["calls"] == frames and r["parts"]["head"]["calls"] == frames
    assert r["parts"]["decode"]["calls"] == frames
    assert abs(sum(p["share"] for p in r["parts"].values()) - 1) < 1e-3
    assert 0 < r["op_share"] < 1 and r["top_ops"]
    calls = []
    ab = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3)
    assert ab["a"]["ratio"] == 1.0 and calls.count("a") == calls.count("b") == 4  # warm-up + 3 rounds
