"""The fast inference paths give the plain paths' outputs (never timings: those are `arwave bench cam`).

- transformer: the buffered KVCache vs a reference cache that concatenates (prefills, windows slid far
  past several compactions, multi-token appends into a full window, repeat); the cached rotary
  table vs `rotary`; the transposed weight layout for decoding.
- codec: folded weight norm vs the parametrization (and invalidated by optimiser steps and
  load_state_dict, state_dict keys unchanged); the explicit LSTM cell vs nn.LSTM; the matmul
  overlap-add vs conv_transpose1d; a prepared streaming decoder vs the offline decoder.
- CAM: stream with and without the decoding thread vs generate; training still works after sampling
  under inference_mode (no inference tensors left in parameters or shared tables).
"""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.codec.seanet import SConv1d, SConvTranspose1d, _overlap_add, lstm_steps
from arwave.models.transformer import KVCache, Transformer, TransformerConfig, rotary, rotary_table


class CatKVCache:
    """The plain cache: torch.cat per step, slicing to trim (the reference for KVCache)."""

    def __init__(self, max_len=None):
        self.k = self.v = None
        self.position, self.max_len = 0, max_len

    @property
    def length(self):
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        self.position += k.shape[2]
        return self.k, self.v

    def trim(self):
        if self.max_len is not None and self.length > self.max_len:
            self.k, self.v = self.k[:, :, -self.max_len :], self.v[:, :, -self.max_len :]

    def repeat(self, n):
        if self.k is not None:
            self.k, self.v = self.k.repeat(n, 1, 1, 1), self.v.repeat(n, 1, 1, 1)


# ---------------------------------------------------------------------------------------------------
# transformer


@pytest.mark.parametrize(
    "max_len, sizes",
    [
        (None, [3] + [1] * 70 + [5, 2]),  # grows past the first buffer (64 entries)
        (5, [3] + [1] * 60),  # one token per step, many compactions
        (4, [6, 1, 3, 1, 1, 2] + [1] * 30 + [4]),  # prefill longer than the window, blocks into a full window
    ],
)
def test_kv_cache_equals_concatenating_cache(max_len, sizes):
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(width=16, depth=2, heads=2)).eval()
    x = torch.randn(2, sum(sizes), 16)
    fast = model.new_cache(max_len)
    plain = [CatKVCache(max_len) for _ in model.blocks]
    start = 0
    with torch.no_grad():
        for i, s in enumerate(sizes):
            if i == len(sizes) // 2:  # classifier-free guidance doubles the batch mid-way
                for c in fast + plain:
                    c.repeat(2)
                x = torch.cat([x, x])
            chunk = x[:, start : start + s]
            torch.testing.assert_close(
                model(chunk, mask="causal", caches=fast),
                model(chunk, mask="causal", caches=plain),
                atol=1e-6,
                rtol=1e-6,
            )
            start += s
            assert [c.length for c in fast] == [c.length for c in plain]
            assert fast[0].position == plain[0].position == start
            torch.testing.assert_close(fast[0].k, plain[0].k, atol=0, rtol=0)


def test_kv_cache_interface_unchanged():
    cache = KVCache(max_len=3)
    assert cache.length == 0 and cache.position == 0 and cache.max_len == 3 and cache.k is None
    k = torch.randn(1, 2, 5, 4)
    keys, values = cache.append(k, k + 1)
    assert keys.shape == (1, 2, 5, 4) and cache.length == 5 and cache.position == 5
    cache.trim()
    assert cache.length == 3 and torch.equal(cache.k, k[:, :, -3:]) and torch.equal(cache.v, k[:, :, -3:] + 1)


@pytest.mark.parametrize("dim, dtype", [(8, torch.float32), (7, torch.float32), (16, torch.bfloat16)])
def test_rotary_table_equals_rotary(dim, dtype):
    x = torch.randn(2, 3, 5, dim).to(dtype)
    table = rotary_table(dim)
    for start in (0, 3, 300, 1000):  # 1000: past the first table, which is extended
        ref = rotary(x, torch.arange(start, start + 5))
        assert torch.equal(table.apply(x, start), ref)


def test_weight_layout_keeps_values_and_outputs():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(width=16, depth=2, heads=2)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    x = torch.randn(1, 6, 16)
    ref = model(x, mask="causal")
    with torch.inference_mode():
        model.set_weight_layout(rows=1)
    qkv = model.blocks[0].attn.qkv.weight
    assert qkv.stride() == (1, qkv.shape[0])  # widening layers transposed in memory
    assert model.blocks[0].mlp.fc2.weight.is_contiguous()  # narrowing ones not
    assert list(model.parameters()) == params  # the same Parameter objects
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    torch.testing.assert_close(model(x, mask="causal"), ref, atol=1e-5, rtol=1e-5)
    model.train()
    model(x, mask="causal").square().mean().backward()  # plain tensors: training works
    assert qkv.grad is not None and qkv.grad.shape == qkv.shape
    model.set_weight_layout(rows=16)
    assert all(p.is_contiguous() for p in model.parameters())


# ---------------------------------------------------------------------------------------------------
# codec


