"""SEANet encoder / decoder (as in Encodec and SAT): residual conv blocks, strided convs, ELU, weight
norm, optional LSTM. One network family shared by the three bottlenecks.

Lengths: the input of the encoder must be a multiple of `hop = prod(strides)` samples (the Codec pads);
then every layer maps N samples to exactly N / stride frames, and the decoder maps T frames to T * hop
samples. `causal=True` pads on the left only, so output frame t never sees input after t; this is what
lets `StreamingDecoder`-style `step(x, cache)` calls reproduce the offline decoder exactly (each layer
keeps its left context in `cache`, keyed by the layer itself). Padding is with zeros in both modes, so
streaming starts from the same zero context as the offline pass.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm


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

    def _pads(self) -> tuple[int, int]:
        if self.causal:
            return self.pad_total, 0
        right = self.pad_total // 2
        return self.pad_total - right, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self._pads()))

    def step(self, x: torch.Tensor, cache: dict) -> torch.Tensor:
        """Causal streaming: prepend the last `pad_total` inputs seen (zeros at the start)."""
        assert self.causal and self.stride == 1, "streaming needs a causal stride-1 conv"
        if self.pad_total == 0:
            return self.conv(x)
        past = cache.get(self)
        if past is None:
            past = x.new_zeros(x.shape[0], x.shape[1], self.pad_total)
        xx = torch.cat([past, x], dim=-1)
        cache[self] = xx[..., -self.pad_total:]
        return self.conv(xx)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.causal:
            left, right = 0, self.trim
        else:
            right = self.trim // 2
            left = self.trim - right
        return y[..., left: y.shape[-1] - right]

    def step(self, x: torch.Tensor, cache: dict) -> torch.Tensor:
        """Causal streaming: the overlapping tail of the previous frames' outputs is carried over.
        The bias is added once per output sample, as in the offline conv."""
        assert self.causal
        y = F.conv_transpose1d(x, self.conv.weight, None, stride=self.stride)   # (B, C, n*s + trim)
        tail = cache.get(self)
        if tail is not None and self.trim > 0:
            y = torch.cat([y[..., : self.trim] + tail, y[..., self.trim:]], dim=-1)
        n = x.shape[-1] * self.stride
        cache[self] = y[..., n:]
        return y[..., :n] + self.conv.bias[None, :, None]


class SLSTM(nn.Module):
    """LSTM over time with a skip connection (y = LSTM(x) + x); unidirectional, hence causal."""

    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, layers, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x.transpose(1, 2))
        return y.transpose(1, 2) + x

    def step(self, x: torch.Tensor, cache: dict) -> torch.Tensor:
        y, state = self.lstm(x.transpose(1, 2), cache.get(self))
        cache[self] = state
        return y.transpose(1, 2) + x


class ResBlock(nn.Module):
    """ELU -> conv k3 (C -> C/2, dilated) -> ELU -> conv k1 (C/2 -> C), plus a 1x1-conv shortcut (SAT)."""

    def __init__(self, dim: int, dilation: int = 1, causal: bool = False, kernel: int = 3):
        super().__init__()
        hidden = max(dim // 2, 1)
        self.block = nn.Sequential(
            nn.ELU(), SConv1d(dim, hidden, kernel, dilation=dilation, causal=causal),
            nn.ELU(), SConv1d(hidden, dim, 1, causal=causal),
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
    return [min(width * 2 ** i, max_channels) for i in range(num_stages + 1)]


class SEANetEncoder(nn.Module):
    """(B, channels, N) -> (B, out_dim, N / hop)."""

    def __init__(self, channels: int, out_dim: int, strides: Sequence[int], width: int = 32,
                 max_channels: int = 1024, residual_layers: int = 1, lstm_layers: int = 2,
                 causal: bool = False, dilation_base: int = 2):
        super().__init__()
        chans = stage_channels(width, len(strides), max_channels)
        layers: list[nn.Module] = [SConv1d(channels, chans[0], 7, causal=causal)]
        for i, s in enumerate(strides):
            layers += [ResBlock(chans[i], dilation_base ** j, causal) for j in range(residual_layers)]
            layers += [nn.ELU(), SConv1d(chans[i], chans[i + 1], 2 * s, stride=s, causal=causal)]
        if lstm_layers:
            layers.append(SLSTM(chans[-1], lstm_layers))
        layers += [nn.ELU(), SConv1d(chans[-1], out_dim, 7, causal=causal)]
        self.layers = nn.Sequential(*layers)
        self.hop = math.prod(strides)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        assert audio.shape[-1] % self.hop == 0, f"encoder input length {audio.shape[-1]} is not a multiple of hop {self.hop}"
        return self.layers(audio)


class SEANetDecoder(nn.Module):
    """(B, in_dim, T) -> (B, channels, T * hop). Mirrors the encoder; no output non-linearity (SAT)."""

    def __init__(self, channels: int, in_dim: int, strides: Sequence[int], width: int = 32,
                 max_channels: int = 1024, residual_layers: int = 1, lstm_layers: int = 2,
                 causal: bool = False, dilation_base: int = 2):
        super().__init__()
        chans = stage_channels(width, len(strides), max_channels)[::-1]
        layers: list[nn.Module] = [SConv1d(in_dim, chans[0], 7, causal=causal)]
        if lstm_layers:
            layers.append(SLSTM(chans[0], lstm_layers))
        for i, s in enumerate(reversed(list(strides))):
            layers += [nn.ELU(), SConvTranspose1d(chans[i], chans[i + 1], 2 * s, s, causal=causal)]
            layers += [ResBlock(chans[i + 1], dilation_base ** j, causal) for j in range(residual_layers)]
        layers += [nn.ELU(), SConv1d(chans[-1], channels, 7, causal=causal)]
        self.layers = nn.Sequential(*layers)
        self.hop = math.prod(strides)
        self.causal = causal

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)

    def step(self, z: torch.Tensor, cache: dict[Any, Any]) -> torch.Tensor:
        """Streaming decode of n new frames (B, in_dim, n) -> (B, channels, n * hop); causal only."""
        assert self.causal, "streaming decoding needs a causal decoder"
        h = z
        for m in self.layers:
            h = _step(m, h, cache)
        return h
