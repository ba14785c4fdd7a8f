"""The three codec bottlenecks behind one interface, so the Codec never special-cases them.

    forward(z)    -> BottleneckOutput(z_hat, loss, codes | None, stats)   training / validation pass
    encode(z)     -> tokens   (what AR models consume: latents or integer codes)
    decode(tokens)-> z_hat    (what the decoder consumes)
    to_decoder(x) -> decoder input for continuous-space AR outputs (pointwise in time; used by streaming)

`in_dim` is the number of channels the encoder must produce, `out_dim` what the decoder receives.
`loss` is the unweighted regulariser: the KL for `continuous`, the commitment/phi loss for the VQs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.codec.msrq import EMACodebook, MultiScaleResidualVQ, batch_perplexity


class BottleneckOutput(NamedTuple):
    z_hat: torch.Tensor  # (B, out_dim, T) decoder input (straight-through for the VQs)
    loss: torch.Tensor  # scalar regulariser, unweighted
    codes: Any  # None | list of K (B, W, s_k) | (B, N, T)
    stats: dict[str, float]


class ContinuousBottleneck(nn.Module):
    """Gaussian VAE bottleneck: the encoder gives mean μ and log-variance; training decodes
    z = μ + σ·ε and pays KL(N(μ, σ²) || N(0, 1)) (mean over elements; weighted by `kl_weight` in the
    task). Why a VAE and not tanh bounding: the posterior noise makes the decoder robust to small latent
    errors, which is what a continuous AR model produces (and CAM even adds noise on purpose).

    The latents handed to AR models are the deterministic mean divided by `latent_scale`, a running RMS
    of μ measured during training, so they have roughly unit variance whatever the KL weight did."""

    def __init__(self, dim: int, scale_momentum: float = 0.01):
        super().__init__()
        self.in_dim, self.out_dim = 2 * dim, dim
        self.dim = dim
        self.scale_momentum = scale_momentum
        self.register_buffer("latent_scale", torch.ones(()))

    def _split(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = h.float().chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        mean, logvar = self._split(h)
        if self.training:
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
            with torch.no_grad():  # running RMS of μ
                rms = mean.detach().pow(2).mean().sqrt()
                self.latent_scale.lerp_(rms.to(self.latent_scale), self.scale_momentum)
        else:
            z = mean
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        stats = {
            "latent_rms": float(mean.detach().pow(2).mean().sqrt()),
            "posterior_std": float(torch.exp(0.5 * logvar.detach()).mean()),
        }
        return BottleneckOutput(z, kl, None, stats)

    @torch.no_grad()
    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """Encoder output (B, 2D, T) -> unit-scale latents μ / latent_scale (B, D, T)."""
        mean, _ = self._split(h)
        return mean / self.latent_scale

    def to_decoder(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.latent_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_decoder(z)


class MSRQBottleneck(nn.Module):
    """MultiScaleResidualVQ applied per window of T frames: (B, D, W·T) is quantized as (B·W, D, T).
    Codes are a list of K long tensors (B, W, s_k)."""

    def __init__(self, dim: int, scales: Sequence[int], **kwargs):
        super().__init__()
        self.in_dim = self.out_dim = dim
        self.msrq = MultiScaleResidualVQ(dim, scales, **kwargs)

    @property
    def window(self) -> int:
        return self.msrq.T

    def _windows(self, z: torch.Tensor) -> torch.Tensor:
        B, D, L = z.shape
        if L % self.window:
            raise ValueError(f"msrq bottleneck: {L} frames is not a multiple of the window ({self.window})")
        return z.view(B, D, L // self.window, self.window).permute(0, 2, 1, 3).reshape(-1, D, self.window)

    def _unwindows(self, z: torch.Tensor, B: int) -> torch.Tensor:
        BW, D, T = z.shape
        return z.view(B, BW // B, D, T).permute(0, 2, 1, 3).reshape(B, D, -1)

    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        B = z.shape[0]
        z_hat, codes, loss, stats = self.msrq(self._windows(z))
        codes = [c.view(B, -1, c.shape[-1]) for c in codes]
        return BottleneckOutput(self._unwindows(z_hat, B), loss, codes, stats)

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> list[torch.Tensor]:
        B = z.shape[0]
        return [c.view(B, -1, c.shape[-1]) for c in self.msrq.encode(self._windows(z))]

    @torch.no_grad()
    def decode(self, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        B = codes[0].shape[0]
        z_hat = self.msrq.decode([c.reshape(-1, c.shape[-1]) for c in codes])
        return self._unwindows(z_hat, B)

    def to_decoder(self, z_hat: torch.Tensor) -> torch.Tensor:
        return z_hat


class ResidualVQ(nn.Module):
    """Plain residual VQ with N levels (Encodec-style), built on the same EMACodebook as MSRQ:
    r = z; for each level l: idx_l = NN(r); q = e^(l)[idx_l]; r -= q; ẑ += q.
    Loss: commitment MSE(sg q, r) averaged over levels (the codebooks learn by EMA only)."""

    def __init__(
        self,
        dim: int,
        levels: int = 10,
        codebook_size: int = 1024,
        ema_decay: float = 0.99,
        eps: float = 1e-5,
        kmeans_iters: int = 50,
        dead_threshold: float = 2.0,
    ):
        super().__init__()
        self.dim, self.levels, self.codebook_size = dim, levels, codebook_size
        self.codebooks = nn.ModuleList(
            EMACodebook(dim, codebook_size, ema_decay, eps, kmeans_iters, dead_threshold) for _ in range(levels)
        )

    def forward(self, z: torch.Tensor):
        """z (B, D, T) -> (ẑ_ste, codes (B, N, T), loss, stats); EMA updates when training."""
        z = z.float()
        B, D, T = z.shape
        r, z_hat = z, torch.zeros_like(z)
        codes, losses, stats, resets = [], [], {}, 0
        for level, book in enumerate(self.codebooks):
            flat = r.detach().transpose(1, 2).reshape(-1, D)
            if self.training:
                book.kmeans_init(flat)
            idx = book.assign(flat)
            q = book.lookup(idx).view(B, T, D).transpose(1, 2)
            if self.training:
                resets += book.ema_update(flat, idx)
            losses.append(F.mse_loss(q, r))  # q is a buffer lookup: sg(q)
            r = r - q
            z_hat = z_hat + q
            codes.append(idx.view(B, T))
            stats[f"ppl{level}"] = batch_perplexity(idx, self.codebook_size)
        ppl = [stats[f"ppl{level}"] for level in range(self.levels)]
        stats.update(ppl_mean=sum(ppl) / len(ppl), ppl_min=min(ppl), resets=float(resets))
        return z + (z_hat - z).detach(), torch.stack(codes, 1), torch.stack(losses).mean(), stats

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, T) -> (B, N, T) long."""
        B, D, T = z.shape
        r, codes = z.float(), []
        for book in self.codebooks:
            idx = book.assign(r.transpose(1, 2).reshape(-1, D))
            r = r - book.lookup(idx).view(B, T, D).transpose(1, 2)
            codes.append(idx.view(B, T))
        return torch.stack(codes, 1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, n, T) long -> ẑ (B, D, T); n <= N levels (fewer levels = coarser reconstruction)."""
        return sum(self.codebooks[level].lookup(codes[:, level]) for level in range(codes.shape[1])).transpose(1, 2)

    def codebook(self, level: int) -> torch.Tensor:
        return self.codebooks[level].embed


class RVQBottleneck(nn.Module):
    def __init__(self, dim: int, **kwargs):
        super().__init__()
        self.in_dim = self.out_dim = dim
        self.rvq = ResidualVQ(dim, **kwargs)

    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        z_hat, codes, loss, stats = self.rvq(z)
        return BottleneckOutput(z_hat, loss, codes, stats)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        return self.rvq.encode(z)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.rvq.decode(codes)

    def to_decoder(self, z_hat: torch.Tensor) -> torch.Tensor:
        return z_hat


BOTTLENECKS = ("continuous", "msrq", "rvq")
