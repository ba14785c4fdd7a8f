"""Inference precision of an AR model's weights: float32, bfloat16, or int8 (dynamic quantization).

Why int8: batch-1 generation on a CPU reads every weight once per step, so large matrices are bound
by memory bandwidth; int8 weights are a quarter of the bytes, and torch's own dynamically quantized
Linear (fbgemm / oneDNN int8 GEMM, activations quantized per call, per-output-channel weight scales)
needs no extra dependency. Small matrices do not gain: quantizing the activations each call costs
more than the smaller read saves, so layers below `min_features` (in·out) stay float32
(docs/benchmarks.md, "int8").

Only the AR model's nn.Linear layers change; embeddings, norms, the sampling state and the codec stay
float32, and so do the frames and latents a model returns. The quality cost is measured, not
assumed (tests/test_quantize.py, `arwave bench quality`).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from arwave.errors import ArwaveError

PRECISIONS = ("float32", "bfloat16", "int8")
# layers with fewer weights than this stay float32: at one or two rows per call (CAM, next-token) the
# int8 path of a 256 x 256 layer is 2x slower than float32, 256 x 1024 and 512 x 512 about even, and
# 1024 x 1024 or larger 3x faster (docs/benchmarks.md). A model whose steps carry many rows (AAR: a
# whole scale) sets its own `int8_min_features` (there int8 wins at every size).
MIN_FEATURES = 512 * 512 + 1


def weight_dtype(linear: nn.Module) -> torch.dtype:
    """The dtype a Linear's input should have: its weight's, or float32 for a quantized Linear
    (whose `weight` is a method returning a quantized tensor)."""
    w = linear.weight
    if callable(w):
        return torch.float32
    return w.dtype


def _int8_targets(module: nn.Module, min_features: int) -> list[tuple[nn.Module, str, nn.Linear]]:
    return [
        (parent, name, child)
        for parent in module.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear and child.weight.dtype == torch.float32 and child.weight.numel() >= min_features
    ]


def auto_precision(model: nn.Module) -> str:
    """ "int8" where it pays and is measured to keep quality (a CPU model with layers large enough to
    gain: docs/benchmarks.md), else "float32"."""
    try:
        device = next(model.parameters()).device
    except StopIteration:
        return "float32"
    if device.type != "cpu" or not hasattr(model, "set_precision"):
        return "float32"
    try:
        if is_quantized(model):
            return "float32"
    except ImportError:  # a torch without torch.ao: stay float32
        return "float32"
    return "int8" if _int8_targets(model, getattr(model, "int8_min_features", MIN_FEATURES)) else "float32"


def quantize_int8(module: nn.Module, min_features: int = MIN_FEATURES) -> int:
    """Replace (in place) every float32 nn.Linear of `module` with at least `min_features` weights by
    a dynamically quantized int8 Linear (per-channel weight scales). Returns how many were replaced.
    CPU only (torch's quantized kernels run on CPU)."""
    try:
        from torch.ao.nn.quantized.dynamic import Linear as QLinear
        from torch.ao.quantization import per_channel_dynamic_qconfig
    except ImportError as err:  # pragma: no cover - old/new torch
        raise ArwaveError(f"int8 needs torch's quantized kernels, which this torch lacks ({err})") from None
    if "x86" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "x86"
    count = 0
    targets = _int8_targets(module, min_features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        for parent, name, child in targets:
            if child.weight.device.type != "cpu":
                raise ArwaveError("int8 runs on CPU only (use --precision bfloat16 on a GPU)")
            child.qconfig = per_channel_dynamic_qconfig
            q = QLinear.from_float(child)
            del child.qconfig
            setattr(parent, name, q)
            count += 1
    return count


def is_quantized(module: nn.Module) -> bool:
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    return any(isinstance(m, QLinear) for m in module.modules())


def set_precision(model: nn.Module, precision: str, allowed: tuple[str, ...] = PRECISIONS) -> nn.Module:
    """Weights of `model` in `precision` (one of `allowed`). The caller keeps an attached codec out of
    the module tree (CAM, AAR and NextToken hold theirs as plain attributes), so it stays float32."""
    if precision not in allowed:
        raise ArwaveError(f"precision must be one of {', '.join(allowed)}, got {precision!r}")
    if is_quantized(model):
        if precision == "int8":
            return model
        raise ArwaveError("this model's weights are already int8: load it again for another precision")
    if precision == "int8":
        if next(model.parameters()).dtype != torch.float32:
            model.float()
        quantize_int8(model, getattr(model, "int8_min_features", MIN_FEATURES))
        return model
    model.to({"float32": torch.float32, "bfloat16": torch.bfloat16}[precision])
    return model
