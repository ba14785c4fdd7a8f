"""The one sampler interface shared by every autoregressive model (CAM family, AAR, next-token).

A generator turns model outputs into audio through its codec. `generate` returns whole clips;
`stream` yields audio chunks as soon as they are decoded (for `arwave stream`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn

from arwave.errors import ArwaveError


class AudioGenerator(nn.Module):
    """A generator decodes through a codec that is attached, not owned (`attach`): kept outside the
    module tree (in a plain dict), so it is neither in `parameters()` nor in `state_dict()` (the run's
    weights are the generator's alone; the run keeps the codec in its own folder), it stays in eval
    mode and frozen, it moves with `.to(...)` and keeps its own precision."""

    sample_rate: int
    channels: int

    def attach(self, codec: nn.Module | None, quantizer: nn.Module | None = None) -> None:
        for m in (codec, quantizer):
            if m is not None:
                m.eval().requires_grad_(False)
        self._attached = {"codec": codec, "quantizer": quantizer}

    @property
    def codec(self) -> nn.Module:
        if self._attached["codec"] is None:
            raise ArwaveError(f"{type(self).__name__}: no codec attached (load the run with arwave.load to decode)")
        return self._attached["codec"]

    @property
    def quantizer(self) -> nn.Module:
        if self._attached["quantizer"] is None:
            raise ArwaveError(f"{type(self).__name__}: no quantizer attached")
        return self._attached["quantizer"]

    def _apply(self, fn, recurse=True):  # .to(device) also moves what is attached
        super()._apply(fn, recurse)
        for m in {id(m): m for m in self._attached.values() if m is not None}.values():
            m._apply(fn, recurse)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self._attached.values():
            if m is not None:
                m.eval()
        return self

    def _set_precision(self, precision: str, **kw) -> AudioGenerator:
        """arwave/models/quantize.py's set_precision on this model only: the codec keeps its own."""
        from arwave.models.quantize import set_precision

        attached, self._attached = self._attached, {}
        try:
            set_precision(self, precision, **kw)
        finally:
            self._attached = attached
        return self

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


def class_index(label, names: list[str], num_classes: int) -> int:
    """A class name, or an id (int, digit string, 0-d tensor), as the id of one of the model's classes."""
    label = label.item() if torch.is_tensor(label) else label
    if isinstance(label, str) and label in names:
        return names.index(label)
    if isinstance(label, str) and not label.lstrip("-").isdigit():
        raise ArwaveError(f"unknown class label {label!r} (known: {', '.join(names) or 'none'})")
    index = int(label)
    if not 0 <= index < num_classes:
        raise ArwaveError(f"class label {index} out of range (the model knows {num_classes} classes)")
    return index
