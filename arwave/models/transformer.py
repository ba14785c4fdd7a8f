"""One pre-norm transformer for every autoregressive model in arwave.

- CAM backbone and the next-token GPT use it causally with rotary positions.
- AAR uses it with AdaLN conditioning, l2-normalised q/k and a block-causal mask.

Incremental decoding goes through `KVCache`: rotary phases are applied with absolute positions
before keys enter the cache, so dropping the oldest entries (a sliding window) keeps every relative
distance intact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


class KVCache:
    """Keys/values of one attention layer, (B, H, L, d), plus how many positions were ever seen."""

    def __init__(self, max_len: int | None = None):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.position = 0                # absolute position of the next token
        self.max_len = max_len           # sliding window: keep at most this many entries

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        self.position += k.shape[2]
        return self.k, self.v

    def trim(self) -> None:
        """Drop the oldest entries beyond `max_len` (after the step that used them)."""
        if self.max_len is not None and self.length > self.max_len:
            self.k = self.k[:, :, -self.max_len:]
            self.v = self.v[:, :, -self.max_len:]

    def repeat(self, n: int) -> None:
        """Duplicate along the batch (e.g. for classifier-free guidance)."""
        if self.k is not None:
            self.k = self.k.repeat(n, 1, 1, 1)
            self.v = self.v.repeat(n, 1, 1, 1)


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate pairs of channels of x (B, H, L, d) by angle position·base^(-2i/d) (RoPE, half split)."""
    d = x.shape[-1]
    half = d // 2
    freqs = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[:, None] * freqs[None]            # (L, half)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:2 * half]
    rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return torch.cat([rotated, x[..., 2 * half:]], dim=-1) if d % 2 else rotated


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, rotary: bool = True, qk_norm: bool = False):
        super().__init__()
        assert dim % heads == 0, f"width {dim} is not divisible by {heads} heads"
        self.heads, self.head_dim = heads, dim // heads
        self.use_rotary, self.qk_norm = rotary, qk_norm
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        if qk_norm:
            # VAR's l2-normalised attention: logits = exp(s_h)·<q/|q|, k/|k|>, s_h learned, ≤ log 100
            self.log_scale = nn.Parameter(torch.full((1, heads, 1, 1), math.log(4.0)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | str | None = None, cache: KVCache | None = None) -> torch.Tensor:
        B, L, _ = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        start = cache.position if cache is not None else 0
        if self.use_rotary:
            pos = torch.arange(start, start + L, device=x.device)
            q, k = rotary(q, pos), rotary(k, pos)
        scale = None
        if self.qk_norm:
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
            q = q * self.log_scale.clamp(max=math.log(100.0)).exp()
            scale = 1.0
        past = cache.length if cache is not None else 0
        if cache is not None:
            k, v = cache.append(k, v)
        is_causal = False
        if isinstance(mask, str):
            assert mask == "causal"
            if past == 0:
                mask, is_causal = None, True
            elif L == 1:
                mask = None                                   # one new token sees everything cached
            else:                                             # new tokens: causal among themselves
                mask = torch.ones(L, past + L, dtype=torch.bool, device=x.device).tril(diagonal=past)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale)
        if cache is not None:
            cache.trim()
        return self.proj(out.transpose(1, 2).reshape(B, L, -1))


class MLP(nn.Module):
    def __init__(self, dim: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm block. With `cond_dim`, VAR's AdaLN: LN(x)·(1+scale)+shift and gated residuals,
    (γ1, γ2, scale1, scale2, shift1, shift2) = Linear(SiLU(cond))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, rotary: bool = True,
                 qk_norm: bool = False, cond_dim: int | None = None):
        super().__init__()
        self.adaptive = cond_dim is not None
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=not self.adaptive, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=not self.adaptive, eps=1e-6)
        self.attn = Attention(dim, heads, rotary=rotary, qk_norm=qk_norm)
        self.mlp = MLP(dim, mlp_ratio)
        if self.adaptive:
            self.ada = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))

    def forward(self, x, cond=None, mask=None, cache=None):
        if not self.adaptive:
            x = x + self.attn(self.norm1(x), mask, cache)
            return x + self.mlp(self.norm2(x))
        g1, g2, s1, s2, b1, b2 = self.ada(cond).unsqueeze(1).chunk(6, dim=-1)   # each (B, 1, dim)
        x = x + g1 * self.attn(self.norm1(x) * (1 + s1) + b1, mask, cache)
        return x + g2 * self.mlp(self.norm2(x) * (1 + s2) + b2)


@dataclass
class TransformerConfig:
    width: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    rotary: bool = True
    qk_norm: bool = False
    cond_dim: int | None = None      # AdaLN conditioning width (None: plain pre-norm blocks)


class Transformer(nn.Module):
    """A stack of blocks. `forward(x, cond, mask, caches)`: x (B, L, width) -> (B, L, width), not
    final-normed (the caller owns the output norm/head, which may itself be adaptive)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(
            Block(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.rotary, cfg.qk_norm, cfg.cond_dim) for _ in range(cfg.depth)
        )

    def new_cache(self, max_len: int | None = None) -> list[KVCache]:
        return [KVCache(max_len) for _ in self.blocks]

    def forward(self, x, cond=None, mask=None, caches: list[KVCache] | None = None):
        for i, block in enumerate(self.blocks):
            x = block(x, cond, mask, caches[i] if caches is not None else None)
        return x
