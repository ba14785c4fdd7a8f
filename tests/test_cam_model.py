"""CAM model: causality through the whole model (noise levels included), KV-cache steps equal the full
forward, sliding-window generation past the context, seeded reproducibility, class conditioning and
guidance, prompts, streaming equal to offline generation, option errors."""

import pytest
import torch
import torch.nn as nn

from arwave.errors import ArwaveError
from arwave.models.cam.model import CAM, CAMConfig

D = 6


def tiny_config(**kw) -> CAMConfig:
    base = dict(
        latent_dim=D,
        hop=32,
        width=32,
        depth=2,
        heads=2,
        context=8,
        head_width=32,
        head_depth=1,
        head_batch_mul=2,
        head_steps=3,
    )
    base.update(kw)
    return CAMConfig(**base)


def randomize_zero_init(model: nn.Module) -> nn.Module:
    """Zero-initialised layers (level embedding, adaLN, head output) would hide dependencies: perturb them."""
    torch.manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().max() == 0:
                p.normal_(0, 0.2)
    return model


class FrameCodec(nn.Module):
    """A stand-in codec whose frames decode independently (hop samples per latent frame), with or
    without `streaming_decoder`; enough to test CAM's audio plumbing without training a codec."""

    def __init__(self, dim=D, hop=32, channels=1, sample_rate=1600, causal=True):
        super().__init__()
        self.sample_rate, self.channels, self.hop, self.latent_dim = sample_rate, channels, hop, dim
        self.causal = causal
        self.enc = nn.Linear(channels * hop, dim)
        self.dec = nn.Linear(dim, channels * hop)

    def encode(self, audio):
        B, C, N = audio.shape
        T = N // self.hop
        frames = audio[..., : T * self.hop].reshape(B, C, T, self.hop).permute(0, 2, 1, 3).reshape(B, T, C * self.hop)
        return self.enc(frames).transpose(1, 2)

    def decode(self, z):
        B, _, T = z.shape
        out = self.dec(z.transpose(1, 2)).reshape(B, T, self.channels, self.hop)
        return out.permute(0, 2, 1, 3).reshape(B, self.channels, T * self.hop)


def make(codec=None, **kw) -> CAM:
    torch.manual_seed(0)
    cfg = tiny_config(**kw)
    return randomize_zero_init(CAM(cfg, codec, sample_rate=1600, channels=1, hop=32)).eval()


# ---------------------------------------------------------------------------------------------------
# the backbone


def test_causality_through_inputs_and_noise_levels():
    model = make()
    x, k = torch.randn(2, 8, D), torch.rand(2, 8) * 0.5
    z = model.states(x, k)
    assert z.shape == (2, 8, 32)
    for j in range(8):
        x2, k2 = x.clone(), k.clone()
        x2[:, j] += torch.randn(2, D)
        z2 = model.states(x2, k)
        k2[:, j] = 0.9
        z3 = model.states(x, k2)
        # z[:, t] predicts frame t from frames < t: frame j (and its level) only reach z[:, j+1:]
        torch.testing.assert_close(z2[:, : j + 1], z[:, : j + 1])
        torch.testing.assert_close(z3[:, : j + 1], z[:, : j + 1])
        if j < 7:
            assert not torch.allclose(z2[:, j + 1], z[:, j + 1])
            assert not torch.allclose(z3[:, j + 1], z[:, j + 1])  # the model is told the level


def test_loss_is_causal_in_targets_only_through_head():
    """Training loss: changing the last frame changes the loss (it is a target) but no backbone state."""
    model = make(noise_aug=False)
    x = torch.randn(2, 8, D)
    y = x.clone()
    y[:, -1] += 1
    torch.testing.assert_close(model.states(x), model.states(y))
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(0)
    b = model(y)
    assert a.dim() == 0 and not torch.allclose(a, b)


def test_training_loss_corrupts_the_context_and_tells_the_backbone_its_level():
    """The loss by hand, from the same random draws (SPEC §3): k ~ U(0, k_max) per frame, x̃ = (1 − k)·x + k·ε,
    backbone states over x̃ told k, head loss against the CLEAN frames. Without noise augmentation the
    context is the clean x at level 0."""
    model = make(k_max=0.4)
    x = torch.randn(2, 8, D)
    torch.manual_seed(5)
    loss = model(x)
    torch.manual_seed(5)
    k = torch.rand(2, 8) * 0.4
    eps = torch.randn(2, 8, D)
    x_noisy = (1 - k[..., None]) * x + k[..., None] * eps
    with torch.no_grad():
        z = model.states(x_noisy, k)
    ref = model.head.loss(z.reshape(-1, z.shape[-1]), x.reshape(-1, D))
    torch.testing.assert_close(loss, ref)
    # the same draws without noise augmentation give another loss: the corruption is really applied
    clean = make(k_max=0.4, noise_aug=False)
    torch.manual_seed(5)
    plain = clean(x)
    torch.manual_seed(5)
    with torch.no_grad():
        ref_clean = clean.head.loss(clean.states(x, torch.zeros(2, 8)).reshape(-1, 32), x.reshape(-1, D))
    torch.testing.assert_close(plain, ref_clean)
    assert not torch.allclose(loss, plain)


