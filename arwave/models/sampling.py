"""Token sampling shared by AAR (next-scale) and the next-token baseline.

- `filter_logits`: top-k then top-p (nucleus), VAR's rule: sort ascending, drop every token whose
  cumulative probability mass is <= 1 - p, always keep the most likely token.
- `guided_logits`: classifier-free guidance on logits, (1 + t)·cond − t·uncond.
- `guidance_ramp`: AAR's linear guidance ramp t_k = guidance·k/(K−1) over the scales k = 0..K−1.
- `sample`: temperature, filtering, then a multinomial draw from a seeded torch.Generator
  (temperature <= 0 means greedy argmax). All randomness comes from the generator passed in.
"""

from __future__ import annotations

import torch


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 0.0) -> torch.Tensor:
    """Set the logits of the tokens that top-k / top-p drop to -inf (over the last dim).

    top_k <= 0 or >= V: off. top_p <= 0 or >= 1: off.
    """
    V = logits.shape[-1]
    logits = logits.clone()
    if 0 < top_k < V:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # the k-th largest
        logits.masked_fill_(logits < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=False)  # ascending
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cum <= (1.0 - top_p)
        drop_sorted[..., -1] = False  # always keep the top token
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits.masked_fill_(drop, float("-inf"))
    return logits


def guided_logits(cond: torch.Tensor, uncond: torch.Tensor, t: float) -> torch.Tensor:
    """Classifier-free guidance as in VAR/AAR: (1 + t)·cond − t·uncond (t = 0: the conditional logits)."""
    if t == 0:
        return cond
    return (1.0 + t) * cond - t * uncond


def guidance_ramp(guidance: float, k: int, K: int) -> float:
    """Guidance strength at scale k of K (0-based): rises linearly from 0 at the first scale to guidance at the last."""
    return guidance * k / (K - 1) if K > 1 else guidance


def sample(
    logits: torch.Tensor, generator: torch.Generator, temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0
) -> torch.Tensor:
    """Draw one token per row of `logits` (..., V) -> long (...)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    shape = logits.shape[:-1]
    flat = filter_logits(logits.float() / temperature, top_k, top_p).reshape(-1, logits.shape[-1])
    probs = flat.softmax(dim=-1)
    if probs.device.type != generator.device.type:  # a CPU generator drives sampling on any device
        probs = probs.to(generator.device)
    idx = torch.multinomial(probs, 1, generator=generator)[:, 0]
    return idx.to(logits.device).view(shape)
