"""Sliding-window generation sees what training saw (issue 11): every training crop starts with the start
token, so past the context the KV cache keeps it pinned at the head of the window; the next-token
baseline also drops whole frames, so each context is a prefix of a training crop.

With ONE layer a cached key/value depends on its own input only, so a sliding step must equal the
training forward over the window exactly; deeper models add the usual sliding-cache approximation
(old frames' cached states carry history from before the window)."""

import math

import torch

from arwave.codec.bottlenecks import ResidualVQ
from arwave.models.generator import make_generator
from arwave.models.nexttoken.model import NextToken, NextTokenConfig
from arwave.models.transformer import Transformer, TransformerConfig

N, V = 3, 16


def test_pinned_entry_is_moved_just_before_the_window():
    """One layer, window W with the first token pinned: step t equals a fresh forward over
    [token 0, tokens t-W+1..t] (rotary: relative positions as in that forward)."""
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(width=32, depth=1, heads=4)).eval()
    x = torch.randn(1, 14, 32)
    W = 5
    caches = model.new_cache(max_len=W, sink=1)
    outs = [model(x[:, t : t + 1], mask="causal", caches=caches) for t in range(14)]
    assert caches[0].length == W and caches[0].position == 14
    for t in (6, 9, 13):
        ref = model(torch.cat([x[:, :1], x[:, t - W + 1 : t + 1]], dim=1), mask="causal")
        torch.testing.assert_close(outs[t][:, 0], ref[:, -1], atol=1e-5, rtol=1e-5)
    # without the pin, the same steps miss token 0 (what generation did before)
    plain = model.new_cache(max_len=W)
    outs = [model(x[:, t : t + 1], mask="causal", caches=plain) for t in range(14)]
    ref = model(torch.cat([x[:, :1], x[:, 13 - W + 1 :]], dim=1), mask="causal")
    assert (outs[13][:, 0] - ref[:, -1]).abs().max() > 1e-3


def nexttoken(context: int, pattern: str = "flat", depth: int = 1) -> NextToken:
    torch.manual_seed(0)
    q = ResidualVQ(8, levels=N, codebook_size=V).eval()
    model = NextToken(
        NextTokenConfig(width=32, depth=depth, heads=4, num_classes=3, context_frames=context, pattern=pattern),
        quantizer=q,
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def test_nexttoken_sliding_steps_equal_training_crops():
    """Flat pattern, context F frames: the step predicting token s (teacher forced, past the context)
    must give the logits that training computes for token s inside the crop of F frames starting at
    frame a(s) = ceil(max(0, s − (F·N − 1)) / N): the start token at the head, whole frames after it."""
    F = 3
    model = nexttoken(F)
    frames = 4 * F
    codes = torch.randint(0, V, (2, N, frames + F), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 2])
    cond = model.condition(2, labels)
    _, logits = model.sample_steps(frames, cond, None, make_generator(0), given=codes[..., :frames], return_logits=True)
    T = F * N
    with torch.no_grad():
        for s in range(frames * N):
            a = math.ceil(max(0, s - (T - 1)) / N)  # first frame of the window
            crop = model(codes[..., a : a + F], labels)  # (B, T, 1, V): training logits
            torch.testing.assert_close(logits[:, s], crop[:, s - a * N], atol=1e-4, rtol=1e-4, msg=f"step {s}")


def test_nexttoken_window_never_exceeds_training_length():
    """Deeper model, long rollout: the cache never holds more than the training context, and the
    start token is still its first entry (same values as when it was cached)."""
    model = nexttoken(2, depth=2)
    caches = []
    new_cache = model.transformer.new_cache
    model.transformer.new_cache = lambda *a, **kw: caches.extend(new_cache(*a, **kw)) or caches
    out = model.sample_tokens(num=1, frames=9, seed=0, class_label=1)
    assert out.shape == (1, N, 9)
    first_v = caches[0]._sink[1]
    for c in caches:
        assert c.length <= model.context_steps - 1 and c.position == 9 * N
    torch.testing.assert_close(caches[0].v[:, :, :1], first_v)


def test_cam_prompt_longer_than_the_context_keeps_the_start_token():
    """A prompt longer than the context is prefilled as [start, its last context − 1 frames]: the
    first sampled frame's state equals the training forward over that crop (one layer: exact)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_cam_model import D, make

    model = make(depth=1)
    seen = []
    sample = model.head.sample
    model.head.sample = lambda z, g, **kw: (seen.append(z.clone()), sample(z, g, **kw))[1]
    prompt = torch.randn(D, 12) * model.latent_scale  # 12 frames > context 8
    model.sample_latents(1, num=1, seed=0, k_inf=0.0, prompt_latents=prompt)
    x = (prompt / model.latent_scale).t()[None]
    with torch.no_grad():
        ref = model.states(torch.cat([x[:, -7:], torch.zeros(1, 1, D)], dim=1))[:, -1]
    torch.testing.assert_close(seen[0], ref, atol=1e-5, rtol=1e-5)
