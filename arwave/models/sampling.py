"""Token sampling shared by AAR (next-scale) and the next-token baseline.

- `filter_logits`: top-k then top-p (nucleus), VAR's rule: sort ascending, drop every token whose
  cumulative probability mass is <= 1 - p, always keep the most likely token.
- `guided_logits`: classifier-free guidance on logits, (1 + t)·cond − t·uncond.
- `cfg_ramp`: AAR's linear guidance ramp t_k = cfg·k/(K−1) over the scales k = 0..K−1.
- `sample`: temperature, filtering, then a multinomial draw from a seeded torch.Generator
  (temperature <= 0 means greedy argmax). All randomness comes from the generator passed in.
- `BufferKVCache`: the shared Transformer's KVCache without a copy per step (preallocated / ring).
"""
from __future__ import annotations

import torch

from arwave.models.transformer import KVCache


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 0.0) -> torch.Tensor:
    """Set the logits of the tokens that top-k / top-p drop to -inf (over the last dim).

    top_k <= 0 or >= V: off. top_p <= 0 or >= 1: off.
    """
    V = logits.shape[-1]
    logits = logits.clone()
    if 0 < top_k < V:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]             # the k-th largest
        logits.masked_fill_(logits < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=False)  # ascending
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cum <= (1.0 - top_p)
        drop_sorted[..., -1] = False                                  # always keep the top token
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits.masked_fill_(drop, float("-inf"))
    return logits


def guided_logits(cond: torch.Tensor, uncond: torch.Tensor, t: float) -> torch.Tensor:
    """Classifier-free guidance as in VAR/AAR: (1 + t)·cond − t·uncond (t = 0: the conditional logits)."""
    if t == 0:
        return cond
    return (1.0 + t) * cond - t * uncond


def cfg_ramp(cfg: float, k: int, K: int) -> float:
    """Guidance strength at scale k of K (0-based): rises linearly from 0 at the first scale to cfg at the last."""
    return cfg * k / (K - 1) if K > 1 else cfg


def sample(logits: torch.Tensor, generator: torch.Generator, temperature: float = 1.0,
           top_k: int = 0, top_p: float = 0.0) -> torch.Tensor:
    """Draw one token per row of `logits` (..., V) -> long (...)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    shape = logits.shape[:-1]
    flat = filter_logits(logits.float() / temperature, top_k, top_p).reshape(-1, logits.shape[-1])
    probs = flat.softmax(dim=-1)
    if probs.device.type != generator.device.type:      # a CPU generator drives sampling on any device
        probs = probs.to(generator.device)
    idx = torch.multinomial(probs, 1, generator=generator)[:, 0]
    return idx.to(logits.device).view(shape)


class BufferKVCache(KVCache):
    """A drop-in `transformer.KVCache` that writes keys/values into buffers allocated once, instead of
    concatenating a new (B, H, L, d) tensor at every step (which copies the whole cache per token and,
    at large batch, spends most of the time in the allocator and page faults).

    Without `max_len` it holds up to `capacity` entries in order (AAR: capacity = L tokens of a window).
    With `max_len` (a sliding window) it is a ring of max_len + 1 slots, so after the oldest entry has
    been dropped the new token overwrites it: once full, every call must append ONE token (the keys
    are then in ring order, which attention without a mask does not see: rotary phases were applied
    before caching, so only the set of keys matters)."""

    def __init__(self, capacity: int | None = None, max_len: int | None = None):
        super().__init__(max_len)
        self.capacity = max_len + 1 if max_len is not None else int(capacity)
        self.filled = 0          # valid slots
        self.slot = 0            # next write slot (ring mode)

    @property
    def length(self) -> int:
        return min(self.filled, self.max_len) if self.max_len is not None else self.filled

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, H, L, d = k.shape
        if self.k is None:
            self.k = k.new_empty(B, H, self.capacity, d)
            self.v = v.new_empty(B, H, self.capacity, v.shape[-1])
        if self.max_len is None or self.filled + L <= self.capacity:   # in order
            if self.filled + L > self.capacity:
                raise ValueError(f"KV cache full: {self.filled} + {L} > capacity {self.capacity}")
            start = self.filled if self.max_len is None else self.slot
            self.k[:, :, start:start + L] = k
            self.v[:, :, start:start + L] = v
            self.filled += L
            self.slot = (start + L) % self.capacity
        else:                                                           # ring: overwrite the oldest
            if L != 1:
                raise ValueError("a full sliding-window cache takes one token per call")
            self.k[:, :, self.slot] = k[:, :, 0]
            self.v[:, :, self.slot] = v[:, :, 0]
            self.slot = (self.slot + 1) % self.capacity
        self.position += L
        return self.k[:, :, :self.filled], self.v[:, :, :self.filled]

    def trim(self) -> None:
        """Nothing to copy: in ring mode the oldest slot is the next one overwritten."""

    def repeat(self, n: int) -> None:
        if self.k is not None:
            self.k = self.k.repeat(n, 1, 1, 1)
            self.v = self.v.repeat(n, 1, 1, 1)


def new_buffer_caches(transformer, capacity: int | None = None, max_len: int | None = None) -> list[BufferKVCache]:
    """One BufferKVCache per block of the shared Transformer (use instead of `transformer.new_cache`)."""
    return [BufferKVCache(capacity, max_len) for _ in transformer.blocks]
