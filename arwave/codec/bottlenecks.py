"""The three codec bottlenecks behind one interface (`Bottleneck`), so no code outside this file
switches on the bottleneck's name. Each fact about a bottleneck is held once, by its class:

    forward(z)      -> BottleneckOutput(z_hat, loss, codes | None, stats)   training / validation pass
    encode(z)       -> tokens   (what AR models consume: latents or integer codes)
    decode(tokens)  -> z_hat    (what the decoder consumes)
    to_decoder(x)   -> decoder input for continuous-space AR outputs (pointwise in time; used by streaming)
    latents(z)      -> the continuous latents before quantization (continuous: = encode)
    to_tensors / from_tensors: tokens <-> named tensors of an encoded file
    unit_frames     frames audio is padded to a multiple of (msrq: one window)
    tokens_per_frame, scales, levels, codebook_size, loss_name, loss_weight

`in_dim` is the number of channels the encoder must produce, `out_dim` what the decoder receives.
`loss` is the unweighted regulariser (the KL for `continuous`, the commitment/phi loss for the VQs);
the task weighs it with `loss_weight`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.codec.msrq import EMACodebook, MultiScaleResidualVQ, batch_perplexity, msrq_scales


class BottleneckOutput(NamedTuple):
    z_hat: torch.Tensor  # (B, out_dim, T) decoder input (straight-through for the VQs)
    loss: torch.Tensor  # scalar regulariser, unweighted
    codes: Any  # None | list of K (B, W, s_k) | (B, N, T)
    stats: dict[str, float]


class Bottleneck(nn.Module):
    """The interface; subclasses set `name`, `in_dim`, `out_dim` and the facts below."""

    name = ""
    loss_name = "vq"  # what `loss` is called in the logs
    unit_frames = 1
    scales: tuple[int, ...] = ()  # msrq: token-map sizes s_1..s_K
    levels = 0  # rvq: residual levels
    codebook_size = 0  # the VQs: codes per codebook
    unused_parameters = False  # some parameters get no gradient (DDP must look for them)

    def __init__(self, loss_weight: float):
        super().__init__()
        self.loss_weight = loss_weight

    @property
    def tokens_per_frame(self) -> float:
        """Integer tokens per latent frame (continuous: latent vectors per frame)."""
        return 1.0

    def latents(self, h: torch.Tensor) -> torch.Tensor:
        """Encoder output -> continuous latents before quantization (what `decode_latents` takes back)."""
        return h

    tensor_names = "codes"  # the tensors of an encoded file, in words
    count_unit = "tokens"  # what `count` counts

    def count(self, tokens) -> int:
        """How many tokens (continuous: latent frames) one clip's `encode` output holds."""
        return sum(t[0].numel() for t in self.to_tensors(tokens).values())

    @staticmethod
    def to_tensors(tokens) -> dict[str, torch.Tensor]:
        return {"codes": tokens}

    @staticmethod
    def from_tensors(tensors: dict[str, torch.Tensor]):
        """Tokens from the tensors of an encoded file (`to_tensors`), or KeyError."""
        return tensors["codes"]

    @staticmethod
    def check(cfg) -> str | None:
        """What is wrong with a CodecConfig for this bottleneck, or None."""
        return None


class ContinuousBottleneck(Bottleneck):
    """Gaussian VAE bottleneck: the encoder gives mean μ and log-variance; training decodes
    z = μ + σ·ε and pays KL(N(μ, σ²) || N(0, 1)) (mean over elements; weighted by `kl_weight` in the
    task). Why a VAE and not tanh bounding: the posterior noise makes the decoder robust to small latent
    errors, which is what a continuous AR model produces (and CAM even adds noise on purpose).

    The latents handed to AR models are the deterministic mean divided by `latent_scale`, a running RMS
    of μ measured during training, so they have roughly unit variance whatever the KL weight did."""

    name, loss_name = "continuous", "kl"

    def __init__(self, dim: int, scale_momentum: float = 0.01, loss_weight: float = 1e-4):
        super().__init__(loss_weight)
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

    def latents(self, h: torch.Tensor) -> torch.Tensor:
        return self.encode(h)

    tensor_names = "latents"
    count_unit = "latent frames"

    def count(self, tokens) -> int:
        return tokens.shape[-1]

    @staticmethod
    def to_tensors(tokens) -> dict[str, torch.Tensor]:
        return {"latents": tokens}

    @staticmethod
    def from_tensors(tensors: dict[str, torch.Tensor]):
        return tensors["latents"]


