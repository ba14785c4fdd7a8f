"""CAM heads: GMM NLL vs torch.distributions, the DDPM cosine schedule and respacing, the RF head
learning a known 2-D distribution, and the shared interface (shapes, seeding, guidance)."""

import math

import pytest
import torch
import torch.distributions as dist

from arwave.models.cam.heads import (
    DDPMHead,
    GMMHead,
    RectifiedFlowHead,
    cosine_alphas_cumprod,
    make_head,
    respace,
    squareplus,
)

# ---------------------------------------------------------------------------------------------------
# GMM


def test_gmm_nll_equals_torch_distributions():
    torch.manual_seed(0)
    head = GMMHead(dim=3, cond_dim=8, width=16, depth=1, modes=5)
    z, x = torch.randn(6, 8), torch.randn(6, 3) * 2
    logits, means, scales = head.params(z)
    ref = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Independent(dist.Normal(means, scales), 1))
    torch.testing.assert_close(head.nll(z, x), -ref.log_prob(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(head.loss(z, x), -ref.log_prob(x).mean() / 3, rtol=1e-5, atol=1e-5)


def test_gmm_scales_positive_and_squareplus():
    assert torch.allclose(squareplus(torch.tensor([0.0])), torch.tensor([1.0]))
    assert squareplus(torch.tensor([-1e4])).item() > 0
    head = GMMHead(dim=2, cond_dim=4, width=8, depth=1, modes=3)
    _, _, scales = head.params(torch.randn(5, 4) * 100)
    assert (scales >= 1e-6).all()


def test_gmm_temperature_scales_spread():
    torch.manual_seed(0)
    head = GMMHead(dim=2, cond_dim=4, width=8, depth=1, modes=1)
    z = torch.zeros(4000, 4)
    hot = head.sample(z, torch.Generator().manual_seed(0), temperature=1.0)
    cold = head.sample(z, torch.Generator().manual_seed(0), temperature=0.5)
    mean = head.params(z[:1])[1][0, 0]
    torch.testing.assert_close(cold - mean, 0.5 * (hot - mean), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# DDPM schedule


def test_cosine_schedule():
    T, s = 1000, 0.008
    ab = cosine_alphas_cumprod(T)
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    formula = torch.tensor([f((t + 1) / T) / f(0) for t in range(T)], dtype=torch.float64)
    # equal to the closed form wherever the β clip (0.999) has not acted (it only acts at the very end)
    torch.testing.assert_close(ab[:990], formula[:990], rtol=1e-9, atol=1e-12)
    assert (ab[1:] < ab[:-1]).all()  # strictly decreasing
    assert ab[0] > 0.9999 and ab[-1] < 1e-4  # ᾱ_0 ≈ 1, ᾱ_T ≈ 0


def test_respacing_betas():
    ab = cosine_alphas_cumprod(1000)
    ts, betas = respace(ab, 10)
    assert len(ts) == 10 and ts[0] == 0 and ts[-1] == 999 and (ts[1:] > ts[:-1]).all()
    prev = torch.cat([torch.ones(1, dtype=ab.dtype), ab[ts][:-1]])
    torch.testing.assert_close(betas, 1 - ab[ts] / prev)
    # the short chain reproduces ᾱ at the kept steps
    torch.testing.assert_close(torch.cumprod(1 - betas, 0), ab[ts])
    ts_full, betas_full = respace(ab, 1000)
    torch.testing.assert_close(torch.cumprod(1 - betas_full, 0), ab)


# ---------------------------------------------------------------------------------------------------
# learning a known distribution


def _two_condition_data(n, generator):
    """cond 0 -> N((2, 0), 0.3²); cond 1 -> N((−1, 1.5), 0.6²)."""
    c = torch.randint(0, 2, (n,), generator=generator)
    mean = torch.tensor([[2.0, 0.0], [-1.0, 1.5]])[c]
    std = torch.tensor([0.3, 0.6])[c][:, None]
    return torch.nn.functional.one_hot(c, 2).float(), mean + std * torch.randn(n, 2, generator=generator)


@pytest.mark.parametrize("kind", ["rf", "ddpm", "gmm"])
def test_head_learns_conditional_gaussians(kind):
    torch.manual_seed(0)
    head = make_head(
        kind,
        dim=2,
        cond_dim=2,
        width=48,
        depth=2,
        batch_mul=2,
        rf_time="uniform",
        gmm_modes=2,
        steps=16 if kind == "rf" else 50,
    )
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        z, x = _two_condition_data(128, g)
        loss = head.loss(z, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for c, mean, std in [(0, (2.0, 0.0), 0.3), (1, (-1.0, 1.5), 0.6)]:
            z = torch.nn.functional.one_hot(torch.full((2000,), c), 2).float()
            s = head.sample(z, torch.Generator().manual_seed(2))
            assert torch.allclose(s.mean(0), torch.tensor(mean), atol=0.15), (kind, c, s.mean(0))
            assert torch.allclose(s.std(0), torch.tensor([std, std]), rtol=0.3), (kind, c, s.std(0))


# ---------------------------------------------------------------------------------------------------
# interface


@pytest.mark.parametrize("kind", ["rf", "ddpm", "gmm"])
def test_interface_shapes_seeding_and_gradients(kind):
    torch.manual_seed(0)
    head = make_head(kind, dim=3, cond_dim=8, width=16, depth=2, batch_mul=3, steps=4)
    z, x = torch.randn(5, 8, requires_grad=True), torch.randn(5, 3)
    loss = head.loss(z, x)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert z.grad is not None  # the loss reaches the backbone state
    with torch.no_grad():
        a = head.sample(z, torch.Generator().manual_seed(4))
        b = head.sample(z, torch.Generator().manual_seed(4))
        c = head.sample(z, torch.Generator().manual_seed(5))
    assert a.shape == (5, 3) and torch.equal(a, b) and not torch.equal(a, c)


def test_rf_euler_integrates_known_velocity(monkeypatch):
    """With v_θ replaced by the exact velocity of a point mass at x* (v = (x_σ − x*)/σ… i.e. n − x*),
    Euler from σ = 1 lands exactly on x*: checks the time grid and the sign convention."""
    from arwave.models.cam.heads import StepPlan

    head = RectifiedFlowHead(dim=2, cond_dim=4, width=8, depth=1, steps=5)
    target = torch.tensor([[1.5, -2.0]])

    def exact(plan, x, i):  # x_σ = (1−σ)x* + σn  ⇒  v = n − x* = (x_σ − x*)/σ
        assert i == exact.i
        sigma = exact.sigmas[exact.i]
        exact.i += 1
        return (x - target) / sigma

    exact.sigmas, exact.i = torch.linspace(1, 0, 6), 0
    monkeypatch.setattr(StepPlan, "__call__", exact)
    out = head.sample(torch.zeros(1, 4), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, target)


@pytest.mark.parametrize("cls", [RectifiedFlowHead, DDPMHead])
def test_guidance_mixes_cond_and_uncond(cls):
    torch.manual_seed(0)
    head = cls(dim=2, cond_dim=4, width=8, depth=1, steps=3)
    for p in head.parameters():  # leave zero init so outputs depend on z
        torch.nn.init.normal_(p, std=0.3)
    z, zu = torch.randn(3, 4), torch.randn(3, 4)
    plain = head.sample(z, torch.Generator().manual_seed(0))
    zero = head.sample(z, torch.Generator().manual_seed(0), z_uncond=zu, guidance=0.0)
    guided = head.sample(z, torch.Generator().manual_seed(0), z_uncond=zu, guidance=2.0)
    same = head.sample(z, torch.Generator().manual_seed(0), z_uncond=z, guidance=2.0)
    torch.testing.assert_close(plain, zero)
    torch.testing.assert_close(plain, same, atol=1e-5, rtol=1e-5)  # uncond == cond: guidance is a no-op
    assert not torch.allclose(plain, guided)


def test_batched_step_modulations_equal_per_row_forward():
    """Sampling precomputes adaLN modulations for all steps at once; the network must be unchanged."""
    torch.manual_seed(0)
    head = RectifiedFlowHead(dim=3, cond_dim=4, width=8, depth=2)
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.3)
    z, x, t = torch.randn(5, 4), torch.randn(5, 3), torch.tensor([1000.0, 500.0, 125.0])
    mods = head.net.step_modulations(t, z)
    for i in range(3):
        torch.testing.assert_close(head.net.body(x, mods[i]), head.net(x, t[i].expand(5), z), atol=1e-5, rtol=1e-5)
