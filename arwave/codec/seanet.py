"""SEANet encoder / decoder (as in Encodec and SAT): residual conv blocks, strided convs, ELU, weight
norm, optional LSTM. One network family shared by the three bottlenecks.

Lengths: the input of the encoder must be a multiple of `hop = prod(strides)` samples (the Codec pads);
then every layer maps N samples to exactly N / stride frames, and the decoder maps T frames to T * hop
samples. `causal=True` pads on the left only, so output frame t never sees input after t; this is what
lets `StreamingDecoder`-style `step(x, cache)` calls reproduce the offline decoder exactly (each layer
keeps its left context in `cache`, keyed by the layer itself). Padding is with zeros in both modes, so
streaming starts from the same zero context as the offline pass.

Inference speed (no autograd): the weight-normed weights w = g·v/‖v‖ are computed once and reused
while the parameters are unchanged (`InferenceWeight`), and streaming steps of a few frames run the
LSTM as explicit cell updates (`lstm_steps`) instead of through oneDNN, which re-packs the weights
on every call (paper codec, one frame: 57 → 7 ms for the 2 × 1024 LSTM).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm


class InferenceWeight:
    """The weight of a weight-normed conv, w = g·v/‖v‖, computed once for inference and reused until
    the parameters change. Training (autograd on) always goes through the parametrization.

    "Unchanged" = same version counters (bumped by every in-place update: optimiser steps,
    load_state_dict, EMA's lerp_), same storage and dtype. Recomputing w was most of a streaming
    decoder step: normalising the 8.4 M weights of the paper decoder's first transposed conv takes
    ~19 ms, applying them to one frame ~2 ms. Copies of the module (deepcopy, pickle) start empty."""

    __slots__ = ("key", "weight")

    def __init__(self):
        self.key, self.weight = None, None

    def __deepcopy__(self, memo) -> InferenceWeight:
        return InferenceWeight()

    def __reduce__(self):
        return InferenceWeight, ()

    def __call__(self, conv: nn.Module) -> torch.Tensor:
        if torch.is_grad_enabled():
            return conv.weight
        p = conv.parametrizations.weight
        g, v = p.original0, p.original1
        try:
            key = (g._version, v._version, g.data_ptr(), v.data_ptr(), g.dtype, g.device)
        except RuntimeError:  # inference tensors keep no version counter
            return conv.weight
        if key != self.key:
            self.weight, self.key = conv.weight, key
        return self.weight


def _step(module: nn.Module, x: torch.Tensor, cache: dict) -> torch.Tensor:
    """Streaming call for layers that keep state; stateless layers (ELU) are just applied."""
    return module.step(x, cache) if hasattr(module, "step") else module(x)


class SConv1d(nn.Module):
    """Weight-normed Conv1d whose output has exactly ceil(N / stride) frames for N % stride == 0.

    padding_total = (kernel - 1) * dilation + 1 - stride, all on the left when causal, else split
    (right gets the smaller half, as in Encodec)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, causal: bool = False):
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(cin, cout, kernel, stride=stride, dilation=dilation))
        self.stride = stride
        self.causal = causal
        self.pad_total = (kernel - 1) * dilation + 1 - stride
        self.inference_weight = InferenceWeight()

    def _pads(self) -> tuple[int, int]:
        if self.causal:
            return self.pad_total, 0
        right = self.pad_total // 2
        return self.pad_total - right, right

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return F.conv1d(x, self.inference_weight(c), c.bias, c.stride, 0, c.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(F.pad(x, self._pads()))

    def step(self, x: torch.Tensor, cache: dict) -> torch.Tensor:
        """Causal streaming: prepend the last `pad_total` inputs seen (zeros at the start)."""
        assert self.causal and self.stride == 1, "streaming needs a causal stride-1 conv"
        if self.pad_total == 0:
            return self._conv(x)
        past = cache.get(self)
        if past is None:
            past = x.new_zeros(x.shape[0], x.shape[1], self.pad_total)
        xx = torch.cat([past, x], dim=-1)
        cache[self] = xx[..., -self.pad_total :]
        return self._conv(xx)


def _overlap_add(x: torch.Tensor, w: torch.Tensor, stride: int) -> torch.Tensor:
    """conv_transpose1d(x, w, stride) without bias for kernel = m·stride, as one matmul + overlap-add:
    frame t contributes W^T·x_t (C_out × kernel) to output blocks t..t+m−1 of `stride` samples."""
    B, cin, n = x.shape
    cout, kernel = w.shape[1:]
    m = kernel // stride
    y = (x.transpose(1, 2).reshape(B * n, cin) @ w.reshape(cin, cout * kernel)).view(B, n, cout, m, stride)
    if m == 1:
        return y[:, :, :, 0].permute(0, 2, 1, 3).reshape(B, cout, n * stride)
    out = x.new_zeros(B, cout, n + m - 1, stride)
    for j in range(m):
        out[:, :, j : j + n] += y[:, :, :, j].transpose(1, 2)
    return out.view(B, cout, (n + m - 1) * stride)


class SConvTranspose1d(nn.Module):
    """Weight-normed ConvTranspose1d mapping T frames to T * stride samples.

    The full transposed conv gives (T - 1) * stride + kernel samples; kernel - stride of them are
    trimmed (all on the right when causal)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, causal: bool = False):
        super().__init__()
        self.conv = weight_norm(nn.ConvTranspose1d(cin, cout, kernel, stride=stride))
        self.stride = stride
        self.causal = causal
        self.trim = kernel - stride
        self.inference_weight = InferenceWeight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose1d(x, self.inference_weight(self.conv), self.conv.bias, stride=self.stride)
        if self.causal:
            left, right = 0, self.trim
        else:
            right = self.trim // 2
            left = self.trim - right
        return y[..., left : y.shape[-1] - right]

    def step(self, x: torch.Tensor, cache: dict) -> torch.Tensor:
        """Causal streaming: the overlapping tail of the previous frames' outputs is carried over.
        The bias is added once per output sample, as in the offline conv."""
        assert self.causal
        w = self.inference_weight(self.conv)
        cin, cout, kernel = w.shape
        if not torch.is_grad_enabled() and kernel % self.stride == 0 and x.shape[-1] * self.stride <= cin:
            y = _overlap_add(x, w, self.stride)  # same sums; oneDNN is up to 4x slower on these shapes
        else:
            y = F.conv_transpose1d(x, w, None, stride=self.stride)  # (B, C, n*s + trim)
        tail = cache.get(self)
        if tail is not None and self.trim > 0:
            y = torch.cat([y[..., : self.trim] + tail, y[..., self.trim :]], dim=-1)
        n = x.shape[-1] * self.stride
        cache[self] = y[..., n:]
        return y[..., :n] + self.conv.bias[None, :, None]


def lstm_steps(lstm: nn.LSTM, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
    """nn.LSTM's computation (batch_first, unidirectional) written out: x (B, n, D), state (h, c) each
    (layers, B, H) or None -> (y (B, n, H), (h, c)). Per layer and time step (PyTorch's gate order):

        i, f, g, o = split(W_ih·x_t + b_ih + W_hh·h + b_hh);  c ← σ(f)·c + σ(i)·tanh(g);  h ← σ(o)·tanh(c)

    For a few time steps without autograd this is ~8× faster than nn.LSTM on CPU, whose oneDNN path
    re-packs all weights on every call; for long sequences nn.LSTM is faster."""
    B, n, _ = x.shape
    L, H = lstm.num_layers, lstm.hidden_size
    if state is None:
        zeros = x.new_zeros(L, B, H)
        state = (zeros, zeros)
    hs, cs = [], []
    for layer in range(L):
        w_ih, w_hh, b_ih, b_hh = (
            getattr(lstm, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
        gx = F.linear(x, w_ih, b_ih)  # input part of every step at once
        h, c = state[0][layer], state[1][layer]
        out = []
        for t in range(n):
            i, f, g, o = (gx[:, t] + F.linear(h, w_hh, b_hh)).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            out.append(h)
        x = out[0][:, None] if n == 1 else torch.stack(out, dim=1)
        hs.append(h)
        cs.append(c)
    return x, (torch.stack(hs), torch.stack(cs))


class SLSTM(nn.Module):
    """LSTM over time with a skip connection (y = LSTM(x) + x); unidirectional, hence causal."""

    step_frames = 16  # streaming steps up to this many frames use `lstm_steps` (no autograd)

    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, layers, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x.transpose(1, 2))
        return y.transpose(1, 2) + x

    def step(self, x: torch.Tensor, cache: dict) -> torch.Tensor:
        if not torch.is_grad_enabled() and x.shape[-1] <= self.step_frames:
            y, state = lstm_steps(self.lstm, x.transpose(1, 2), cache.get(self))
        else:
            y, state = self.lstm(x.transpose(1, 2), cache.get(self))
        cache[self] = state
        return y.transpose(1, 2) + x


class ResBlock(nn.Module):
    """ELU -> conv k3 (C -> C/2, dilated) -> ELU -> conv k1 (C/2 -> C), plus a 1x1-conv shortcut (SAT)."""

    def __init__(self, dim: int, dilation: int = 1, causal: bool = False, kernel: int = 3):
        super().__init__()
        hidden = max(dim // 2, 1)
        self.block = nn.Sequential(
            nn.ELU(),
            SConv1d(dim, hidden, kernel, dilation=dilation, causal=causal),
            nn.ELU(),
            SConv1d(hidden, dim, 1, causal=causal),
        )
        self.shortcut = SConv1d(dim, dim, 1, causal=causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)

    def step(self, x: torch.Tensor, cache: dict) -> torch.Tensor:
        h = x
        for m in self.block:
            h = _step(m, h, cache)
        return self.shortcut(x) + h


def stage_channels(width: int, num_stages: int, max_channels: int) -> list[int]:
    """Channels before each down-sampling stage and after the last: width * 2^i, capped."""
    return [min(width * 2**i, max_channels) for i in range(num_stages + 1)]


class SEANetEncoder(nn.Module):
    """(B, channels, N) -> (B, out_dim, N / hop)."""

    def __init__(
        self,
        channels: int,
        out_dim: int,
        strides: Sequence[int],
        width: int = 32,
        max_channels: int = 1024,
        residual_layers: int = 1,
        lstm_layers: int = 2,
        causal: bool = False,
        dilation_base: int = 2,
    ):
        super().__init__()
        chans = stage_channels(width, len(strides), max_channels)
        layers: list[nn.Module] = [SConv1d(channels, chans[0], 7, causal=causal)]
        for i, s in enumerate(strides):
            layers += [ResBlock(chans[i], dilation_base**j, causal) for j in range(residual_layers)]
            layers += [nn.ELU(), SConv1d(chans[i], chans[i + 1], 2 * s, stride=s, causal=causal)]
        if lstm_layers:
            layers.append(SLSTM(chans[-1], lstm_layers))
        layers += [nn.ELU(), SConv1d(chans[-1], out_dim, 7, causal=causal)]
        self.layers = nn.Sequential(*layers)
        self.hop = math.prod(strides)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        assert audio.shape[-1] % self.hop == 0, (
            f"encoder input length {audio.shape[-1]} is not a multiple of hop {self.hop}"
        )
        return self.layers(audio)


class SEANetDecoder(nn.Module):
    """(B, in_dim, T) -> (B, channels, T * hop). Mirrors the encoder; no output non-linearity (SAT)."""

    def __init__(
        self,
        channels: int,
        in_dim: int,
        strides: Sequence[int],
        width: int = 32,
        max_channels: int = 1024,
        residual_layers: int = 1,
        lstm_layers: int = 2,
        causal: bool = False,
        dilation_base: int = 2,
    ):
        super().__init__()
        chans = stage_channels(width, len(strides), max_channels)[::-1]
        layers: list[nn.Module] = [SConv1d(in_dim, chans[0], 7, causal=causal)]
        if lstm_layers:
            layers.append(SLSTM(chans[0], lstm_layers))
        for i, s in enumerate(reversed(list(strides))):
            layers += [nn.ELU(), SConvTranspose1d(chans[i], chans[i + 1], 2 * s, s, causal=causal)]
            layers += [ResBlock(chans[i + 1], dilation_base**j, causal) for j in range(residual_layers)]
        layers += [nn.ELU(), SConv1d(chans[-1], channels, 7, causal=causal)]
        self.layers = nn.Sequential(*layers)
        self.hop = math.prod(strides)
        self.causal = causal

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)

    @torch.no_grad()
    def prepare_inference(self) -> None:
        """Compute every conv's inference weight now (see `InferenceWeight`), not in the first call."""
        for m in self.modules():
            if isinstance(m, (SConv1d, SConvTranspose1d)):
                m.inference_weight(m.conv)

    def step(self, z: torch.Tensor, cache: dict[Any, Any]) -> torch.Tensor:
        """Streaming decode of n new frames (B, in_dim, n) -> (B, channels, n * hop); causal only."""
        assert self.causal, "streaming decoding needs a causal decoder"
        h = z
        for m in self.layers:
            h = _step(m, h, cache)
        return h