def test_generation_renoises_each_frame_at_k_inf_and_tells_the_backbone():
    """Generation against a slow loop without KV cache (SPEC §3, inference): each generated frame x̂ enters
    the context as (1 − k_inf)·x̂ + k_inf·ε, ε drawn from the same seeded generator right after x̂, and
    the backbone is told k_inf for every generated frame."""
    from arwave.models.generator import make_generator

    model = make()
    k_inf, frames = 0.3, 5  # fewer frames than the context (8)
    out = model.sample_latents(frames, num=2, seed=3, k_inf=k_inf)
    g = make_generator(3)
    context, ref = [], []
    with torch.no_grad():
        for t in range(frames):
            seq = torch.stack(context + [torch.zeros(2, D)], 1)  # the last frame is the (unused) target
            z = model.states(seq, torch.full((2, t + 1), k_inf))[:, -1]
            x = model.head.sample(z, g)
            ref.append(x)
            context.append((1 - k_inf) * x + k_inf * torch.randn(x.shape, generator=g))
    torch.testing.assert_close(out, torch.stack(ref, -1), atol=1e-5, rtol=1e-5)


def test_cached_steps_equal_full_forward():
    model = make(num_classes=3)
    x, k = torch.randn(2, 8, D), torch.rand(2, 8) * 0.3
    labels = torch.tensor([1, -1])
    full = model.states(x, k, labels)
    cls = model._class_vectors(labels, 2, "cpu")
    caches = model.backbone.new_cache()
    # prefill start + 3 frames, then frame by frame
    tokens = torch.cat([model._start_tokens(2), model.embed_frames(x[:, :3], k[:, :3])], 1) + cls
    steps = [model.norm(model.backbone(tokens, mask="causal", caches=caches))]
    for t in range(3, 7):
        steps.append(model._step(model.embed_frames(x[:, t : t + 1], k[:, t : t + 1]) + cls, caches)[:, None])
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_generation_uses_the_cache_like_teacher_forcing():
    """The z that generation feeds the head at step t equals states() over the generated (re-noised)
    context: with k_inf = 0 the context is the generated frames themselves."""
    model = make()
    seen = []
    sample = model.head.sample
    model.head.sample = lambda z, g, **kw: (seen.append(z.clone()), sample(z, g, **kw))[1]
    lat = model.sample_latents(6, num=2, seed=0, k_inf=0.0)  # (2, D, 6)
    with torch.no_grad():
        ref = model.states(lat.transpose(1, 2))
    torch.testing.assert_close(torch.stack(seen, 1), ref, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------
# sampling


@pytest.mark.parametrize("head", ["rf", "gmm", "ddpm"])
def test_seeded_generation_is_reproducible(head):
    model = make(head=head)
    a = model.sample_latents(5, num=2, seed=7)
    b = model.sample_latents(5, num=2, seed=7)
    c = model.sample_latents(5, num=2, seed=8)
    assert a.shape == (2, D, 5) and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert not torch.allclose(a[0], a[1])  # the rows of a batch differ


def test_sliding_window_past_context():
    model = make()
    caches = []
    new_cache = model.backbone.new_cache
    model.backbone.new_cache = lambda max_len=None, **kw: caches.extend(new_cache(max_len, **kw)) or caches
    lat = model.sample_latents(3 * 8, num=2, seed=0)
    assert lat.shape == (2, D, 24) and torch.isfinite(lat).all()
    assert all(c.length <= 8 - 1 and c.position == 24 for c in caches)  # bounded window, 24 positions seen
    # one layer: a step past the context equals the TRAINING forward (`states`) over the same window,
    # whose first input is the start token (every training crop starts with it: it stays pinned).
    # (With more layers, cached keys of old frames carry history from before the window, as in any
    # sliding-window KV cache, so only the per-layer span is bounded.)
    model = make(depth=1)
    seen = []
    sample = model.head.sample
    model.head.sample = lambda z, g, **kw: (seen.append(z.clone()), sample(z, g, **kw))[1]
    lat = model.sample_latents(20, num=1, seed=1, k_inf=0.0)
    x = (lat / model.latent_scale).transpose(1, 2)  # (1, 20, D)
    with torch.no_grad():
        for t in (8, 13, 19):  # z_t: inputs start + frames t-7..t-1, as the crop of frames t-7..t in training
            ref = model.states(x[:, t - 7 : t + 1])[:, -1]
            torch.testing.assert_close(seen[t], ref, atol=1e-5, rtol=1e-5)


def test_inference_noise_changes_context_and_is_seeded():
    model = make()
    a = model.sample_latents(6, seed=3, k_inf=0.0)
    b = model.sample_latents(6, seed=3, k_inf=0.3)
    assert torch.equal(a[..., 0], b[..., 0]) and not torch.allclose(a[..., 1:], b[..., 1:])
    assert torch.equal(b, model.sample_latents(6, seed=3, k_inf=0.3))
    assert model.default_k_inf == 0.02 and make(noise_aug=False).default_k_inf == 0.0


def test_class_conditioning_and_guidance():
    model = make(num_classes=3, label_names=["a", "b", "c"])
    a = model.sample_latents(4, seed=0, class_label=0)
    b = model.sample_latents(4, seed=0, class_label="c")
    assert not torch.allclose(a, b)
    assert torch.equal(b, model.sample_latents(4, seed=0, class_label=2))
    g = model.sample_latents(4, num=2, seed=0, class_label=1, cfg=3.0)
    assert g.shape == (2, D, 4) and torch.isfinite(g).all()
    assert not torch.allclose(g[:1], model.sample_latents(4, num=1, seed=0, class_label=1))
    with pytest.raises(ArwaveError, match="unknown class"):
        model.sample_latents(2, class_label="zebra")
    with pytest.raises(ArwaveError, match="needs a class_label"):
        model.sample_latents(2, cfg=1.0)
    with pytest.raises(ArwaveError, match="unconditional"):
        make().sample_latents(2, class_label=0)


def test_the_configs_guidance_is_the_default_of_class_conditioned_sampling():
    """CAMConfig.cfg applies when a class is asked for and no cfg is given; an explicit cfg (0 too) wins;
    unconditional sampling has no guidance to apply."""
    model = make(num_classes=3, label_names=["a", "b", "c"], cfg=2.5)
    default = model.sample_latents(4, seed=1, class_label=1)
    assert torch.equal(default, model.sample_latents(4, seed=1, class_label=1, cfg=2.5))
    assert not torch.allclose(default, model.sample_latents(4, seed=1, class_label=1, cfg=0.0))
    plain = make(num_classes=3, label_names=["a", "b", "c"])  # same seed, same weights, cfg 0
    unguided = model.sample_latents(4, seed=1, class_label=1, cfg=0)
    assert torch.equal(plain.sample_latents(4, seed=1, class_label=1), unguided)
    assert torch.isfinite(model.sample_latents(3, seed=1)).all()  # no class: no guidance, no error


def test_class_dropout_in_training():
    model = make(num_classes=2, class_dropout=1.0).train()
    x, labels = torch.randn(2, 8, D), torch.tensor([0, 1])
    torch.manual_seed(0)
    dropped = model(x, labels)
    torch.manual_seed(0)
    assert torch.allclose(dropped, model(x, torch.tensor([-1, -1])))  # every label replaced by "no class"
    torch.manual_seed(0)
    assert not torch.allclose(dropped, model.eval()(x, labels))  # no dropout outside training


def test_latent_scale_maps_codec_space_to_unit_scale():
    unit, scaled = make(), make(latent_scale=3.0)
    scaled.load_state_dict(unit.state_dict())
    torch.testing.assert_close(scaled.sample_latents(5, seed=1), 3 * unit.sample_latents(5, seed=1))
    prompt = torch.randn(D, 3)
    torch.testing.assert_close(
        scaled.sample_latents(2, seed=1, prompt_latents=3 * prompt),
        3 * unit.sample_latents(2, seed=1, prompt_latents=prompt),
    )
    x = torch.randn(2, 8, D)
    torch.manual_seed(0)
    a = unit(x)
    torch.manual_seed(0)
    torch.testing.assert_close(scaled(3 * x), a)


def test_unknown_option_is_refused():
    with pytest.raises(ArwaveError, match="top_k"):
        make().sample_latents(2, top_k=5)


# ---------------------------------------------------------------------------------------------------
# audio: generate, prompt, stream


def test_generate_length_and_prompt_continuation():
    model = make(codec=FrameCodec())
    audio = model.generate(0.5, num=2, seed=0)  # 800 samples = 25 frames
    assert audio.shape == (2, 1, 800) and torch.isfinite(audio).all()
    prompt = torch.randn(1, 200)  # 6 frames (+8 samples dropped)
    cont = model.generate(0.1, seed=0, prompt=prompt)
    assert cont.shape == (1, 1, 160)
    assert not torch.allclose(cont, model.generate(0.1, seed=0))
    # the continuation = decode of the latents sampled after prefilling the prompt's latents
    lat = model.sample_latents(5, seed=0, prompt_latents=model.codec.encode(prompt[None])[0])
    torch.testing.assert_close(cont, model.codec.decode(lat), atol=1e-5, rtol=1e-5)


def test_stream_equals_generate_with_the_real_causal_codec():
    from arwave.registry import get_kind, preset

    codec = get_kind("codec").build_model(preset("codec", "tiny-continuous"), None).eval()
    torch.manual_seed(0)
    cfg = tiny_config(latent_dim=codec.latent_dim, hop=codec.hop)
    model = randomize_zero_init(CAM(cfg, codec, sample_rate=codec.sample_rate, channels=codec.channels)).eval()
    seconds = 0.1 + 37 / codec.sample_rate  # not a whole number of frames
    chunks = list(model.stream(seconds, seed=4))
    assert chunks[0].shape == (codec.channels, codec.hop)  # first audio: one frame
    assert all(c.shape[0] == codec.channels and c.shape[1] % codec.hop == 0 for c in chunks[:-1])
    streamed = torch.cat(chunks, -1)
    offline = model.generate(seconds, seed=4)[0]
    assert streamed.shape == offline.shape == (codec.channels, round(seconds * codec.sample_rate))
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=1e-4)
    prompt = torch.randn(codec.channels, 4 * codec.hop) * 0.1
    torch.testing.assert_close(
        torch.cat(list(model.stream(0.05, seed=1, prompt=prompt)), -1),
        model.generate(0.05, seed=1, prompt=prompt)[0],
        atol=1e-5,
        rtol=1e-4,
    )


