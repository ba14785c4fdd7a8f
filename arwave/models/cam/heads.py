"""Per-frame heads: given the backbone state z_t, model p(x_t | z_t) for one continuous frame x_t ∈ R^D.

One interface, three heads (config `head`):

    loss(z (N, W), x (N, D)) -> scalar         training loss
    sample(z, generator, temperature=1.0, steps=None, z_uncond=None, guidance=0.0) -> x (N, D) float32

- "rf"   rectified flow (CAM, MAR-RF). Convention: σ = 0 is data, σ = 1 is noise,
         x_σ = (1 − σ)·x + σ·n,  target velocity v = dx_σ/dσ = n − x,  loss ||v_θ(x_σ, σ, z) − v||².
         Sampling integrates dx/dσ = v_θ from σ = 1 (x = temperature·n) to σ = 0 with `steps` Euler steps.
- "ddpm" ε-prediction DDPM (MAR): cosine schedule over 1000 steps, ε-MSE loss, fixed posterior variance
         (MAR learns the variance with an extra VB loss; we keep it out: few-step respaced sampling with
         the posterior variance works without it). Sampling respaced to `steps` steps; the temperature
         multiplies the injected noise (as in MAR); the x0 estimate is clamped to ±`clip` (unit-scale
         latents; 0 = off), without which the first step from ᾱ_T ≈ 0 blows up small ε errors.
- "gmm"  GIVT: a mixture of `modes` diagonal Gaussians; exact NLL; temperature scales the std devs.

Classifier-free guidance (rf, ddpm): the prediction for the conditional state z and the unconditional
state z_uncond are mixed as (1 + guidance)·cond − guidance·uncond (velocity for rf, ε for ddpm).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.models.cam.noise import sinusoidal
from arwave.models.quantize import weight_dtype

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

    def forward(self, h: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
        """mod = self.ada(y), precomputed (sampling computes it for every step at once)."""
        shift, scale, gate = mod.chunk(3, dim=-1)
        return h + gate * self.mlp(modulate(self.norm(h), shift, scale))


class AdaLNMLP(nn.Module):
    """f(x, t, z): x (N, D) noisy frame, t (N,) or scalar time in [0, 1000], z (N, cond_dim).

    y = time_mlp(sinusoidal(t)) + cond_proj(z) conditions every block; adaLN and output layers start at
    zero, so the untrained network outputs 0.

    Sampling speed: the adaLN modulations depend on (t, z) only, not on x, so `modulations` computes
    them for all S steps of a frame in one batched matmul per layer (reading those weights once per
    frame instead of once per step); each step then runs only the x path (`body`)."""

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
        return self.time_mlp(sinusoidal(t, self.freq_dim).to(weight_dtype(self.input_proj)))

    def cond(self, z: torch.Tensor) -> torch.Tensor:
        return self.cond_proj(z)

    def modulations(self, y: torch.Tensor) -> list[torch.Tensor]:
        """adaLN parameters of every block and of the final layer for conditioning y (..., width)."""
        return [block.ada(y) for block in self.blocks] + [self.final_ada(y)]

    def body(self, x: torch.Tensor, mods: list[torch.Tensor]) -> torch.Tensor:
        """The x path; x and the output stay float32 whatever the weights' dtype (bf16 inference)."""
        h = self.input_proj(x.to(weight_dtype(self.input_proj)))
        for block, mod in zip(self.blocks, mods):
            h = block(h, mod)
        shift, scale = mods[-1].chunk(2, dim=-1)
        return self.out(modulate(self.final_norm(h), shift, scale)).float()

    def forward(self, x, t, z):
        return self.body(x, self.modulations(self.time(t) + self.cond(z)))

    def step_modulations(self, t: torch.Tensor, z: torch.Tensor, z_uncond: torch.Tensor | None = None):
        """For sampling: modulations of S steps (times t (S,)) for rows z (N, cond_dim), with the
        unconditional rows appended when guiding -> list over steps of lists over layers."""
        c = self.cond(z)
        if z_uncond is not None:
            c = torch.cat([c, self.cond(z_uncond)])
        mods = self.modulations(self.time(t)[:, None, :] + c[None])  # each (S, N', ·)
        return [[m[i] for m in mods] for i in range(t.shape[0])]

    def step_modulations_batched(self, t: torch.Tensor, z: torch.Tensor, z_uncond: torch.Tensor | None = None):
        """As `step_modulations`, as one tensor (S, N', k·width) per layer (for `StepPlan`)."""
        c = self.cond(z)
        if z_uncond is not None:
            c = torch.cat([c, self.cond(z_uncond)])
        return self.modulations(self.time(t)[:, None, :] + c[None])


