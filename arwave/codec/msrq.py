"""SAT's multi-scale residual vector quantization (MSRQ), and the EMA codebook shared with plain RVQ.

Notation (SPEC.md §2): z (B, C, T) is the encoder latent of one window; scales s_1 < ... < s_K = T.

    r = z;  ẑ = 0
    for k = 1..K:
        u     = area_down(r -> s_k)            (skipped at s_K = T)
        idx_k = argmin_j ||u - e_j^(k)||²       (Euclidean, per position)
        h     = linear_up(e^(k)[idx_k] -> T)    (skipped at s_K)
        h     = Phi_k(h) = 0.5·h + 0.5·conv1d_k(h)
        r     = r - h;   ẑ = ẑ + h

Training (SAT's variant): loss_k = MSE(sg h, r) + MSE(h, sg r) averaged over k; the second term is the
only one that trains the phi convs. Codebooks get no gradient: they are EMA buffers (decay 0.99,
Laplace eps 1e-5) updated on the *down-sampled* residual u, k-means initialised on the first training
batch, with dead codes reset to random vectors of the current batch. The encoder gets gradients through
the straight-through output ẑ_ste = z + sg(ẑ - z) (identity Jacobian) and the commitment terms.

All scale indices k in this module's API are 0-based (k = 0 .. K-1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


def msrq_scales(T: int, K: int) -> list[int]:
    """SAT's quadratic schedule s_k = int(linspace(1, sqrt(T), K)**2); the last scale is T.
    msrq_scales(75, 16) == [1,2,4,6,9,12,16,20,25,31,37,43,50,58,66,75] (455 tokens)."""
    if K < 1 or T < 1:
        raise ValueError(f"msrq_scales: need T >= 1 and K >= 1, got T={T}, K={K}")
    scales = [int(v) for v in np.linspace(1.0, math.sqrt(T), K) ** 2]
    scales[-1] = T
    return scales


def area_down(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, T) -> (B, C, size) by averaging over time (F.interpolate mode='area')."""
    return x if x.shape[-1] == size else F.interpolate(x, size=size, mode="area")