def test_stream_blocks_follow_a_fixed_schedule(monkeypatch):
    """After the first frame, frames are decoded in blocks of a quarter of the frames handed out so far
    (at most stream_block_max): the same blocks and bit-identical samples whatever the speed of the
    decoder or of the consumer (same seed, same audio), and the audio of `generate`."""
    import time

    from arwave.registry import get_kind, preset

    codec = get_kind("codec").build_model(preset("codec", "tiny-continuous"), None).eval()
    torch.manual_seed(0)
    cfg = tiny_config(latent_dim=codec.latent_dim, hop=codec.hop)
    model = randomize_zero_init(CAM(cfg, codec, sample_rate=codec.sample_rate, channels=codec.channels)).eval()
    seconds = 60 * codec.hop / codec.sample_rate
    fast = list(model.stream(seconds, seed=6))
    sizes = [c.shape[-1] // codec.hop for c in fast]
    handed, expected = 1, [1]
    while handed < 60:
        expected.append(min(max(1, min(model.stream_block_max, handed // 4)), 60 - handed))
        handed += expected[-1]
    assert sizes == expected and max(sizes) == model.stream_block_max
    real = model._frame_decoder

    def slow(prompt=None):  # a decoder far slower than generation
        prepare, step, batched = real(prompt)

        def slow_step(z):
            time.sleep(0.01)
            return step(z)

        return prepare, slow_step, batched

    monkeypatch.setattr(model, "_frame_decoder", slow)
    played = []
    for chunk in model.stream(seconds, seed=6):
        played.append(chunk)
        time.sleep(chunk.shape[-1] / codec.sample_rate)  # a consumer playing in real time
    assert [c.shape for c in played] == [c.shape for c in fast]
    assert all(torch.equal(a, b) for a, b in zip(played, fast))
    offline = model.generate(seconds, seed=6)[0]
    torch.testing.assert_close(torch.cat(fast, -1), offline, atol=1e-5, rtol=1e-4)


def test_stream_falls_back_to_window_decoding():
    model = make(codec=FrameCodec(causal=False))
    chunks = list(model.stream(0.2, seed=2))
    assert len(chunks) == 10 and all(c.shape == (1, 32) for c in chunks)
    torch.testing.assert_close(torch.cat(chunks, -1), model.generate(0.2, seed=2)[0], atol=1e-5, rtol=1e-5)


def test_no_codec_means_latents_only():
    model = make()
    assert model.sample_latents(2).shape == (1, D, 2)
    with pytest.raises(ArwaveError, match="no codec"):
        model.generate(0.1)
