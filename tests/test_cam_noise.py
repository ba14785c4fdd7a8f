"""CAM noise augmentation: the formula (linear and vp) against a hand computation, identity at k_max = 0,
inference re-noising, and the level embedding."""

import pytest
import torch

from arwave.models.cam.noise import NoiseLevelEmbedding, augment, corrupt, renoise, sinusoidal


@pytest.mark.parametrize("mode", ["linear", "vp"])
def test_augment_matches_hand_computation(mode):
    x = torch.randn(3, 7, 5)
    x_aug, k = augment(x, k_max=0.6, mode=mode, generator=torch.Generator().manual_seed(11))
    # the same draws, in the same order, by hand: k ~ U(0, k_max) per frame, then ε
    g = torch.Generator().manual_seed(11)
    k_ref = torch.rand(3, 7, generator=g) * 0.6
    eps = torch.randn(3, 7, 5, generator=g)
    torch.testing.assert_close(k, k_ref)
    kk = k_ref[..., None]
    ref = (1 - kk) * x + kk * eps if mode == "linear" else (1 - kk).sqrt() * x + kk.sqrt() * eps
    torch.testing.assert_close(x_aug, ref)
    # one level per frame (shared by the D channels), all within [0, k_max)
    assert k.shape == (3, 7) and 0 <= k.min() and k.max() < 0.6
    # the level really matters per frame: the frame with the largest k moved the most relative to x
    assert k.std() > 0


def test_identity_at_k_max_zero():
    x = torch.randn(2, 4, 3)
    x_aug, k = augment(x, k_max=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x_aug, x) and torch.equal(k, torch.zeros(2, 4))
    assert torch.equal(renoise(x, 0.0), x)


def test_vp_preserves_variance_linear_does_not():
    x = torch.randn(200_000)
    eps = torch.randn(200_000)
    assert abs(corrupt(x, 0.5, eps, "vp").var().item() - 1.0) < 0.02
    assert abs(corrupt(x, 0.5, eps, "linear").var().item() - 0.5) < 0.02  # (1−k)² + k² = 0.5


def test_renoise_is_seeded_and_follows_formula():
    x = torch.randn(4, 6)
    a = renoise(x, 0.1, "linear", torch.Generator().manual_seed(5))
    eps = torch.randn(4, 6, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, 0.9 * x + 0.1 * eps)


def test_level_embedding_shapes_and_zero_start():
    emb = NoiseLevelEmbedding(16)
    k = torch.rand(2, 5)
    out = emb(k)
    assert out.shape == (2, 5, 16)
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised output layer
    torch.nn.init.normal_(emb.mlp[-1].weight)
    assert not torch.allclose(emb(torch.zeros(1)), emb(torch.full((1,), 0.3)))
    assert sinusoidal(torch.tensor([0.0, 1.0]), 7).shape == (2, 7)