def linear_up(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, s) -> (B, C, size) by linear interpolation, align_corners=False."""
    return x if x.shape[-1] == size else F.interpolate(x, size=size, mode="linear", align_corners=False)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


# ---------------------------------------------------------------------------------------------------
# EMA codebook (the one implementation, used by MSRQ and by the plain RVQ bottleneck)


class EMACodebook(nn.Module):
    """V x D codebook learned by exponential moving averages (no gradient), as in Encodec / SAT.

    Buffers: `embed` (V, D) the codes; `embed_avg` (V, D) EMA of the sum of assigned vectors;
    `cluster_size` (V,) EMA of assignment counts; `initted` whether k-means init ran.
    Update with n_j = counts of the batch, S_j = sum of vectors assigned to j:
        N_j <- d·N_j + (1-d)·n_j;   A_j <- d·A_j + (1-d)·S_j
        e_j  = A_j / Ñ_j,  Ñ_j = (N_j + eps) / (ΣN + V·eps) · ΣN     (Laplace smoothing)
    Under DDP the batch statistics are all-reduced, so every rank keeps the same codebook.
    """

    def __init__(
        self,
        dim: int,
        size: int,
        decay: float = 0.99,
        eps: float = 1e-5,
        kmeans_iters: int = 50,
        dead_threshold: float = 2.0,
    ):
        super().__init__()
        self.dim, self.size = dim, size
        self.decay, self.eps = decay, eps
        self.kmeans_iters = kmeans_iters
        self.dead_threshold = dead_threshold
        self.register_buffer("embed", torch.randn(size, dim))
        self.register_buffer("embed_avg", self.embed.clone())
        self.register_buffer("cluster_size", torch.ones(size))
        self.register_buffer("initted", torch.tensor(False))

    # -- lookup ------------------------------------------------------------------------------------
    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest code (Euclidean) for each row of x (N, D) -> (N,) long."""
        e = self.embed
        dist2 = x.pow(2).sum(1, keepdim=True) - 2 * x @ e.t() + e.pow(2).sum(1)[None, :]
        return dist2.argmin(dim=1)

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.embed)

    # -- training-time updates (all under no_grad) ---------------------------------------------------
    @torch.no_grad()
    def kmeans_init(self, x: torch.Tensor) -> None:
        """k-means on the first batch (rows of x). With fewer rows than codes, the initial centres are
        sampled with replacement (SAT: scale 1 sees only B vectors)."""
        if bool(self.initted):
            return
        x = x.float()
        n = x.shape[0]
        pick = (
            torch.randperm(n, device=x.device)[: self.size]
            if n >= self.size
            else torch.randint(0, n, (self.size,), device=x.device)
        )
        centres = x[pick].clone()
        counts = torch.zeros(self.size, device=x.device)
        for _ in range(self.kmeans_iters):
            idx = (x.pow(2).sum(1, keepdim=True) - 2 * x @ centres.t() + centres.pow(2).sum(1)[None]).argmin(1)
            counts = torch.bincount(idx, minlength=self.size).float()
            sums = torch.zeros_like(centres).index_add_(0, idx, x)
            filled = counts > 0
            centres[filled] = sums[filled] / counts[filled, None]  # empty clusters keep their centre
        if _distributed():  # every rank starts from rank 0's
            dist.broadcast(centres, 0)
            dist.broadcast(counts, 0)
        self.embed.copy_(centres)
        self.cluster_size.copy_(counts)
        self.embed_avg.copy_(centres * counts[:, None])
        self.initted.fill_(True)

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, idx: torch.Tensor) -> int:
        """EMA step on vectors x (N, D) assigned to idx (N,), then dead-code reset. Returns #reset."""
        x = x.float()
        counts = torch.bincount(idx, minlength=self.size).float()
        sums = torch.zeros(self.size, self.dim, device=x.device).index_add_(0, idx, x)
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        d = self.decay
        self.cluster_size.mul_(d).add_(counts, alpha=1 - d)
        self.embed_avg.mul_(d).add_(sums, alpha=1 - d)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.size * self.eps) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        return self.reset_dead_codes(x)

    @torch.no_grad()
    def reset_dead_codes(self, x: torch.Tensor) -> int:
        """Codes whose EMA count fell below the threshold are replaced by random vectors of the batch.

        threshold = min(dead_threshold, 0.1 · ΣN / V): SAT's absolute 2 when batches are large; with
        small batches (CPU presets; scale 1 sees only B vectors per step) a code is dead only when it is
        used far less than a uniform share, so a small batch does not reset every code every step."""
        threshold = min(self.dead_threshold, 0.1 * float(self.cluster_size.sum()) / self.size)
        dead = self.cluster_size < threshold
        num = int(dead.sum())
        if num == 0:
            return 0
        new = x[torch.randint(0, x.shape[0], (num,), device=x.device)]
        self.embed[dead] = new
        self.embed_avg[dead] = new * threshold
        self.cluster_size[dead] = threshold
        if _distributed():  # same replacements everywhere
            for buf in (self.embed, self.embed_avg, self.cluster_size):
                dist.broadcast(buf, 0)
        return num

    def usage_perplexity(self) -> float:
        """exp(entropy) of the long-run (EMA) code usage: V when uniform, 1 when one code is used."""
        p = self.cluster_size / self.cluster_size.sum().clamp_min(1e-12)
        return float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))


def batch_perplexity(idx: torch.Tensor, size: int) -> float:
    """exp(entropy) of the code histogram of one batch."""
    p = torch.bincount(idx.flatten(), minlength=size).float()
    p = p / p.sum().clamp_min(1)
    return float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))


# ---------------------------------------------------------------------------------------------------
# Phi: residual refinement convs, partially shared across scales


class Phi(nn.Module):
    """Phi(h) = (1 - 0.5)·h + 0.5·conv1d(h), kernel 9 'same' padding (VAR's quant_resi = 0.5)."""

    def __init__(self, dim: int, kernel: int = 9, ratio: float = 0.5):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.ratio = ratio

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (1 - self.ratio) * h + self.ratio * self.conv(h)


