"""MSRQ (SAT) against a slow, obvious reference; EMA codebook behaviour; the AAR helper methods."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from arwave.codec.msrq import EMACodebook, MultiScaleResidualVQ, msrq_scales

# ---------------------------------------------------------------------------------------------------
# slow reference: explicit loops, written from SPEC.md §2 without the module's helpers


def ref_area_down(x, s):
    T = x.shape[-1]
    cols = [x[..., math.floor(i * T / s) : math.ceil((i + 1) * T / s)].mean(-1) for i in range(s)]
    return torch.stack(cols, -1)


def ref_linear_up(x, T):
    s = x.shape[-1]
    out = []
    for j in range(T):
        src = max((j + 0.5) * s / T - 0.5, 0.0)  # align_corners=False
        lo = min(int(math.floor(src)), s - 1)
        hi = min(lo + 1, s - 1)
        w = src - lo
        out.append((1 - w) * x[..., lo] + w * x[..., hi])
    return torch.stack(out, -1)


def ref_phi(conv, h):
    return 0.5 * h + 0.5 * F.conv1d(h, conv.weight, conv.bias, padding=conv.weight.shape[-1] // 2)


def ref_encode(q, z, phi_map):
    """Returns (codes, ẑ) with per-position brute-force nearest codes."""
    T = z.shape[-1]
    r, z_hat, codes = z.clone(), torch.zeros_like(z), []
    for k, s in enumerate(q.scales):
        u = ref_area_down(r, s) if s != T else r
        E = q.codebook(k)
        idx = torch.empty(z.shape[0], s, dtype=torch.long)
        for b in range(z.shape[0]):
            for t in range(s):
                idx[b, t] = ((u[b, :, t][None, :] - E) ** 2).sum(1).argmin()
        e = E[idx].permute(0, 2, 1)  # (B, D, s)
        h = ref_linear_up(e, T) if s != T else e
        h = ref_phi(q.phis[phi_map[k]].conv, h)
        r, z_hat = r - h, z_hat + h
        codes.append(idx)
    return codes, z_hat


SAT_MAP = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 5, 5]


def make_q(dim=4, T=75, K=16, V=32, seed=0, **kw):
    torch.manual_seed(seed)
    return MultiScaleResidualVQ(dim, msrq_scales(T, K), codebook_size=V, **kw)


def test_scales_schedule():
    assert msrq_scales(75, 16) == [1, 2, 4, 6, 9, 12, 16, 20, 25, 31, 37, 43, 50, 58, 66, 75]
    assert sum(msrq_scales(75, 16)) == 455
    assert msrq_scales(25, 6)[-1] == 25 and msrq_scales(7, 1) == [7]


def test_phi_index_maps():
    q = make_q(K=16)
    assert [q.phi_index(k) for k in range(16)] == SAT_MAP
    q10 = MultiScaleResidualVQ(4, msrq_scales(75, 10), codebook_size=8, num_phi=4)
    assert [q10.phi_index(k) for k in range(10)] == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    assert q.phi(5) is q.phis[1] and q.phi(15) is q.phis[5]


def test_encode_matches_reference_loop():
    q = make_q().eval()
    z = torch.randn(2, 4, 75)
    codes = q.encode(z)
    ref_codes, ref_zhat = ref_encode(q, z, SAT_MAP)
    assert [c.shape for c in codes] == [(2, s) for s in q.scales]
    for c, rc in zip(codes, ref_codes):
        assert c.dtype == torch.long and torch.equal(c, rc)
    torch.testing.assert_close(q.decode(codes), ref_zhat, atol=1e-5, rtol=1e-5)


def test_forward_equals_encode_decode_in_eval():
    q = make_q().eval()
    z = torch.randn(3, 4, 75)
    z_hat, codes, loss, stats = q(z)
    for c, c2 in zip(codes, q.encode(z)):
        assert torch.equal(c, c2)
    torch.testing.assert_close(z_hat, q.decode(codes), atol=1e-6, rtol=1e-6)
    assert torch.isfinite(loss) and 1.0 <= stats["ppl_mean"] <= q.codebook_size


def test_training_forward_uses_pre_update_codebooks_and_updates_them():
    """A training pass assigns codes with the codebooks as they were before it, then takes one EMA step
    per scale (decay 0.99, Laplace eps 1e-5) on that scale's down-sampled residual; eval never updates."""
    q = make_q(V=16, dead_threshold=0.0).train()  # threshold 0: no dead-code reset here
    q(torch.randn(4, 4, 75))  # k-means init + a first EMA step
    before = copy.deepcopy(q).eval()
    z = torch.randn(4, 4, 75)
    z_hat, codes, _, _ = q(z)
    for c, expected in zip(codes, before.encode(z)):  # assigned by the pre-update codebooks
        assert torch.equal(c, expected)
    torch.testing.assert_close(z_hat, before.decode(codes), atol=1e-5, rtol=1e-5)
    # scale 0 (s_1 = 1): its residual is z itself, so its EMA step can be written out by hand
    old = before.codebooks[0]
    u = ref_area_down(z, q.scales[0]).transpose(1, 2).reshape(-1, 4)
    counts = torch.bincount(codes[0].flatten(), minlength=16).float()
    sums = torch.zeros(16, 4).index_add_(0, codes[0].flatten(), u)
    size = 0.99 * old.cluster_size + 0.01 * counts
    avg = 0.99 * old.embed_avg + 0.01 * sums
    smoothed = (size + 1e-5) / (size.sum() + 16 * 1e-5) * size.sum()
    torch.testing.assert_close(q.codebooks[0].cluster_size, size)
    torch.testing.assert_close(q.codebook(0), avg / smoothed[:, None])
    for k in range(q.num_scales):  # every scale took its step
        assert not torch.equal(q.codebook(k), before.codebook(k)), k
    q.eval()
    after = [q.codebook(k).clone() for k in range(q.num_scales)]
    q(z)
    for k in range(q.num_scales):
        assert torch.equal(q.codebook(k), after[k])  # eval never updates


