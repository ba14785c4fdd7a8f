"""Per-frame heads: given the backbone state z_t, model p(x_t | z_t) for one continuous frame x_t ∈ R^D.

One interface, three heads (config `head`):

    loss(z (N, W), x (N, D)) -> scalar         training loss
    sample(z, generator, temperature=1.0, steps=None, z_uncond=None, cfg=0.0) -> x (N, D)

- "rf"   rectified flow (CAM, MAR-RF). Convention: σ = 0 is data, σ = 1 is noise,
         x_σ = (1 − σ)·x + σ·n,  target velocity v = dx_σ/dσ = n − x,  loss ||v_θ(x_σ, σ, z) − v||².
         Sampling integrates dx/dσ = v_θ from σ = 1 (x = temperature·n) to σ = 0 with `steps` Euler steps.
- "ddpm" ε-prediction DDPM (MAR): cosine schedule over 1000 steps, ε-MSE loss, fixed posterior variance
         (MAR learns the variance with an extra VB loss; we keep it out: few-step respaced sampling with
         the posterior variance works without it). Sampling respaced to `steps` steps; the temperature
         multiplies the injected noise (as in MAR).
- "gmm"  GIVT: a mixture of `modes` diagonal Gaussians; exact NLL; temperature scales the std devs.

Classifier-free guidance (rf, ddpm): the prediction for the conditional state z and the unconditional
state z_uncond are mixed as (1 + cfg)·cond − cfg·uncond (velocity for rf, ε for ddpm).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.models.cam.noise import sinusoidal

HEADS = ("rf", "gmm", "ddpm")


# ---------------------------------------------------------------------------------------------------
# the denoiser network shared by rf and ddpm (MAR's SimpleMLPAdaLN)

def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class AdaLNResBlock(nn.Module):
    """LN -> modulate(shift, scale from y) -> Linear-SiLU-Linear -> gated residual."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))
        nn.init.zeros_(self.ada[-1].weight)
        nn.init.zeros_(self.ada[-1].bias)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.ada(y).chunk(3, dim=-1)
        return h + gate * self.mlp(modulate(self.norm(h), shift, scale))


