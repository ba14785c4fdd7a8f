"""int8 weight-only storage of bundles: per-row symmetric quantization, undone at load."""

import torch

from arwave.checkpoint import INT8_SCALE, dequantize_tensors, quantize_int8


def test_int8_round_trip_error_is_at_most_half_a_step_per_row():
    torch.manual_seed(0)
    w = torch.randn(64, 32, 3) * torch.logspace(-3, 1, 64)[:, None, None]  # rows of very different scale
    q, s = quantize_int8(w)
    assert q.dtype == torch.int8 and s.shape == (64,)
    back = dequantize_tensors({"w": q, "w" + INT8_SCALE: s})["w"]
    step = s.float()[:, None, None]
    assert back.dtype == torch.float32 and back.shape == w.shape
    assert ((back - w).abs() <= 0.5 * step * (1 + 1e-5)).all()  # at most half a quantization step
    assert (q.reshape(64, -1).abs().amax(1) >= 126).all()  # every row uses the full range


def test_dequantize_leaves_other_tensors_and_casts_fp16():
    t = {"a": torch.ones(3, dtype=torch.float16), "codes": torch.arange(4), "b": torch.zeros(2)}
    out = dequantize_tensors(t)
    assert out["a"].dtype == torch.float32 and out["codes"].dtype == torch.int64 and set(out) == {"a", "codes", "b"}