def test_gradients_reach_encoder_through_straight_through():
    q = make_q(V=16).train()
    w = torch.nn.Parameter(torch.randn(4, 4))
    x = torch.randn(2, 4, 75)
    z = torch.einsum("ij,bjt->bit", w, x)
    z.retain_grad()
    z_hat, codes, loss, _ = q(z)
    g = torch.randn_like(z_hat)
    (z_hat * g).sum().backward(retain_graph=True)
    torch.testing.assert_close(z.grad, g)  # identity Jacobian of the STE
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert all(p.grad is None for p in q.phis.parameters())  # decoder grads do not reach phi
    loss.backward()
    used = {q.phi_index(k) for k in range(q.num_scales)}
    assert all(q.phis[i].conv.weight.grad.abs().sum() > 0 for i in used)  # phi learns from MSE(h, sg r)


def test_per_scale_straight_through_gives_the_same_values_and_k_times_the_gradient():
    """SAT's code applies the STE per scale: ẑ_ste = Σ_k (r_k + sg(h_k − r_k)); the values are ẑ, and since
    every r_k = z − sg(·), the encoder's gradient is K times the decoder's (VAR's single STE: once)."""
    torch.manual_seed(0)
    single = make_q(V=16).train()
    per_scale = copy.deepcopy(single)
    per_scale.per_scale_ste = True
    z = torch.randn(2, 4, 75)
    g = torch.randn_like(z)
    grads, values = [], []
    for q in (single, per_scale):
        zz = z.clone().requires_grad_(True)
        torch.manual_seed(1)  # the same k-means initialisation for both
        z_hat, *_ = q(zz)
        (z_hat * g).sum().backward()
        grads.append(zz.grad)
        values.append(z_hat.detach())
    torch.testing.assert_close(values[1], values[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads[0], g)
    torch.testing.assert_close(grads[1], single.num_scales * g)


def test_cumulative_var_inputs_and_sampling_helpers_agree():
    q = make_q().eval()
    z = torch.randn(2, 4, 75)
    codes = q.encode(z)
    cum = q.cumulative(codes)
    torch.testing.assert_close(cum[-1], q.decode(codes))
    flat = q.flatten(codes)
    assert flat.shape == (2, 455) and all(torch.equal(a, b) for a, b in zip(q.unflatten(flat), codes))
    inputs = q.var_inputs(codes)
    assert [x.shape for x in inputs] == [(2, 4, s) for s in q.scales[1:]]
    z_hat = None
    for k in range(q.num_scales - 1):
        z_hat = q.add_scale(z_hat, k, codes[k])
        torch.testing.assert_close(z_hat, cum[k])
        torch.testing.assert_close(q.next_input(z_hat, k), inputs[k])
        torch.testing.assert_close(inputs[k], ref_area_down(cum[k], q.scales[k + 1]), atol=1e-6, rtol=1e-5)


def test_shared_codebook_option():
    q = make_q(shared_codebook=True)
    assert len(q.codebooks) == 1 and q.codebook(0) is q.codebook(15)
    assert q.codebook(3).shape == (32, 4)


# ---------------------------------------------------------------------------------------------------
# EMA codebook


def _book(V=4, D=2, decay=0.9, threshold=1.0):
    book = EMACodebook(D, V, decay=decay, dead_threshold=threshold)
    book.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0], [10.0, -10.0]]))
    book.cluster_size.fill_(5.0)
    book.embed_avg.copy_(book.embed * 5.0)
    book.initted.fill_(True)
    return book


