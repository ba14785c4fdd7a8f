"""Noise augmentation of the context (CAM's fix for error accumulation) and the noise-level embedding.

Training: every context frame x_s gets its own level k_s ~ U(0, k_max) and is corrupted

    linear (CAM):  x̃_s = (1 − k_s)·x_s + k_s·ε_s            ε_s ~ N(0, I)
    vp (CALM):     x̃_s = √(1 − k_s)·x_s + √k_s·ε_s

so that the backbone learns to predict clean frames from imperfect context. The backbone is told k_s
(an embedding of it is added to the input of frame s). Inference: each generated frame x̂ enters the
context as the same corruption at a fixed small level k_inf, again with k_inf given to the model.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from arwave.models.quantize import weight_dtype

MODES = ("linear", "vp")


def corrupt(x: torch.Tensor, k: torch.Tensor | float, noise: torch.Tensor, mode: str = "linear") -> torch.Tensor:
    """x̃ from clean x, level k (broadcast over the last dim of x) and noise ε of x's shape."""
    if mode not in MODES:
        raise ValueError(f"noise_aug_mode must be one of {MODES}, got {mode!r}")
    if not torch.is_tensor(k):
        k = torch.tensor(float(k), dtype=x.dtype, device=x.device)
    if k.dim() == x.dim() - 1:
        k = k.unsqueeze(-1)
    if mode == "linear":
        return (1 - k) * x + k * noise
    return (1 - k).sqrt() * x + k.sqrt() * noise


def augment(
    x: torch.Tensor, k_max: float, mode: str = "linear", generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training corruption of frames x (B, T, D): returns (x̃, k) with k (B, T) ~ U(0, k_max) per frame.

    k_max = 0 returns x itself (no noise drawn) and k = 0."""
    B, T, _ = x.shape
    if k_max <= 0:
        return x, x.new_zeros(B, T)
    k = torch.rand(B, T, generator=generator, device=x.device, dtype=x.dtype) * k_max
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return corrupt(x, k, noise, mode), k


def renoise(
    x: torch.Tensor, k_inf: float, mode: str = "linear", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Inference: a generated frame x̂ (…, D) re-noised at the fixed level k_inf before it joins the context."""
    if k_inf <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return corrupt(x, k_inf, noise, mode)


def sinusoidal(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of scalars t (any shape) -> (*t.shape, dim): [cos(t·f_i), sin(t·f_i)],
    f_i = max_period^(−i/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.to(torch.float32)[..., None] * freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[..., :1])], dim=-1)
    return emb


class NoiseLevelEmbedding(nn.Module):
    """k ∈ [0, 1] -> width: sinusoidal(1000·k) -> Linear-SiLU-Linear. The last layer starts at zero so
    an untrained level embedding does not disturb the input projection."""

    def __init__(self, width: int, freq_dim: int = 128):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal(k * 1000.0, self.freq_dim).to(weight_dtype(self.mlp[0])))
