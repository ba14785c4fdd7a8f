"""One pre-norm transformer for every autoregressive model in arwave.

- CAM backbone and the next-token GPT use it causally with rotary positions.
- AAR uses it with AdaLN conditioning, l2-normalised q/k and a block-causal mask.

Incremental decoding goes through `KVCache`: rotary phases are applied with absolute positions
before keys enter the cache, so dropping the oldest entries (a sliding window) keeps every relative
distance intact. A sliding window can pin its first entries (`sink`: the start token the model always
saw at the head of its training window); they are re-rotated to sit just before the oldest kept entry,
so the window looks like a training window from its start (tests/test_sliding_window.py).

Decoding speed (batch-1 steps are bound by reading the weights): the cache writes into preallocated
buffers instead of concatenating, the rotary cos/sin come from a shared table (`rotary_table`), and
`Transformer.set_weight_layout` stores the widening weights in the memory order MKL reads fastest
for one-row matmuls. None of these changes a result beyond float rounding (tests/test_speed_equivalence.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


class KVCache:
    """Keys/values of one attention layer, (B, H, L, d), plus how many positions were ever seen.

    `k`, `v` are views (oldest entry first) into buffers allocated with room to spare, so a step
    writes its new entries in place instead of concatenating a copy of the whole cache; when the room
    runs out, the live entries move to the front of the buffer (a sliding window of `max_len` entries:
    once per ~max_len / 2 steps) or into a buffer twice the size (no window)."""

    def __init__(self, max_len: int | None = None, sink: int = 0, stride: int = 1, shift_keys=None):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.position = 0  # absolute position of the next token
        self.max_len = max_len  # sliding window: keep at most this many entries
        self.sink = sink  # the first `sink` entries ever appended stay in the window
        self.stride = max(1, stride)  # the window slides by multiples of `stride` entries
        self._sink: tuple[torch.Tensor, torch.Tensor] | None = None  # pinned k, v as first cached
        self.shift_keys = shift_keys  # (k, by) -> k moved `by` positions (rotary); None: no positions
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None
        self._start = 0  # k = buffer[:, :, _start:_start + length]
        if sink and (max_len is None or max_len < sink + self.stride - 1):
            raise ValueError(f"a window of {max_len} entries cannot pin {sink} and slide by {self.stride}")

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    @staticmethod
    def window_capacity(max_len: int, step: int = 1) -> int:
        """Entries a sliding-window buffer holds: the window, the step, and room for ~max_len / 2 more."""
        return max_len + step + max(16, max_len // 2)

    def _room(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Make the buffers hold the live entries from index 0 with space for `L` more after them."""
        n, L = self.length, k.shape[2]
        if self.max_len is not None:
            capacity = self.window_capacity(max(n, self.max_len), L)
        else:
            capacity = max(64, 2 * (n + L))
        B, H, _, d = k.shape
        old = self._buffers
        if old is not None and old[0].shape[2] >= n + L and old[0].shape[:2] == (B, H):
            kb, vb = old  # compact in place (regions may overlap)
            if n:
                kb[:, :, :n] = self.k.clone()
                vb[:, :, :n] = self.v.clone()
        else:
            kb = k.new_empty(B, H, capacity, d)
            vb = v.new_empty(B, H, capacity, v.shape[-1])
            if n:
                kb[:, :, :n] = self.k
                vb[:, :, :n] = self.v
        self._buffers, self._start = (kb, vb), 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, L = self.length, k.shape[2]
        buffers = self._buffers
        if (
            buffers is None
            or self._start + n + L > buffers[0].shape[2]
            or buffers[0].dtype != k.dtype
            or buffers[0].device != k.device
            or buffers[0].shape[:2] != k.shape[:2]
            or buffers[0].shape[3] != k.shape[3]
        ):
            if buffers is not None and (buffers[0].dtype != k.dtype or buffers[0].device != k.device):
                self._buffers = None
            self._room(k, v)
        kb, vb = self._buffers
        end = self._start + n + L
        kb[:, :, end - L : end] = k
        vb[:, :, end - L : end] = v
        self.k, self.v = kb[:, :, self._start : end], vb[:, :, self._start : end]
        self.position += L
        return self.k, self.v

    def trim(self) -> None:
        """Drop the oldest entries beyond `max_len` (after the step that used them), `stride` at a time.

        With `sink`, the pinned entries stay first and the oldest entries after them go; the pinned keys
        are moved to the positions just before the oldest kept entry by `shift_keys(k, by)`."""
        if self.max_len is None or self.length <= self.max_len:
            return
        drop = -(-(self.length - self.max_len) // self.stride) * self.stride
        if self.sink and self._sink is None:
            self._sink = (self.k[:, :, : self.sink].clone(), self.v[:, :, : self.sink].clone())
        self._start += drop
        self.k = self.k[:, :, drop:]
        self.v = self.v[:, :, drop:]
        if self.sink:  # the slots before the kept entries now hold the pinned ones
            k0, v0 = self._sink
            by = self.position - self.length  # pinned entries were cached at positions 0..sink-1
            self.k[:, :, : self.sink] = self.shift_keys(k0, by) if self.shift_keys is not None else k0
            self.v[:, :, : self.sink] = v0

    def repeat(self, n: int) -> None:
        """Duplicate along the batch (e.g. for classifier-free guidance)."""
        if self.k is not None:
            self.k = self.k.repeat(n, 1, 1, 1)
            self.v = self.v.repeat(n, 1, 1, 1)
            self._buffers, self._start = (self.k, self.v), 0
        if self._sink is not None:
            self._sink = tuple(t.repeat(n, 1, 1, 1) for t in self._sink)


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate pairs of channels of x (B, H, L, d) by angle position·base^(-2i/d) (RoPE, half split)."""
    d = x.shape[-1]
    half = d // 2
    freqs = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[:, None] * freqs[None]  # (L, half)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half : 2 * half]
    rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return torch.cat([rotated, x[..., 2 * half :]], dim=-1) if d % 2 else rotated


class RotaryTable:
    """cos/sin of `rotary` for positions 0..n−1, computed once and extended (doubling) as needed, so a
    decoding step slices a table instead of recomputing it. Values are those `rotary` computes (same
    float32 angles), stored in the layout x·C + swap(x)·S uses:

        C = [cos, cos],  S = [−sin, sin],  swap([x1, x2]) = [x2, x1]
        x·C + swap(x)·S = [x1·cos − x2·sin, x2·cos + x1·sin]             (= rotary's output exactly)"""

    def __init__(self, dim: int, base: float = 10000.0):
        self.half, self.base = dim // 2, base
        self.tables: dict = {}  # (device, dtype) -> (C, S), each (n, 2·half)

    def get(self, start: int, length: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        C, S = self.tables.get((device, dtype), (None, None))
        if C is None or C.shape[0] < start + length:
            n = max(256, 2 * (start + length))
            # plain tensors even when first called under inference_mode (training may reuse them)
            with torch.inference_mode(False), torch.no_grad():
                half = self.half
                freqs = self.base ** (-torch.arange(half, device=device, dtype=torch.float32) / half)
                angles = torch.arange(n, device=device).to(torch.float32)[:, None] * freqs[None]
                cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
                C, S = torch.cat([cos, cos], -1), torch.cat([-sin, sin], -1)
            self.tables[(device, dtype)] = (C, S)
        return C[start : start + length], S[start : start + length]

    def shift(self, x: torch.Tensor, by: int) -> torch.Tensor:
        """Rotate every row of x (..., L, d) by the same `by` positions (keys moved along the sequence:
        rotations compose, so a key rotated at position p becomes the key at position p + by)."""
        C, S = self.get(by, 1, x.device, x.dtype)
        h, d = self.half, x.shape[-1]
        rotated = x[..., : 2 * h] * C + torch.cat([x[..., h : 2 * h], x[..., :h]], -1) * S
        return torch.cat([rotated, x[..., 2 * h :]], dim=-1) if d % 2 else rotated

    def apply(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """rotary(x, arange(start, start + L)) for x (..., L, d)."""
        L, d = x.shape[-2], x.shape[-1]
        C, S = self.get(start, L, x.device, x.dtype)
        h = self.half
        if d % 2:
            rotated = x[..., : 2 * h] * C + torch.cat([x[..., h : 2 * h], x[..., :h]], -1) * S
            return torch.cat([rotated, x[..., 2 * h :]], dim=-1)
        return x * C + torch.cat([x[..., h:], x[..., :h]], -1) * S


_ROTARY_TABLES: dict[tuple[int, float], RotaryTable] = {}


def rotary_table(dim: int, base: float = 10000.0) -> RotaryTable:
    """The shared table for head width `dim` (one per process: every layer and model reads it)."""
    table = _ROTARY_TABLES.get((dim, base))
    if table is None:
        table = _ROTARY_TABLES.setdefault((dim, base), RotaryTable(dim, base))
    return table


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

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | str | None = None, cache: KVCache | None = None
    ) -> torch.Tensor:
        B, L, _ = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        start = cache.position if cache is not None else 0
        if self.use_rotary:
            q, k = rotary_table(self.head_dim).apply(qkv[:2], start)  # q and k in one go
            v = qkv[2]
        else:
            q, k, v = qkv
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
                mask = None  # one new token sees everything cached
            else:  # new tokens: causal among themselves
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

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        rotary: bool = True,
        qk_norm: bool = False,
        cond_dim: int | None = None,
    ):
        super().__init__()
        self.adaptive = cond_dim is not None
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=not self.adaptive, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=not self.adaptive, eps=1e-6)
        self.attn = Attention(dim, heads, rotary=rotary, qk_norm=qk_norm)
        self.mlp = MLP(dim, mlp_ratio)
        if self.adaptive:
            self.ada = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(γ1, γ2, scale1, scale2, shift1, shift2), each (B, 1, dim), for condition vectors (B, cond_dim)."""
        return self.ada(cond).unsqueeze(1).chunk(6, dim=-1)

    def forward(self, x, cond=None, mask=None, cache=None, mod=None):
        """`mod`: this block's `modulation(cond)`, precomputed (sampling: once per window, not per step)."""
        if not self.adaptive:
            x = x + self.attn(self.norm1(x), mask, cache)
            return x + self.mlp(self.norm2(x))
        g1, g2, s1, s2, b1, b2 = mod if mod is not None else self.modulation(cond)
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
    cond_dim: int | None = None  # AdaLN conditioning width (None: plain pre-norm blocks)


class Transformer(nn.Module):
    """A stack of blocks. `forward(x, cond, mask, caches)`: x (B, L, width) -> (B, L, width), not
    final-normed (the caller owns the output norm/head, which may itself be adaptive)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(
            Block(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.rotary, cfg.qk_norm, cfg.cond_dim) for _ in range(cfg.depth)
        )

    def new_cache(self, max_len: int | None = None, sink: int = 0, stride: int = 1) -> list[KVCache]:
        """One cache per block; `max_len`/`sink`/`stride`: the sliding window of `KVCache`."""

        def shift(attn):
            return rotary_table(attn.head_dim).shift if attn.use_rotary and sink else None

        return [KVCache(max_len, sink, stride, shift(b.attn)) for b in self.blocks]

    def set_weight_layout(self, rows: int) -> None:
        """Store the weights of the widening layers (qkv, fc1: out ≥ 2·in) for matmuls of `rows` rows.

        Same values and shapes; only the memory order changes. For decoding one or two tokens per step
        on CPU, MKL's matrix-vector product is ~25% faster on these weights stored transposed ((in, out)
        contiguous: backbone step of the paper CAM 0.8×), and slower for ≥ 4 rows, where the usual
        (out, in) order is restored. Switching copies those weights once (float32 CPU weights only)."""
        transposed = rows <= 2
        with torch.inference_mode(False), torch.no_grad():  # plain tensors: training may follow
            for m in self.modules():
                w = m.weight if isinstance(m, nn.Linear) else None
                if w is None or w.dtype != torch.float32 or w.device.type != "cpu" or w.shape[0] < 2 * w.shape[1]:
                    continue
                is_transposed = w.stride() == (1, w.shape[0])
                if transposed and not is_transposed:
                    w.data = w.data.t().contiguous().t()
                elif not transposed and is_transposed:
                    w.data = w.data.contiguous()

    def modulations(self, cond: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """Every adaptive block's AdaLN parameters for `cond`: a sampler whose condition is fixed for many
        steps (AAR: one window, K scales) computes them once and passes `mods` to `forward`."""
        return [block.modulation(cond) for block in self.blocks]

    def forward(self, x, cond=None, mask=None, caches: list[KVCache] | None = None, mods=None):
        for i, block in enumerate(self.blocks):
            x = block(x, cond, mask, caches[i] if caches is not None else None, mods[i] if mods is not None else None)
        return x