def phi_ticks(n: int) -> np.ndarray:
    """Tick of each of the n convs on [0, 1]; VAR uses 1/(3n) margins when n == 4, else 1/(2n)."""
    if n == 4:
        return np.linspace(1 / (3 * n), 1 - 1 / (3 * n), n)
    return np.linspace(1 / (2 * n), 1 - 1 / (2 * n), n)


def phi_schedule(K: int, n: int) -> list[int]:
    """Conv index used at each scale k = 0..K-1: the tick nearest to k / (K - 1)."""
    ticks = phi_ticks(n)
    return [int(np.argmin(np.abs(ticks - (k / (K - 1) if K > 1 else 0.0)))) for k in range(K)]


# ---------------------------------------------------------------------------------------------------
# MSRQ


class MultiScaleResidualVQ(nn.Module):
    """SAT's multi-scale residual VQ over one window of T = scales[-1] latent frames."""

    def __init__(
        self,
        dim: int,
        scales: Sequence[int],
        codebook_size: int = 1024,
        num_phi: int = 6,
        phi_kernel: int = 9,
        shared_codebook: bool = False,
        ema_decay: float = 0.99,
        eps: float = 1e-5,
        kmeans_iters: int = 50,
        dead_threshold: float = 2.0,
        phi_ratio: float = 0.5,
        per_scale_ste: bool = False,
    ):
        super().__init__()
        scales = [int(s) for s in scales]
        self.per_scale_ste = per_scale_ste
        if any(b <= a for a, b in zip(scales, scales[1:])) or scales[0] < 1:
            raise ValueError(f"MSRQ scales must be increasing and >= 1: {scales}")
        self.dim, self.scales, self.T = dim, scales, scales[-1]
        self.codebook_size = codebook_size
        self.shared_codebook = shared_codebook
        num_books = 1 if shared_codebook else len(scales)
        self.codebooks = nn.ModuleList(
            EMACodebook(dim, codebook_size, ema_decay, eps, kmeans_iters, dead_threshold) for _ in range(num_books)
        )
        self.phis = nn.ModuleList(Phi(dim, phi_kernel, phi_ratio) for _ in range(num_phi))
        self._phi_index = phi_schedule(len(scales), num_phi)

    @property
    def num_scales(self) -> int:
        return len(self.scales)

    @property
    def tokens(self) -> int:
        """Tokens per window = Σ s_k."""
        return sum(self.scales)

    def _book(self, k: int) -> EMACodebook:
        return self.codebooks[0 if self.shared_codebook else k]

    def codebook(self, k: int) -> torch.Tensor:
        """(V, dim) embeddings of scale k."""
        return self._book(k).embed

    def phi_index(self, k: int) -> int:
        return self._phi_index[k]

    def phi(self, k: int) -> Phi:
        return self.phis[self._phi_index[k]]

    # -- the per-scale pieces ------------------------------------------------------------------------
    def _quantize(self, r: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Down-sampled residual u (B, dim, s_k) and its nearest codes idx (B, s_k)."""
        u = area_down(r, self.scales[k])
        B, D, s = u.shape
        idx = self._book(k).assign(u.detach().transpose(1, 2).reshape(B * s, D).float())
        return u, idx.view(B, s)

    def _embed_up(self, k: int, idx: torch.Tensor) -> torch.Tensor:
        """Phi_k(linear_up(e^(k)[idx] -> T)): (B, s_k) long -> (B, dim, T)."""
        q = self._book(k).lookup(idx).transpose(1, 2)  # (B, dim, s_k)
        return self.phi(k)(linear_up(q, self.T))

    # -- training ------------------------------------------------------------------------------------
    def forward(self, z: torch.Tensor):
        """z (B, dim, T) -> (ẑ_ste, codes, vq_loss, stats). Updates the codebooks when training."""
        assert z.shape[1] == self.dim and z.shape[-1] == self.T, (
            f"MSRQ expects (B, {self.dim}, {self.T}), got {tuple(z.shape)}"
        )
        z = z.float()
        r, z_hat = z, torch.zeros_like(z)
        codes, losses, stats = [], [], {}
        resets = 0
        for k, s in enumerate(self.scales):
            book = self._book(k)
            u = area_down(r, s)
            flat = u.detach().transpose(1, 2).reshape(-1, self.dim)
            if self.training:
                book.kmeans_init(flat)
            idx = book.assign(flat)
            h = self._embed_up(k, idx.view(z.shape[0], s))  # codebook before this step's update
            if self.training:
                resets += book.ema_update(flat, idx)
            losses.append(F.mse_loss(h.detach(), r) + F.mse_loss(h, r.detach()))
            r = r - h.detach()
            z_hat = z_hat + h.detach()
            codes.append(idx.view(z.shape[0], s))
            stats[f"ppl{k}"] = batch_perplexity(idx, self.codebook_size)
        # straight-through: ẑ_ste = g·z + sg(ẑ − g·z), the values of ẑ and g times the decoder's gradient.
        # VAR's single STE: g = 1. SAT's per-scale one, Σ_k (r_k + sg(h_k − r_k)) with every r_k = z − sg(·),
        # is the same expression with g = K.
        g = self.num_scales if self.per_scale_ste else 1
        z_hat_ste = g * z + (z_hat - g * z).detach()
        ppl = [stats[f"ppl{k}"] for k in range(self.num_scales)]
        stats.update(ppl_mean=sum(ppl) / len(ppl), ppl_min=min(ppl), resets=float(resets))
        return z_hat_ste, codes, torch.stack(losses).mean(), stats

    # -- inference -----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> list[torch.Tensor]:
        """z (B, dim, T) -> K long tensors (B, s_k). Never updates the codebooks."""
        r = z.float()
        codes = []
        for k in range(self.num_scales):
            _, idx = self._quantize(r, k)
            r = r - self._embed_up(k, idx)
            codes.append(idx)
        return codes

    @torch.no_grad()
    def decode(self, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """K long tensors (B, s_k) -> ẑ (B, dim, T): the same accumulation without the residual."""
        z_hat = None
        for k, idx in enumerate(codes):
            z_hat = self.add_scale(z_hat, k, idx)
        return z_hat

    @torch.no_grad()
    def cumulative(self, codes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """[ẑ_1, ..., ẑ_K]: the reconstruction after scales 0..k, each (B, dim, T)."""
        out, z_hat = [], None
        for k, idx in enumerate(codes):
            z_hat = self.add_scale(z_hat, k, idx)
            out.append(z_hat)
        return out

    # -- the AR model's interface (AAR teacher forcing and sampling) ----------------------------------
    @torch.no_grad()
    def var_inputs(self, codes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Teacher-forcing inputs: for k = 0..K-2, area_down(ẑ after scales 0..k -> s_{k+1}),
        each (B, dim, s_{k+1}); the input that predicts the tokens of scale k+1."""
        inputs, z_hat = [], None
        for k in range(self.num_scales - 1):
            z_hat = self.add_scale(z_hat, k, codes[k])
            inputs.append(self.next_input(z_hat, k))
        return inputs

    def add_scale(self, z_hat: torch.Tensor | None, k: int, idx: torch.Tensor) -> torch.Tensor:
        """ẑ + Phi_k(linear_up(e^(k)[idx] -> T)); idx (B, s_k); z_hat None means zeros."""
        h = self._embed_up(k, idx)
        return h if z_hat is None else z_hat + h

    def next_input(self, z_hat: torch.Tensor, k: int) -> torch.Tensor:
        """area_down(ẑ -> s_{k+1}) (B, dim, s_{k+1}): the AR input after scale k has been added."""
        return area_down(z_hat, self.scales[k + 1])

    def flatten(self, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """K tensors (..., s_k) -> one (..., Σ s_k) tensor, scale after scale (AAR's target order)."""
        return torch.cat(list(codes), dim=-1)

    def unflatten(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Inverse of `flatten`."""
        return list(flat.split(self.scales, dim=-1))

    def usage(self) -> list[float]:
        """Long-run code-usage perplexity of each scale's codebook (from the EMA counts)."""
        return [self._book(k).usage_perplexity() for k in range(self.num_scales)]