def _guided(net: AdaLNMLP, x, mods, guidance: float) -> torch.Tensor:
    """One network call; with guidance, cond and uncond rows share it as a doubled batch and the
    outputs are mixed as (1 + guidance)·cond − guidance·uncond."""
    if not guidance:
        return net.body(x, mods)
    cond, uncond = net.body(torch.cat([x, x]), mods).chunk(2)
    return (1 + guidance) * cond - guidance * uncond


def _linear(m: nn.Module):
    """A plain function for a Linear layer (no module-call overhead): F.linear on float weights, or
    the layer's own forward for a quantized one."""
    if type(m) is nn.Linear:
        w, b = m.weight, m.bias
        return lambda x: F.linear(x, w, b)
    return m.forward


class StepPlan:
    """The denoiser's sampling path for one frame, everything that does not depend on x prepared once.

    Why: a head sample runs the same small MLP `steps` times on one or two rows, where the cost is the
    number of operator calls, not arithmetic. Per frame: the conditioning y of every step and all adaLN
    modulations in one batched matmul per layer (each weight read once per frame, not once per step),
    split into (shift, 1 + scale, gate) views. Per step: the x path only, as fused ops (addcmul for
    modulate and the gated residual) on plain functions instead of module calls. Equal to
    `AdaLNMLP.forward` at every step up to float rounding (tests/test_speed_equivalence.py)."""

    def __init__(self, net: AdaLNMLP, t: torch.Tensor, z: torch.Tensor, z_uncond: torch.Tensor | None = None):
        W = net.input_proj.out_features
        self.dtype = weight_dtype(net.input_proj)
        mods = net.step_modulations_batched(t, z, z_uncond)  # each (S, N', k·W)
        self.blocks = []
        for block, m in zip(net.blocks, mods[:-1]):
            shift, scale, gate = m.split(W, dim=-1)
            norm = (block.norm.normalized_shape, block.norm.weight, block.norm.bias, block.norm.eps)
            self.blocks.append((norm, _linear(block.mlp[0]), _linear(block.mlp[2]), shift, scale + 1, gate))
        shift, scale = mods[-1].split(W, dim=-1)
        self.final = (shift, scale + 1)
        self.input_proj, self.out = _linear(net.input_proj), _linear(net.out)
        self.eps = net.final_norm.eps

    def __call__(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Network output at step i for x (N', D) (float32 in and out)."""
        h = self.input_proj(x.to(self.dtype))
        for norm, fc1, fc2, shift, scale, gate in self.blocks:
            u = torch.addcmul(shift[i], F.layer_norm(h, *norm), scale[i])
            h = torch.addcmul(h, gate[i], fc2(F.silu(fc1(u))))
        shift, scale = self.final
        u = torch.addcmul(shift[i], F.layer_norm(h, h.shape[-1:], None, None, self.eps), scale[i])
        return self.out(u).float()

    def guided(self, x: torch.Tensor, i: int, guidance: float) -> torch.Tensor:
        """As `_guided`: cond and uncond rows in one call, mixed as (1 + guidance)·cond − guidance·uncond."""
        if not guidance:
            return self(x, i)
        cond, uncond = self(torch.cat([x, x]), i).chunk(2)
        return torch.add((1 + guidance) * cond, uncond, alpha=-guidance)


# ---------------------------------------------------------------------------------------------------
# rectified flow


class RectifiedFlowHead(nn.Module):
    def __init__(
        self,
        dim: int,
        cond_dim: int,
        width: int,
        depth: int,
        batch_mul: int = 4,
        time_sampling: str = "logit_normal",
        steps: int = 8,
    ):
        super().__init__()
        if time_sampling not in ("uniform", "logit_normal"):
            raise ValueError(f"rf_time must be 'uniform' or 'logit_normal', got {time_sampling!r}")
        self.dim, self.batch_mul, self.time_sampling, self.steps = dim, batch_mul, time_sampling, steps
        self.net = AdaLNMLP(dim, cond_dim, width, depth)

    def sample_sigma(self, n: int, device, generator=None) -> torch.Tensor:
        if self.time_sampling == "uniform":
            return torch.rand(n, device=device, generator=generator)
        return torch.sigmoid(torch.randn(n, device=device, generator=generator))  # logit-normal(0, 1)

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # each z_t is reused for `batch_mul` independent (σ, n) draws (MAR's diffusion_batch_mul)
        z, x = z.repeat(self.batch_mul, 1), x.repeat(self.batch_mul, 1)
        sigma = self.sample_sigma(x.shape[0], x.device).to(x.dtype)
        n = torch.randn_like(x)
        x_sigma = (1 - sigma[:, None]) * x + sigma[:, None] * n
        v = self.net(x_sigma, sigma * 1000, z)
        return F.mse_loss(v.float(), (n - x).float())

    def sample(
        self, z, generator=None, temperature: float = 1.0, steps: int | None = None, z_uncond=None, guidance=0.0
    ) -> torch.Tensor:
        steps = int(steps or self.steps)
        guided = z_uncond is not None and guidance != 0
        x = temperature * torch.randn(z.shape[0], self.dim, device=z.device, generator=generator)  # float32 state
        sigmas = torch.linspace(1.0, 0.0, steps + 1, device=z.device)
        plan = StepPlan(self.net, sigmas[:-1] * 1000, z, z_uncond if guided else None)
        for i, dsigma in enumerate((sigmas[1:] - sigmas[:-1]).tolist()):
            x = x.add_(plan.guided(x, i, guidance if guided else 0.0), alpha=dsigma)  # Euler, dσ < 0
        return x


# ---------------------------------------------------------------------------------------------------
# DDPM (ε-prediction, cosine schedule, respaced sampling)


def cosine_alphas_cumprod(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """ᾱ_t for t = 0..T−1 (Nichol & Dhariwal): f(u) = cos²((u + s)/(1 + s)·π/2),
    β_t = min(1 − f((t+1)/T)/f(t/T), max_beta), ᾱ_t = Π_{i≤t}(1 − β_i). In float64."""
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    betas = torch.tensor(
        [min(1 - f((t + 1) / num_steps) / f(t / num_steps), max_beta) for t in range(num_steps)], dtype=torch.float64
    )
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
    def __init__(
        self,
        dim: int,
        cond_dim: int,
        width: int,
        depth: int,
        batch_mul: int = 4,
        train_steps: int = 1000,
        steps: int = 25,
        clip: float = 6.0,
    ):
        super().__init__()
        self.dim, self.batch_mul, self.train_steps, self.steps, self.clip = dim, batch_mul, train_steps, steps, clip
        self.net = AdaLNMLP(dim, cond_dim, width, depth)
        self.register_buffer("alphas_cumprod", cosine_alphas_cumprod(train_steps).float(), persistent=False)

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        z, x = z.repeat(self.batch_mul, 1), x.repeat(self.batch_mul, 1)
        t = torch.randint(0, self.train_steps, (x.shape[0],), device=x.device)
        ab = self.alphas_cumprod[t][:, None].to(x.dtype)
        eps = torch.randn_like(x)
        x_t = ab.sqrt() * x + (1 - ab).sqrt() * eps  # q(x_t | x_0)
        return F.mse_loss(self.net(x_t, t.to(x.dtype), z).float(), eps.float())

    def sample(
        self, z, generator=None, temperature: float = 1.0, steps: int | None = None, z_uncond=None, guidance=0.0
    ) -> torch.Tensor:
        ts, betas = respace(self.alphas_cumprod.double().cpu(), int(steps or self.steps))
        ab = self.alphas_cumprod.double().cpu()[ts]
        ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
        # posterior q(x_{t_prev} | x_t, x_0): mean = c0·x_0 + ct·x_t, variance β̃ = β(1 − ᾱ_prev)/(1 − ᾱ)
        c0 = betas * ab_prev.sqrt() / (1 - ab)
        ct = (1 - ab_prev) * (1 - betas).sqrt() / (1 - ab)
        std = (betas * (1 - ab_prev) / (1 - ab)).sqrt()
        coeffs = torch.stack([ab.sqrt(), (1 - ab).sqrt(), c0, ct, std], 1).tolist()  # python floats
        guided = z_uncond is not None and guidance != 0
        x = torch.randn(z.shape[0], self.dim, device=z.device, generator=generator)  # float32 state
        plan = StepPlan(self.net, ts.to(device=z.device, dtype=torch.float32), z, z_uncond if guided else None)
        for i in reversed(range(len(ts))):
            sa, s1a, k0, kt, sd = coeffs[i]
            eps = plan.guided(x, i, guidance if guided else 0.0)
            x0 = (x - s1a * eps) / sa
            if self.clip > 0:
                # near t = T, ᾱ ≈ 2e−9: x0 = (x − √(1−ᾱ)ε̂)/√ᾱ multiplies any error of ε̂ by ~2e4, so
                # x0 is clamped to the latents' plausible range (IDDPM clips images to [−1, 1] likewise)
                x0 = x0.clamp(-self.clip, self.clip)
            x = k0 * x0 + kt * x
            if i > 0:
                x = x + temperature * sd * torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return x


# ---------------------------------------------------------------------------------------------------
# Gaussian mixture (GIVT)


def squareplus(x: torch.Tensor) -> torch.Tensor:
    """(x + √(x² + 4))/2: a smooth positive map, ≈ x for large x, ≈ 1/|x| for very negative x.
    For x < 0 the equal form 2/(√(x² + 4) − x) avoids cancellation."""
    root = torch.sqrt(x * x + 4)
    return torch.where(x >= 0, 0.5 * (x + root), 2 / (root - x))


class ResMLP(nn.Module):
    """Pre-norm residual MLP on z (the GMM head's trunk, sized like the other heads)."""

    def __init__(self, cond_dim: int, width: int, depth: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
            for _ in range(depth)
        )
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
        logits, means, raw = out[:, :k], out[:, k : k + k * D], out[:, k + k * D :]
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

    def sample(
        self, z, generator=None, temperature: float = 1.0, steps: int | None = None, z_uncond=None, guidance=0.0
    ) -> torch.Tensor:
        if guidance:
            raise ValueError("the gmm head has no classifier-free guidance")
        logits, means, scales = self.params(z)
        j = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]  # (N,)
        rows = torch.arange(z.shape[0], device=z.device)
        eps = torch.randn(means.shape[0], self.dim, device=z.device, generator=generator)
        return means[rows, j] + temperature * scales[rows, j] * eps


DEFAULT_STEPS = {"rf": 8, "ddpm": 25, "gmm": 1}


def make_head(
    kind: str,
    dim: int,
    cond_dim: int,
    width: int,
    depth: int,
    *,
    batch_mul: int = 4,
    rf_time: str = "logit_normal",
    steps: int = 0,
    gmm_modes: int = 32,
    ddpm_steps: int = 1000,
    ddpm_clip: float = 6.0,
) -> nn.Module:
    """`steps` = default sampling steps (0: the head's default, DEFAULT_STEPS)."""
    steps = steps or DEFAULT_STEPS.get(kind, 1)
    if kind == "rf":
        return RectifiedFlowHead(dim, cond_dim, width, depth, batch_mul, rf_time, steps)
    if kind == "ddpm":
        return DDPMHead(dim, cond_dim, width, depth, batch_mul, ddpm_steps, steps, ddpm_clip)
    if kind == "gmm":
        return GMMHead(dim, cond_dim, width, depth, gmm_modes)
    raise ValueError(f"head must be one of {HEADS}, got {kind!r}")
