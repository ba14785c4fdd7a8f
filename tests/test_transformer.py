"""The shared transformer: KV-cache decoding equals the full forward; causality; AdaLN; sliding window."""

import torch

from arwave.models.transformer import Transformer, TransformerConfig, rotary


def make(**kw):
    torch.manual_seed(0)
    return Transformer(TransformerConfig(width=32, depth=2, heads=4, **kw)).eval()


def test_incremental_cache_equals_full_forward():
    model = make()
    x = torch.randn(2, 9, 32)
    full = model(x, mask="causal")
    caches = model.new_cache()
    steps = [model(x[:, :4], mask="causal", caches=caches)]  # prefill of 4, then one by one
    steps += [model(x[:, t : t + 1], mask="causal", caches=caches) for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_causality():
    model = make()
    x = torch.randn(1, 8, 32)
    y = x.clone()
    y[:, 5:] += torch.randn(1, 3, 32)
    torch.testing.assert_close(model(x, mask="causal")[:, :5], model(y, mask="causal")[:, :5])
    assert not torch.allclose(model(x, mask="causal")[:, 5:], model(y, mask="causal")[:, 5:])


def test_rotary_depends_on_relative_position_only():
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    dot = lambda a, b: (rotary(q, torch.tensor([a])) * rotary(k, torch.tensor([b]))).sum()
    torch.testing.assert_close(dot(3, 1), dot(10, 8))
    assert not torch.allclose(dot(3, 1), dot(3, 2))


def test_sliding_window_matches_windowed_full_forward():
    """One layer, window W: step t attends to the W cached entries plus itself, i.e. tokens t-W..t;
    rotary is relative, so this equals a fresh forward over just those tokens."""
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(width=32, depth=1, heads=4)).eval()
    x = torch.randn(1, 12, 32)
    W = 5
    caches = model.new_cache(max_len=W)
    outs = [model(x[:, t : t + 1], mask="causal", caches=caches) for t in range(12)]
    assert caches[0].length == W and caches[0].position == 12
    ref = model(x[:, 12 - W - 1 :], mask="causal")
    torch.testing.assert_close(outs[-1][:, 0], ref[:, -1], atol=1e-5, rtol=1e-5)


def test_adaln_and_qk_norm_cache_with_block_mask():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(width=32, depth=2, heads=4, rotary=False, qk_norm=True, cond_dim=16)).eval()
    cond = torch.randn(2, 16)
    sizes = [1, 2, 3]
    ids = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
    mask = ids[None, :] <= ids[:, None]  # block-causal
    x = torch.randn(2, 6, 32)
    full = model(x, cond, mask=mask)
    caches, outs, start = model.new_cache(), [], 0
    for s in sizes:
        outs.append(model(x[:, start : start + s], cond, caches=caches))
        start += s
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-5)
    # the condition matters
    assert not torch.allclose(model(x, torch.randn(2, 16), mask=mask), full)
