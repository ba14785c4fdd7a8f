"""Audio embedders for FAD, ISc and KL: one interface and shared audio helpers (names: `by_name.py`).

An `Embedder` turns clips into

* frame-level embeddings (one vector per analysis block of a clip, e.g. 2.32 s for aisfx). FAD pools
  the frames of *all* clips into one Gaussian fit, as VGGish-FAD does;
* clip-level class posteriors (the mean of the frame posteriors of a clip), for ISc and KL, when the
  embedder has a classification head (`class_names` is set).

Every FAD/ISc/KL number is reported together with the embedder's `name`: values from different
embedders are not comparable.

Names understood by `by_name.get_embedder`:
    aisfx                    pretrained sound-effects CNN whose weights ship in the `aisfx` wheel
    classifier:RUN_DIR       an arwave classifier run (`arwave train classifier`), like Inception for FID
    vggish / panns / clap    adapters that need `weights=PATH` (a local weight file of the user)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from arwave.errors import ArwaveError


class EmbedderError(ArwaveError):
    pass


# ---------------------------------------------------------------------------------------------------
# clips: a (B, C, N) tensor or a list of (C, N) / (N,) tensors of any lengths


def as_clips(wave) -> list[torch.Tensor]:
    """Split the input into a list of (C, N) float tensors (a 2-D tensor is ambiguous and refused)."""
    if isinstance(wave, np.ndarray):
        wave = torch.from_numpy(wave)
    if torch.is_tensor(wave):
        if wave.dim() != 3:
            raise EmbedderError(
                f"expected audio of shape (batch, channels, samples) or a list of (channels, samples) "
                f"clips, got a tensor of shape {tuple(wave.shape)}"
            )
        return [w.float() for w in wave]
    clips = []
    for i, w in enumerate(wave):
        w = torch.as_tensor(w).float()
        if w.dim() == 1:
            w = w[None]
        if w.dim() != 2:
            raise EmbedderError(f"clip {i}: expected (channels, samples), got shape {tuple(w.shape)}")
        clips.append(w)
    return clips


def mono_at_rate(clip: torch.Tensor, sample_rate: int, target_rate: int) -> torch.Tensor:
    """(C, N) at `sample_rate` -> (N',) mono (channel mean) at `target_rate`, resampled with soxr."""
    x = clip.detach().float().mean(0).cpu()
    if not torch.isfinite(x).all():
        raise EmbedderError("audio holds NaN or inf values")
    if int(sample_rate) != int(target_rate):
        import soxr

        x = torch.from_numpy(
            np.ascontiguousarray(soxr.resample(x.numpy(), int(sample_rate), int(target_rate), quality="HQ"))
        )
    return x.float()


# ---------------------------------------------------------------------------------------------------
# the interface


@dataclass
class Features:
    frames: torch.Tensor  # (F, dim) float32: frame embeddings of every clip, clip after clip
    clip_index: torch.Tensor  # (F,) long: the clip each frame belongs to
    posteriors: torch.Tensor | None  # (B, K) clip-level class probabilities (mean over the clip's frames)


def frames_to_clips(frames: torch.Tensor, clip_index: torch.Tensor, num_clips: int) -> torch.Tensor:
    """Mean of each clip's frames: (F, D) -> (num_clips, D)."""
    out = torch.zeros(num_clips, frames.shape[1], dtype=frames.dtype)
    out.index_add_(0, clip_index, frames)
    counts = torch.bincount(clip_index, minlength=num_clips).clamp_min(1).to(frames.dtype)
    return out / counts[:, None]


class Embedder:
    """Base class. Subclasses set `name`, `sample_rate`, `dim`, `cache_key` (name + weights identity,
    used to key cached reference statistics), optionally `class_names`, and implement `_run`."""

    name: str
    sample_rate: int
    dim: int
    cache_key: str
    class_names: list[str] | None = None
    batch_size: int = 32

    @property
    def has_posteriors(self) -> bool:
        return bool(self.class_names)

    def _run(self, clips: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Mono clips (N,) at `self.sample_rate` -> per clip (frames (f, dim), frame probabilities (f, K) or None)."""
        raise NotImplementedError

    @torch.no_grad()
    def features(self, wave, sample_rate: int | None = None) -> Features:
        """Frame embeddings and clip posteriors of `wave`: a (B, C, N) tensor or a list of (C, N) clips at
        `sample_rate` (default: the embedder's own rate). Channels are averaged; audio is resampled."""
        clips = as_clips(wave)
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        mono = []
        for i, c in enumerate(clips):
            try:
                mono.append(mono_at_rate(c, rate, self.sample_rate))
            except EmbedderError as err:
                raise EmbedderError(f"clip {i} of {len(clips)}: {err}") from None
        outs = self._run(mono)
        frames = torch.cat([f for f, _ in outs]).float().cpu() if outs else torch.zeros(0, self.dim)
        clip_index = (
            torch.cat([torch.full((len(f),), i, dtype=torch.long) for i, (f, _) in enumerate(outs)])
            if outs
            else torch.zeros(0, dtype=torch.long)
        )
        post = None
        if self.has_posteriors and outs:
            post = torch.stack([p.float().mean(0) for _, p in outs]).cpu()
        return Features(frames, clip_index, post)

    def embed(self, wave, sample_rate: int | None = None) -> torch.Tensor:
        """(F, dim) frame embeddings of all clips, concatenated (what FAD fits its Gaussian to)."""
        return self.features(wave, sample_rate).frames

    def embed_clips(self, wave, sample_rate: int | None = None) -> torch.Tensor:
        """(B, dim): the mean frame embedding of each clip."""
        feats = self.features(wave, sample_rate)
        return frames_to_clips(feats.frames, feats.clip_index, len(as_clips(wave)))

    def posteriors(self, wave, sample_rate: int | None = None) -> torch.Tensor:
        """(B, K) clip-level class probabilities (ISc, KL)."""
        if not self.has_posteriors:
            raise EmbedderError(f"embedder {self.name!r} has no classification head: ISc and KL need class posteriors")
        return self.features(wave, sample_rate).posteriors

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, sample_rate={self.sample_rate}, dim={self.dim})"


__all__ = [
    "Embedder",
    "Features",
    "EmbedderError",
    "as_clips",
    "mono_at_rate",
    "frames_to_clips",
]
