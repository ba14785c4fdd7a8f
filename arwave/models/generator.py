"""The one sampler interface shared by every autoregressive model (CAM family, AAR, next-token).

A generator turns model outputs into audio through its codec. `generate` returns whole clips;
`stream` yields audio chunks as soon as they are decoded (for `arwave stream`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn


class AudioGenerator(nn.Module):
    sample_rate: int
    channels: int

    @torch.no_grad()
    def generate(self, seconds: float, num: int = 1, seed: int | None = None, **sampling) -> torch.Tensor:
        """Float waveform (num, channels, samples), samples = round(seconds * sample_rate)."""
        raise NotImplementedError

    @torch.no_grad()
    def stream(self, seconds: float, seed: int | None = None, **sampling) -> Iterator[torch.Tensor]:
        """Yield (channels, n) chunks while generating one clip. Default: one chunk at the end."""
        yield self.generate(seconds, num=1, seed=seed, **sampling)[0]


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A seeded torch.Generator (or a randomly seeded one for seed=None): all sampling noise comes from it."""
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g