class AdaLNMLP(nn.Module):
    """f(x, t, z): x (N, D) noisy frame, t (N,) or scalar time in [0, 1000], z (N, cond_dim).

    y = time_mlp(sinusoidal(t)) + cond_proj(z) conditions every block; adaLN and output layers start at
    zero, so the untrained network outputs 0."""

    def __init__(self, dim: int, cond_dim: int, width: int, depth: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.input_proj = nn.Linear(dim, width)
        self.time_mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.cond_proj = nn.Linear(cond_dim, width)
        self.blocks = nn.ModuleList(AdaLNResBlock(width) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, dim)
        for layer in (self.final_ada[-1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def time(self, t: torch.Tensor) -> torch.Tensor:
        return self.time_mlp(sinusoidal(t, self.freq_dim).to(self.input_proj.weight.dtype))

    def cond(self, z: torch.Tensor) -> torch.Tensor:
        return self.cond_proj(z)

    def body(self, x: torch.Tensor, t_emb: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The network given precomputed time and condition embeddings (sampling reuses them)."""
        y = t_emb + c
        h = self.input_proj(x)
        for block in self.blocks:
            h = block(h, y)
        shift, scale = self.final_ada(y).chunk(2, dim=-1)
        return self.out(modulate(self.final_norm(h), shift, scale))

    def forward(self, x, t, z):
        return self.body(x, self.time(t), self.cond(z))


def _guided(net: AdaLNMLP, x, t_emb, c, c_uncond, cfg: float) -> torch.Tensor:
    """One network call; with guidance, cond and uncond share it as a doubled batch."""
    if c_uncond is None or cfg == 0:
        return net.body(x, t_emb, c)
    both = net.body(torch.cat([x, x]), t_emb, torch.cat([c, c_uncond]))
    cond, uncond = both.chunk(2)
    return (1 + cfg) * cond - cfg * uncond


# ---------------------------------------------------------------------------------------------------
# rectified flow

class RectifiedFlowHead(nn.Module):
    def __init__(self, dim: int, cond_dim: int, width: int, depth: int, batch_mul: int = 4,
                 time_sampling: str = "logit_normal", steps: int = 8):
        super().__init__()
        if time_sampling not in ("uniform", "logit_normal"):
            raise ValueError(f"rf_time must be 'uniform' or 'logit_normal', got {time_sampling!r}")
        self.dim, self.batch_mul, self.time_sampling, self.steps = dim, batch_mul, time_sampling, steps
        self.net = AdaLNMLP(dim, cond_dim, width, depth)

    def sample_sigma(self, n: int, device, generator=None) -> torch.Tensor:
        if self.time_sampling == "uniform":
            return torch.rand(n, device=device, generator=generator)
        return torch.sigmoid(torch.randn(n, device=device, generator=generator))   # logit-normal(0, 1)

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # each z_t is reused for `batch_mul` independent (σ, n) draws (MAR's diffusion_batch_mul)
        z, x = z.repeat(self.batch_mul, 1), x.repeat(self.batch_mul, 1)
        sigma = self.sample_sigma(x.shape[0], x.device).to(x.dtype)
        n = torch.randn_like(x)
        x_sigma = (1 - sigma[:, None]) * x + sigma[:, None] * n
        v = self.net(x_sigma, sigma * 1000, z)
        return F.mse_loss(v.float(), (n - x).float())

    def sample(self, z, generator=None, temperature: float = 1.0, steps: int | None = None,
               z_uncond=None, cfg: float = 0.0) -> torch.Tensor:
        steps = int(steps or self.steps)
        x = temperature * torch.randn(z.shape[0], self.dim, device=z.device, dtype=z.dtype, generator=generator)
        sigmas = torch.linspace(1.0, 0.0, steps + 1, device=z.device, dtype=z.dtype)
        t_emb = self.net.time(sigmas[:-1] * 1000)                     # (steps, width), once per call
        c = self.net.cond(z)
        c_u = self.net.cond(z_uncond) if z_uncond is not None and cfg != 0 else None
        for i in range(steps):
            v = _guided(self.net, x, t_emb[i], c, c_u, cfg)
            x = x + (sigmas[i + 1] - sigmas[i]) * v                    # Euler step, dσ < 0
        return x


# ---------------------------------------------------------------------------------------------------
# DDPM (ε-prediction, cosine schedule, respaced sampling)

def cosine_alphas_cumprod(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """ᾱ_t for t = 0..T−1 (Nichol & Dhariwal): f(u) = cos²((u + s)/(1 + s)·π/2),
    β_t = min(1 − f((t+1)/T)/f(t/T), max_beta), ᾱ_t = Π_{i≤t}(1 − β_i). In float64."""
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    betas = torch.tensor([min(1 - f((t + 1) / num_steps) / f(t / num_steps), max_beta) for t in range(num_steps)],
                         dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


def respace(alphas_cumprod: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept timesteps, their betas): `steps` timesteps evenly spaced over 0..T−1 (both ends kept);
    β_i = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}} with ᾱ_{t_{−1}} = 1, so the short chain has the same ᾱ at kept steps."""
    T = alphas_cumprod.shape[0]
    steps = max(1, min(int(steps), T))
    ts = torch.unique(torch.linspace(0, T - 1, steps, dtype=torch.float64).round().long())
    ab = alphas_cumprod[ts]
    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
    return ts, 1 - ab / ab_prev


class DDPMHead(nn.Module):
    def __init__(self, dim: int, cond_dim: int, width: int, depth: int, batch_mul: int = 4,
                 train_steps: int = 1000, steps: int = 25):
        super().__init__()
        self.dim, self.batch_mul, self.train_steps, self.steps = dim, batch_mul, train_steps, steps
        self.net = AdaLNMLP(dim, cond_dim, width, depth)
        self.register_buffer("alphas_cumprod", cosine_alphas_cumprod(train_steps).float(), persistent=False)

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        z, x = z.repeat(self.batch_mul, 1), x.repeat(self.batch_mul, 1)
        t = torch.randint(0, self.train_steps, (x.shape[0],), device=x.device)
        ab = self.alphas_cumprod[t][:, None].to(x.dtype)
        eps = torch.randn_like(x)
        x_t = ab.sqrt() * x + (1 - ab).sqrt() * eps                   # q(x_t | x_0)
        return F.mse_loss(self.net(x_t, t.to(x.dtype), z).float(), eps.float())

    def sample(self, z, generator=None, temperature: float = 1.0, steps: int | None = None,
               z_uncond=None, cfg: float = 0.0) -> torch.Tensor:
        ts, betas = respace(self.alphas_cumprod.double().cpu(), int(steps or self.steps))
        ab = self.alphas_cumprod.double().cpu()[ts]
        ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
        # posterior q(x_{t_prev} | x_t, x_0): mean = c0·x_0 + ct·x_t, variance β̃ = β(1 − ᾱ_prev)/(1 − ᾱ)
        c0 = betas * ab_prev.sqrt() / (1 - ab)
        ct = (1 - ab_prev) * (1 - betas).sqrt() / (1 - ab)
        std = (betas * (1 - ab_prev) / (1 - ab)).sqrt()
        coeffs = torch.stack([ab.sqrt(), (1 - ab).sqrt(), c0, ct, std], 1).tolist()   # python floats
        x = torch.randn(z.shape[0], self.dim, device=z.device, dtype=z.dtype, generator=generator)
        t_emb = self.net.time(ts.to(device=z.device, dtype=z.dtype))
        c = self.net.cond(z)
        c_u = self.net.cond(z_uncond) if z_uncond is not None and cfg != 0 else None
        for i in reversed(range(len(ts))):
            sa, s1a, k0, kt, sd = coeffs[i]
            eps = _guided(self.net, x, t_emb[i], c, c_u, cfg)
            x0 = (x - s1a * eps) / sa
            x = k0 * x0 + kt * x
            if i > 0:
                x = x + temperature * sd * torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return x


# ---------------------------------------------------------------------------------------------------
# Gaussian mixture (GIVT)

def squareplus(x: torch.Tensor) -> torch.Tensor:
    """(x + √(x² + 4))/2: a smooth positive map, ≈ x for large x, ≈ 1/|x| for very negative x."""
    return 0.5 * (x + torch.sqrt(x * x + 4))


class ResMLP(nn.Module):
    """Pre-norm residual MLP on z (the GMM head's trunk, sized like the other heads)."""

    def __init__(self, cond_dim: int, width: int, depth: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
            for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, z):
        h = self.proj(z)
        for block in self.blocks:
            h = h + block(h)
        return self.norm(h)


class GMMHead(nn.Module):
    """p(x | z) = Σ_j π_j Π_d N(x_d; μ_jd, s_jd²); outputs k logits + k·D means + k·D scales,
    scales = max(squareplus(raw), 1e-6) as in GIVT."""

    def __init__(self, dim: int, cond_dim: int, width: int, depth: int, modes: int = 32):
        super().__init__()
        self.dim, self.modes = dim, modes
        self.trunk = ResMLP(cond_dim, width, depth)
        self.out = nn.Linear(width, modes * (1 + 2 * dim))
        # small random init (not zero: identical modes would receive identical gradients forever)
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    def params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """logits (N, k), means (N, k, D), scales (N, k, D)."""
        out = self.out(self.trunk(z)).float()
        k, D = self.modes, self.dim
        logits, means, raw = out[:, :k], out[:, k:k + k * D], out[:, k + k * D:]
        return logits, means.view(-1, k, D), squareplus(raw.view(-1, k, D)).clamp_min(1e-6)

    @staticmethod
    def nll_from_params(logits, means, scales, x) -> torch.Tensor:
        """−log p(x) per row: −logsumexp_j [log π_j + Σ_d log N(x_d; μ_jd, s_jd)]."""
        x = x.float()[:, None, :]
        log_normal = -0.5 * ((x - means) / scales) ** 2 - scales.log() - 0.5 * math.log(2 * math.pi)
        return -torch.logsumexp(torch.log_softmax(logits, -1) + log_normal.sum(-1), dim=-1)

    def nll(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.nll_from_params(*self.params(z), x)

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mean NLL per dimension (nats), so its size does not grow with D."""
        return self.nll(z, x).mean() / self.dim

    def sample(self, z, generator=None, temperature: float = 1.0, steps: int | None = None,
               z_uncond=None, cfg: float = 0.0) -> torch.Tensor:
        if cfg:
            raise ValueError("the gmm head has no classifier-free guidance")
        logits, means, scales = self.params(z)
        j = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]       # (N,)
        rows = torch.arange(z.shape[0], device=z.device)
        eps = torch.randn(means.shape[0], self.dim, device=z.device, generator=generator)
        return (means[rows, j] + temperature * scales[rows, j] * eps).to(z.dtype)


DEFAULT_STEPS = {"rf": 8, "ddpm": 25, "gmm": 1}


def make_head(kind: str, dim: int, cond_dim: int, width: int, depth: int, *, batch_mul: int = 4,
              rf_time: str = "logit_normal", steps: int = 0, gmm_modes: int = 32, ddpm_steps: int = 1000) -> nn.Module:
    """`steps` = default sampling steps (0: the head's default, DEFAULT_STEPS)."""
    steps = steps or DEFAULT_STEPS.get(kind, 1)
    if kind == "rf":
        return RectifiedFlowHead(dim, cond_dim, width, depth, batch_mul, rf_time, steps)
    if kind == "ddpm":
        return DDPMHead(dim, cond_dim, width, depth, batch_mul, ddpm_steps, steps)
    if kind == "gmm":
        return GMMHead(dim, cond_dim, width, depth, gmm_modes)
    raise ValueError(f"head must be one of {HEADS}, got {kind!r}")