def test_ema_update_moves_codes_toward_assigned_vectors():
    book = _book()
    x = torch.tensor([[1.0, 1.0], [1.5, 0.5], [9.0, 9.0]])
    idx = book.assign(x)
    assert idx.tolist() == [0, 0, 1]
    old = book.embed.clone()
    book.ema_update(x, idx)
    for j, target in [(0, x[:2].mean(0)), (1, x[2])]:
        assert (book.embed[j] - target).norm() < (old[j] - target).norm()
    torch.testing.assert_close(book.embed[2:], old[2:], atol=1e-4, rtol=1e-4)  # unused codes stay
    # the exact EMA formula with Laplace smoothing
    cs = 0.9 * 5 + 0.1 * torch.tensor([2.0, 1.0, 0.0, 0.0])
    avg0 = 0.9 * 5 * old[0] + 0.1 * x[:2].sum(0)
    n = cs.sum()
    smoothed = (cs[0] + 1e-5) / (n + 4 * 1e-5) * n
    torch.testing.assert_close(book.embed[0], avg0 / smoothed)


def test_dead_codes_are_reset_to_batch_vectors():
    book = _book()
    book.cluster_size[3] = 0.0
    x = torch.randn(6, 2) + 100.0
    idx = book.assign(x)
    resets = book.ema_update(x, idx)
    assert resets >= 1
    assert any(torch.equal(book.embed[3], row) for row in x)
    assert book.assign(x[:1]).item() in range(4)


def test_kmeans_init_with_fewer_vectors_than_codes():
    torch.manual_seed(0)
    book = EMACodebook(3, 16, kmeans_iters=5)
    x = torch.randn(3, 3)
    book.kmeans_init(x)
    assert bool(book.initted)
    for code in book.embed:
        assert min((code - row).norm() for row in x) < 1e-6  # every centre is one of the vectors
    before = book.embed.clone()
    book.kmeans_init(torch.randn(50, 3))  # only the first batch initialises
    assert torch.equal(book.embed, before)


def test_kmeans_init_clusters_separated_data():
    torch.manual_seed(1)
    centres = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]])
    x = (centres[:, None, :] + 0.1 * torch.randn(4, 50, 2)).reshape(-1, 2)
    book = EMACodebook(2, 4, kmeans_iters=20)
    book.kmeans_init(x)
    for c in centres:
        assert (book.embed - c).norm(dim=1).min() < 0.5
    assert book.cluster_size.sum() == pytest.approx(200.0)
