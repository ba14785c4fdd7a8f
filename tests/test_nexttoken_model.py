"""Next-token baseline: token layouts, cached sampling vs teacher forcing (flat and delay), CFG, seeds,
prompts, and generation longer than the training context (sliding KV window) through a real codec."""

import pytest
import torch

from arwave.codec.bottlenecks import ResidualVQ
from arwave.models.generator import make_generator
from arwave.models.nexttoken.model import (
    NextToken,
    NextTokenConfig,
    delay_codes,
    flatten_codes,
    undelay_codes,
    unflatten_codes,
)

N, V = 3, 16


def make_model(pattern="flat", context=6, randomize=True):
    torch.manual_seed(0)
    q = ResidualVQ(8, levels=N, codebook_size=V).eval()
    model = NextToken(
        NextTokenConfig(width=32, depth=2, heads=4, num_classes=3, context_frames=context, pattern=pattern), quantizer=q
    ).eval()
    if randomize:
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.3)
    return model


def test_layouts_by_definition():
    codes = torch.arange(2 * N * 4).view(2, N, 4)
    flat = flatten_codes(codes)
    for t in range(4):
        for level in range(N):
            assert flat[1, t * N + level, 0] == codes[1, level, t]  # frame-major
    assert torch.equal(unflatten_codes(flat, N), codes)
    pad = -1
    delayed = delay_codes(codes, pad)
    assert delayed.shape == (2, 4 + N - 1, N)
    for s in range(4 + N - 1):
        for level in range(N):
            t = s - level
            assert delayed[0, s, level] == (codes[0, level, t] if 0 <= t < 4 else pad)
    assert torch.equal(undelay_codes(delayed), codes)


@pytest.mark.parametrize("pattern", ["flat", "delay"])
def test_cached_sampling_with_forced_tokens_equals_teacher_forcing(pattern):
    model = make_model(pattern)
    codes = torch.randint(0, V, (2, N, 5), generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        teacher, teacher_null = model(codes, labels), model(codes)
    valid = model.valid(5)
    cond, null = model.condition(2, labels), model.condition.null(2)
    out, logits = model.sample_steps(5, cond, None, make_generator(0), given=codes, return_logits=True)
    assert torch.equal(out, codes)
    torch.testing.assert_close(logits[:, valid], teacher[:, valid], atol=1e-4, rtol=1e-4)
    _, mixed = model.sample_steps(5, cond, null, make_generator(0), cfg=1.5, given=codes, return_logits=True)
    torch.testing.assert_close(mixed[:, valid], (2.5 * teacher - 1.5 * teacher_null)[:, valid], atol=1e-4, rtol=1e-4)
    # sensitive: a shifted (wrong) teacher-forcing input gives different logits
    shifted = model(codes.roll(1, dims=-1), labels)
    assert (shifted[:, valid] - teacher[:, valid]).abs().max() > 1e-2


def test_delay_pattern_never_samples_pad_and_round_trips():
    model = make_model("delay")
    codes = model.sample_tokens(num=2, frames=7, seed=0, class_label=1)
    assert codes.shape == (2, N, 7) and codes.max() < V and codes.min() >= 0


def test_cfg_zero_equals_conditional_and_seeds():
    model = make_model()
    cond, null = model.condition(2, torch.tensor([0, 1])), model.condition.null(2)
    plain = model.sample_steps(4, cond, None, make_generator(3), top_k=8)
    doubled = model.sample_steps(4, cond, null, make_generator(3), cfg=0.0, top_k=8)
    guided = model.sample_steps(4, cond, null, make_generator(3), cfg=4.0, top_k=8)
    assert torch.equal(plain, doubled) and not torch.equal(plain, guided)
    a = model.sample_tokens(num=2, frames=4, seed=9, class_label=2)
    assert torch.equal(a, model.sample_tokens(num=2, frames=4, seed=9, class_label=2))
    assert not torch.equal(a, model.sample_tokens(num=2, frames=4, seed=10, class_label=2))


def test_prompt_codes_are_kept_and_generation_slides_past_the_context():
    model = make_model(context=4)
    prompt = torch.randint(0, V, (2, N, 3))
    out = model.sample_tokens(num=2, frames=9, seed=0, prompt_codes=prompt)  # 12 frames > context 4
    assert out.shape == (2, N, 12) and torch.equal(out[..., :3], prompt)


def test_generation_past_the_context_forgets_tokens_older_than_the_window():
    """Generation longer than the training context attends to a bounded window: two token streams
    that differ only in their first frame give different logits right after it and identical logits
    once that frame lies far outside the window (each layer reaches back at most one context, so
    depth + 1 contexts later nothing of it can be left), whatever the window's exact sliding rule."""
    model = make_model(context=4)  # 4 frames = 12 steps of N = 3 levels
    frames = 5 * 4
    a = torch.randint(0, V, (2, N, frames), generator=torch.Generator().manual_seed(2))
    b = a.clone()
    b[..., 0] = (a[..., 0] + 1) % V  # only frame 0 differs
    cond = model.condition(2, torch.tensor([0, 1]))
    _, la = model.sample_steps(frames, cond, None, make_generator(0), given=a, return_logits=True)
    _, lb = model.sample_steps(frames, cond, None, make_generator(0), given=b, return_logits=True)
    W = model.context_steps
    assert (la[:, N:W] - lb[:, N:W]).abs().max() > 1e-2  # inside the window frame 0 matters
    far = (model.cfg.depth + 1) * W
    assert la.shape[1] - far >= W
    torch.testing.assert_close(la[:, far:], lb[:, far:], atol=1e-5, rtol=1e-5)


def test_top_p_reaches_the_sampler():
    """top_p → 0 keeps only the most likely token: sampling equals greedy decoding."""
    model = make_model()
    tiny_p = model.sample_tokens(num=2, frames=4, seed=1, class_label=0, cfg=0.0, top_p=1e-6)
    greedy = model.sample_tokens(num=2, frames=4, seed=2, class_label=0, cfg=0.0, temperature=0.0)
    assert torch.equal(tiny_p, greedy)
    assert not torch.equal(model.sample_tokens(num=2, frames=4, seed=1, class_label=0, cfg=0.0, top_p=1.0), greedy)


@pytest.fixture(scope="module")
def rvq_codec():
    from arwave.registry import get_kind, preset

    torch.manual_seed(0)
    return get_kind("codec").build_model(preset("codec", "tiny-rvq"), None).eval()


def test_generate_lengths_through_the_codec(rvq_codec):
    model = NextToken(
        NextTokenConfig(width=32, depth=2, heads=2, context_frames=5, num_classes=2, label_names=["a", "b"]),
        codec=rvq_codec,
    ).eval()
    assert not any(k.startswith("codec") for k in model.state_dict())
    sr, hop = rvq_codec.sample_rate, rvq_codec.hop
    seconds = 12.5 * hop / sr  # 12.5 frames: longer than the 5-frame context
    audio = model.generate(seconds=seconds, num=2, seed=0, class_label="a", cfg=1.0, top_k=5)
    assert audio.shape == (2, rvq_codec.channels, round(seconds * sr))
    prompt = torch.randn(rvq_codec.channels, 7 * hop + 13)
    cont = model.generate(seconds=3 * hop / sr, num=2, seed=0, prompt=prompt)
    assert cont.shape == (2, rvq_codec.channels, 3 * hop) and torch.isfinite(cont).all()
