"""ISc and KL against hand computations."""

import math

import numpy as np
import pytest
import torch

from arwave.evaluation.scores import ScoreError, inception_score, kl_divergence, kl_marginal


def test_isc_constant_posterior_is_one():
    p = torch.tensor([[0.2, 0.5, 0.3]]).repeat(10, 1)
    assert inception_score(p) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("k", [2, 5, 10])
def test_isc_uniform_confident_predictions_equal_num_classes(k):
    p = torch.eye(k).repeat(3, 1)  # each class predicted with certainty, equally often
    assert inception_score(p) == pytest.approx(k, rel=1e-9)


def test_isc_matches_hand_computation():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4) * 0.5, size=50)
    marginal = p.mean(0)
    expected = math.exp(np.mean([np.sum(row * np.log(row / marginal)) for row in p]))
    assert inception_score(torch.from_numpy(p)) == pytest.approx(expected, rel=1e-9)
    assert 1.0 <= expected <= 4.0


def test_kl_zero_for_identical_and_positive_otherwise():
    rng = np.random.default_rng(1)
    p = torch.from_numpy(rng.dirichlet(np.ones(6), size=8))
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    q = torch.from_numpy(rng.dirichlet(np.ones(6), size=8))
    expected = np.mean([np.sum(a * np.log(a / b)) for a, b in zip(p.numpy(), q.numpy())])
    assert kl_divergence(p, q) == pytest.approx(expected, rel=1e-9)
    assert expected > 0


def test_kl_two_class_hand_value_and_zero_terms():
    p = torch.tensor([[1.0, 0.0]])
    q = torch.tensor([[0.5, 0.5]])
    assert kl_divergence(p, q) == pytest.approx(math.log(2), rel=1e-9)  # 1 log(1/0.5); 0 log 0 = 0


def test_kl_marginal_compares_mean_distributions():
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # mean (0.5, 0.5)
    q = torch.tensor([[0.5, 0.5], [0.5, 0.5]])  # same mean: marginal KL 0, paired KL log 2
    assert kl_marginal(p, q) == pytest.approx(0.0, abs=1e-12)
    assert kl_divergence(p, q) == pytest.approx(math.log(2), rel=1e-9)


def test_score_input_errors():
    with pytest.raises(ScoreError):
        inception_score(torch.ones(3, 2))  # rows do not sum to one
    with pytest.raises(ScoreError):
        kl_divergence(torch.eye(3), torch.eye(3)[:2])  # not paired
