"""Token sampling: top-k / top-p keep exactly the right tokens, CFG formula and ramp, seeded draws."""

import math

import torch

from arwave.models.generator import make_generator
from arwave.models.sampling import filter_logits, guidance_ramp, guided_logits, sample


def kept(logits, **kw):
    return set(torch.nonzero(torch.isfinite(filter_logits(logits, **kw))).flatten().tolist())


def slow_top_p_keep(probs, p):
    """VAR's rule, one token at a time: sort ascending, drop while the cumulative mass <= 1 - p, keep the top."""
    order = sorted(range(len(probs)), key=lambda i: probs[i])
    keep, cum = set(), 0.0
    for rank, i in enumerate(order):
        cum += probs[i]
        if cum > 1 - p or rank == len(order) - 1:
            keep.add(i)
    return keep


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([1.0, 3.0, 2.0, 0.5, -1.0])
    assert kept(logits, top_k=2) == {1, 2}
    assert kept(logits, top_k=1) == {1}
    assert kept(logits, top_k=0) == {0, 1, 2, 3, 4}
    assert kept(logits, top_k=5) == {0, 1, 2, 3, 4}


def test_top_p_hand_made():
    probs = torch.tensor([0.5, 0.25, 0.15, 0.1])
    logits = probs.log()
    # ascending 0.1, 0.15, 0.25, 0.5 -> cumulative 0.1, 0.25, 0.5, 1.0
    assert kept(logits, top_p=0.7) == {0, 1}  # drop cum <= 0.3: 0.1 and 0.15
    assert kept(logits, top_p=0.8) == {0, 1, 2}  # drop cum <= 0.2: 0.1 only
    assert kept(logits, top_p=0.95) == {0, 1, 2, 3}  # drop cum <= 0.05: none
    assert kept(logits, top_p=0.4) == {0}  # drop cum <= 0.6: all but the top
    assert kept(logits, top_p=1e-6) == {0}  # the top token is always kept


def test_top_p_matches_slow_reference_and_combines_with_top_k():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        logits = torch.randn(12, generator=g) * 2
        probs = logits.softmax(-1).tolist()
        for p in (0.3, 0.6, 0.9, 0.99):
            assert kept(logits, top_p=p) == slow_top_p_keep(probs, p)
        # top-k first, then top-p on the renormalised survivors
        top5 = sorted(range(12), key=lambda i: -logits[i])[:5]
        sub = logits[top5].softmax(-1).tolist()
        expect = {top5[i] for i in slow_top_p_keep(sub, 0.8)}
        assert kept(logits, top_k=5, top_p=0.8) == expect


def test_batched_filtering_is_per_row():
    logits = torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, 4.9]])
    out = filter_logits(logits, top_k=1)
    assert torch.isfinite(out).tolist() == [[False, True, False], [True, False, False]]


def test_guidance_formula_and_ramp():
    cond, uncond = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 3.0])
    torch.testing.assert_close(guided_logits(cond, uncond, 0.0), cond)
    torch.testing.assert_close(guided_logits(cond, uncond, 2.0), 3 * cond - 2 * uncond)
    assert [guidance_ramp(4.0, k, 5) for k in range(5)] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_seeded_sampling_is_reproducible_and_respects_filters():
    logits = torch.randn(64, 10)
    a = sample(logits, make_generator(7), top_k=3)
    b = sample(logits, make_generator(7), top_k=3)
    c = sample(logits, make_generator(8), top_k=3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    allowed = logits.topk(3, dim=-1).indices
    assert (allowed == a[:, None]).any(-1).all()
    assert torch.equal(sample(logits, make_generator(0), temperature=0), logits.argmax(-1))


def test_sampling_frequencies_follow_the_filtered_distribution():
    probs = torch.tensor([0.5, 0.3, 0.2])
    draws = sample(probs.log().expand(20000, 3), make_generator(1), top_k=2)
    freq = torch.bincount(draws, minlength=3).float() / 20000
    assert freq[2] == 0
    assert math.isclose(freq[0].item(), 0.625, abs_tol=0.02)
