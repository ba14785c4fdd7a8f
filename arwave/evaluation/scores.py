"""Inception Score and KL divergence from a classifier's clip-level class posteriors p(y|x).

    ISc = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x)          (all over generated clips)

ISc is 1 when every clip gets the same posterior and equals K when the clips are confidently and
evenly spread over K classes: it rewards confident *and* diverse generations. It is computed over the
whole set at once (no splits).

    KL (paired)   = mean_i KL( p_ref(y|x_i) || p_gen(y|x'_i) ),  KL(p || q) = sum_y p log(p / q)

for generated clip x'_i made from (conditioned on) reference clip x_i, as in the AudioGen/AudioLDM
protocol. For unconditional generation, where no pairing exists, `kl_marginal` compares the two
sets' mean posteriors: KL( E_ref p(y|x) || E_gen p(y|x) ). Natural logarithms (nats); q is clamped
at 1e-10 so that a zero probability gives a large but finite value; terms with p = 0 count 0.
"""

from __future__ import annotations

import torch

from arwave.errors import ArwaveError

EPS = 1e-10


class ScoreError(ArwaveError):
    pass


def _check_probs(p, name: str) -> torch.Tensor:
    p = torch.as_tensor(p, dtype=torch.float64)
    if p.dim() != 2 or p.shape[0] == 0:
        raise ScoreError(f"{name}: expected class posteriors of shape (clips, classes), got {tuple(p.shape)}")
    if (p < -1e-6).any() or not torch.allclose(p.sum(-1), torch.ones(p.shape[0], dtype=torch.float64), atol=1e-3):
        raise ScoreError(f"{name}: rows must be probability distributions (non-negative, summing to 1)")
    return p.clamp_min(0)


def kl_rows(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p_i || q_i) per row, in nats."""
    return (torch.xlogy(p, p) - torch.xlogy(p, q.clamp_min(EPS))).sum(-1)


def inception_score(probs) -> float:
    """exp(E_x KL(p(y|x) || p(y))) over a (N, K) matrix of class posteriors."""
    p = _check_probs(probs, "inception_score")
    marginal = p.mean(0, keepdim=True).expand_as(p)
    return float(torch.exp(kl_rows(p, marginal).mean()))


def kl_divergence(p_ref, p_gen) -> float:
    """Paired KL: mean over clips i of KL(p_ref[i] || p_gen[i]) (both (N, K), same order)."""
    p, q = _check_probs(p_ref, "kl_divergence p_ref"), _check_probs(p_gen, "kl_divergence p_gen")
    if p.shape != q.shape:
        raise ScoreError(
            f"paired KL needs one generated clip per reference clip: got {tuple(p.shape)} "
            f"reference vs {tuple(q.shape)} generated posteriors"
        )
    return float(kl_rows(p, q).mean())


def kl_marginal(p_ref, p_gen) -> float:
    """Unpaired KL between the mean class distributions: KL(mean p_ref || mean p_gen)."""
    p, q = _check_probs(p_ref, "kl_marginal p_ref"), _check_probs(p_gen, "kl_marginal p_gen")
    if p.shape[1] != q.shape[1]:
        raise ScoreError(f"kl_marginal: {p.shape[1]} vs {q.shape[1]} classes")
    return float(kl_rows(p.mean(0, keepdim=True), q.mean(0, keepdim=True))[0])