class MSRQBottleneck(Bottleneck):
    """MultiScaleResidualVQ applied per window of T frames: (B, D, W·T) is quantized as (B·W, D, T).
    Codes are a list of K long tensors (B, W, s_k)."""

    name = "msrq"

    def __init__(self, dim: int, scales: Sequence[int], loss_weight: float = 1.0, **kwargs):
        super().__init__(loss_weight)
        self.in_dim = self.out_dim = dim
        self.msrq = MultiScaleResidualVQ(dim, scales, **kwargs)
        self.scales = tuple(int(s) for s in scales)
        self.unit_frames = self.window
        self.codebook_size = self.msrq.codebook_size
        self.unused_parameters = len(set(self.msrq._phi_index)) < len(self.msrq.phis)  # a phi conv no scale uses

    @property
    def window(self) -> int:
        return self.msrq.T

    @property
    def tokens_per_frame(self) -> float:
        return self.msrq.tokens / self.window

    tensor_names = "codes.0 .. codes.K-1"

    @staticmethod
    def to_tensors(tokens) -> dict[str, torch.Tensor]:
        return {f"codes.{k}": c for k, c in enumerate(tokens)}

    @staticmethod
    def from_tensors(tensors: dict[str, torch.Tensor]):
        return [tensors[f"codes.{k}"] for k in range(len(tensors))]

    @staticmethod
    def check(cfg) -> str | None:
        if not 1 <= cfg.num_scales <= cfg.window_frames:
            return f"num_scales must be in 1..window_frames ({cfg.window_frames}), got {cfg.num_scales}"
        scales = msrq_scales(cfg.window_frames, cfg.num_scales)
        if any(b <= a for a, b in zip(scales, scales[1:])):
            return (
                f"window_frames={cfg.window_frames} with num_scales={cfg.num_scales} gives "
                f"repeated scales {scales}; use fewer scales or a longer window"
            )
        return None

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


class RVQBottleneck(Bottleneck):
    name = "rvq"

    def __init__(self, dim: int, loss_weight: float = 1.0, **kwargs):
        super().__init__(loss_weight)
        self.in_dim = self.out_dim = dim
        self.rvq = ResidualVQ(dim, **kwargs)
        self.levels, self.codebook_size = self.rvq.levels, self.rvq.codebook_size

    @property
    def tokens_per_frame(self) -> float:
        return float(self.levels)

    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        z_hat, codes, loss, stats = self.rvq(z)
        return BottleneckOutput(z_hat, loss, codes, stats)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        return self.rvq.encode(z)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.rvq.decode(codes)

    def to_decoder(self, z_hat: torch.Tensor) -> torch.Tensor:
        return z_hat


def build_bottleneck(cfg) -> Bottleneck:
    """The bottleneck a CodecConfig names, with its sizes and loss weight."""
    if cfg.bottleneck == "continuous":
        return ContinuousBottleneck(cfg.latent_dim, loss_weight=cfg.kl_weight)
    vq = dict(
        codebook_size=cfg.codebook_size,
        ema_decay=cfg.ema_decay,
        kmeans_iters=cfg.kmeans_iters,
        dead_threshold=cfg.dead_code_threshold,
        loss_weight=cfg.w_vq,
    )
    if cfg.bottleneck == "msrq":
        scales = msrq_scales(cfg.window_frames, cfg.num_scales)
        kw = dict(num_phi=cfg.num_phi, phi_kernel=cfg.phi_kernel, shared_codebook=cfg.shared_codebook)
        kw.update(per_scale_ste=cfg.per_scale_ste)
        return MSRQBottleneck(cfg.latent_dim, scales, **kw, **vq)
    return RVQBottleneck(cfg.latent_dim, levels=cfg.rvq_levels, **vq)


BOTTLENECKS: dict[str, type[Bottleneck]] = {b.name: b for b in (ContinuousBottleneck, MSRQBottleneck, RVQBottleneck)}