def test_folded_weight_norm_equals_parametrization_and_follows_updates():
    torch.manual_seed(0)
    conv = SConv1d(4, 6, 3, dilation=2, causal=True)
    convt = SConvTranspose1d(6, 3, 8, 4, causal=True)
    keys = set(conv.state_dict()) | {f"t.{k}" for k in convt.state_dict()}
    x = torch.randn(2, 4, 9)

    def plain(x):  # through the parametrized modules, autograd on
        return convt.conv(conv.conv(F.pad(x, (4, 0))))[..., :-4]

    with torch.no_grad():
        fast = convt(conv(x))
    torch.testing.assert_close(fast, plain(x).detach(), atol=0, rtol=0)
    assert conv.inference_weight.weight is not None  # folded once, reused
    opt = torch.optim.SGD(list(conv.parameters()) + list(convt.parameters()), lr=0.5)
    plain(x).square().mean().backward()  # training goes through the parametrization
    assert conv.conv.parametrizations.weight.original1.grad is not None
    opt.step()
    with torch.no_grad():
        torch.testing.assert_close(convt(conv(x)), plain(x), atol=0, rtol=0)  # the cache followed the step
    other = SConv1d(4, 6, 3, dilation=2, causal=True)
    with torch.no_grad():
        other(x)  # fold its random init, then load
    other.load_state_dict(conv.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(other(x), conv(x), atol=0, rtol=0)
    assert set(conv.state_dict()) | {f"t.{k}" for k in convt.state_dict()} == keys
    assert any("parametrizations.weight.original0" in k for k in keys)
    assert copy.deepcopy(conv).inference_weight.weight is None  # copies start empty


@pytest.mark.parametrize("n, with_state", [(1, False), (1, True), (3, True)])
def test_explicit_lstm_equals_nn_lstm(n, with_state):
    torch.manual_seed(0)
    lstm = nn.LSTM(12, 12, 2, batch_first=True)
    x = torch.randn(3, n, 12)
    state = (torch.randn(2, 3, 12), torch.randn(2, 3, 12)) if with_state else None
    with torch.no_grad():
        y, (h, c) = lstm(x, state)
        y2, (h2, c2) = lstm_steps(lstm, x, state)
    for a, b in ((y, y2), (h, h2), (c, c2)):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kernel, stride, n", [(8, 4, 1), (8, 4, 3), (12, 4, 2), (5, 5, 2)])
def test_overlap_add_equals_conv_transpose(kernel, stride, n):
    torch.manual_seed(0)
    x, w = torch.randn(2, 6, n), torch.randn(6, 3, kernel)
    torch.testing.assert_close(
        _overlap_add(x, w, stride), F.conv_transpose1d(x, w, stride=stride), atol=1e-5, rtol=1e-5
    )


def test_prepared_streaming_decoder_equals_offline():
    from arwave.registry import get_kind, preset

    torch.manual_seed(0)
    codec = get_kind("codec").build_model(preset("codec", "tiny-continuous"), None).eval()
    z = torch.randn(1, codec.latent_dim, 6)
    offline = codec.decode_latents(z, chunk_frames=0)
    stream = codec.streaming_decoder().prepare()
    with torch.inference_mode():
        pieces = [stream.step(z[..., i : i + 1]) for i in range(6)]
    torch.testing.assert_close(torch.cat(pieces, -1), offline, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------------------
# CAM


def _tiny_cam():
    from arwave.models.cam.model import CAM, CAMConfig
    from arwave.registry import get_kind, preset

    torch.manual_seed(0)
    codec = get_kind("codec").build_model(preset("codec", "tiny-continuous"), None).eval()
    cfg = CAMConfig(
        latent_dim=codec.latent_dim,
        hop=codec.hop,
        width=32,
        depth=2,
        heads=2,
        context=6,
        head_width=32,
        head_depth=1,
        head_batch_mul=2,
        head_steps=3,
    )
    model = CAM(cfg, codec, sample_rate=codec.sample_rate, channels=codec.channels)
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised layers would hide differences
            if p.abs().max() == 0:
                p.normal_(0, 0.2)
    return model.eval(), codec


def test_stream_with_and_without_decoding_thread_equals_generate():
    model, codec = _tiny_cam()
    seconds = 12 * codec.hop / codec.sample_rate  # past the window (context 6)
    offline = model.generate(seconds, seed=3)[0]
    threaded = torch.cat(list(model.stream(seconds, seed=3)), -1)
    inline = torch.cat(list(model.stream(seconds, seed=3, pipeline=False)), -1)
    torch.testing.assert_close(threaded, offline, atol=1e-5, rtol=1e-4)
    assert torch.equal(threaded, inline)  # the same blocks with or without the decoding thread


def test_training_after_sampling():
    """Sampling runs under inference_mode; what it caches (folded weights, rotary tables, weight
    layout) must not turn parameters or shared tables into inference tensors."""
    model, codec = _tiny_cam()
    model.sample_latents(8, num=1, seed=0)  # batch 1: transposed layout
    model.generate(0.02, num=1, seed=0)
    model.train()
    loss = model(torch.randn(2, 6, codec.latent_dim))
    loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
    codec.train().requires_grad_(True)
    out = codec(torch.randn(1, codec.channels, 4 * codec.hop))
    (out.audio.square().mean() + out.loss).backward()
    assert codec.decoder.layers[0].conv.parametrizations.weight.original1.grad is not None
