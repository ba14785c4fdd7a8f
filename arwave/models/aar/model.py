"""AAR: next-scale prediction over SAT's multi-scale token maps (VAR in 1-D), as an AudioGenerator.

One window of T latent frames is K token maps idx_1..idx_K of sizes s_1 < ... < s_K = T (L = Σ s_k
tokens). The transformer sees (SPEC.md §4, research/aar.md §2):

    x = [sos (s_1 tokens) ; Linear(C → width)(in_2) ; ... ; Linear(C → width)(in_K)] + pos + level
    sos = cond + pos_start,   in_{k+1} = area_down(ẑ_k → s_{k+1}),   ẑ_k = Σ_{j≤k} Phi_j(up(e^(j)[idx_j]))

and position i predicts token i (the sos predicts scale 1, the scale-k input map predicts idx_k).
Training uses the block-causal mask (full attention within a scale, causal across scales) and
cross-entropy over all L tokens; sampling runs one forward pass per scale with a KV cache, which
sees exactly what the mask allows. The blocks are the shared Transformer with VAR's AdaLN
(cond_dim = width) and l2-normalised q/k attention; a last AdaLN sits before the Linear head.

The codec (its encoder, MSRQ and decoder) is attached, not owned: it is neither in `parameters()`
nor in `state_dict()`, stays in eval mode, and moves with `.to(...)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.config import ConfigError, OneOf, Range, above, at_least, between
from arwave.errors import ArwaveError
from arwave.models.aar.base import CodecGenerator, decode_latent, encode_prompt_latent
from arwave.models.aar.condition import COND_KINDS, ConditionEmbedding
from arwave.models.generator import make_generator
from arwave.models.sampling import guidance_ramp, guided_logits, sample
from arwave.models.transformer import Transformer, TransformerConfig


@dataclass
class AARConfig:
    codec_run: str = ""  # msrq codec run folder (required to train; copied into RUN/codec)
    width: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    cond: str = "class"  # class | embedding | none
    cond_drop: float = 0.1  # probability of training with the null condition (for CFG)
    embed_dim: int = 512  # size of the condition embedding (cond = "embedding")
    embedder: str = ""  # arwave.evaluation.embedders name that made the embeddings
    # filled when the task is built, so the model can be rebuilt from the config alone
    num_classes: int = 0
    label_names: list[str] = field(default_factory=list)
    scales: list[int] = field(default_factory=list)  # s_1..s_K of the codec's MSRQ
    latent_dim: int = 0  # C, the MSRQ dimension
    vocab_size: int = 0  # V, codebook size
    # training data: windows start every `window_stride` windows (0.5 = half-window shifted copies)
    window_stride: float = 0.5
    # VAR's initialisation (research/aar.md §2.5)
    init_adaln: float = 0.5  # AdaLN scale/shift rows ×
    init_adaln_gamma: float = 1e-3  # AdaLN gate (γ) rows ×
    init_head: float = 0.02  # head weight ×
    # sampling defaults (override per call)
    cfg: float = 3.0  # guidance at the last scale (t_k = cfg·k/(K−1))
    top_k: int = 0  # 0 = off
    top_p: float = 0.95  # 0 or 1 = off
    temperature: float = 1.0
    overlap: float = 0.5  # long audio: fraction of a window shared with the previous one

    LIMITS: ClassVar[dict] = {
        "width": at_least(1),
        "depth": at_least(1),
        "heads": at_least(1),
        "mlp_ratio": above(0),
        "cond": OneOf(COND_KINDS),
        "cond_drop": between(0, 1, hi_open=True),
        "embed_dim": at_least(1),
        "window_stride": Range(0, 1, lo_open=True),
        "top_p": between(0, 1),
        "overlap": between(0, 1, hi_open=True),
    }

    def with_codec(self, facts) -> AARConfig:
        """This config over an msrq codec (`Codec.facts()`): its scales s_1..s_K, dimension C and
        codebook size V (a new config; a config that already names others is refused)."""
        return self._with_tokens(facts.scales, facts.latent_dim, facts.codebook_size)

    def with_quantizer(self, quantizer: nn.Module) -> AARConfig:
        """The same over a bare MultiScaleResidualVQ (tests and benchmarks build models without a codec)."""
        V, C = quantizer.codebook(0).shape
        return self._with_tokens(quantizer.scales, C, V)

    def _with_tokens(self, scales, C: int, V: int) -> AARConfig:
        scales = [int(s) for s in scales]
        if self.scales and (list(self.scales) != scales or self.latent_dim != C or self.vocab_size != V):
            raise ArwaveError(
                f"aar: the codec's MSRQ (scales {scales}, dim {C}, {V} codes) does not match the "
                f"model config (scales {list(self.scales)}, dim {self.latent_dim}, {self.vocab_size} codes)"
            )
        return replace(self, scales=scales, latent_dim=int(C), vocab_size=int(V))


def check_config(m: AARConfig) -> None:
    if m.cond not in COND_KINDS:
        raise ConfigError(f"aar: cond must be one of {', '.join(COND_KINDS)}, got {m.cond!r}")
    if m.width % m.heads:
        raise ConfigError(f"aar: width {m.width} is not divisible by heads {m.heads}")
    if not 0 < m.window_stride <= 1:
        raise ConfigError(f"aar: window_stride must be in (0, 1], got {m.window_stride}")
    if not 0 <= m.cond_drop < 1:
        raise ConfigError(f"aar: cond_drop must be in [0, 1), got {m.cond_drop}")


@dataclass
class Window:
    """One sampled window: codes (B, L) (scales concatenated), latent ẑ (B, C, T), and how many of
    its first frames repeat known audio (the prompt or the previous window) rather than new audio."""

    codes: torch.Tensor
    latent: torch.Tensor
    known: int


def block_causal_mask(scales: list[int]) -> torch.Tensor:
    """(L, L) bool, True = may attend: token i sees token j iff scale(j) <= scale(i)."""
    ids = scale_ids(scales)
    return ids[None, :] <= ids[:, None]


def scale_ids(scales: list[int]) -> torch.Tensor:
    return torch.cat([torch.full((s,), k, dtype=torch.long) for k, s in enumerate(scales)])


def keep_masks(known: torch.Tensor, scales: list[int], coarse: int = 3) -> torch.Tensor:
    """In-painting keep mask per token (B, L) from a time mask `known` (B, T) bool over the window.

    VAR's zero-shot edit in 1-D: the mask is resized to each scale (area average = the known fraction
    of each token's span) and thresholded at 0.5; scales with <= `coarse` tokens are kept whole
    whenever anything is known (their tokens summarise the whole window)."""
    known_f = known.float()[:, None]
    anything = known.any(dim=1, keepdim=True)
    out = []
    for s in scales:
        keep = F.interpolate(known_f, size=s, mode="area")[:, 0] >= 0.5
        if s <= coarse:
            keep = keep | anything
        out.append(keep)
    return torch.cat(out, dim=1)


class AdaLNHead(nn.Module):
    """VAR's AdaLNBeforeHead + head: Linear(LN(h)·(1 + scale) + shift), (scale, shift) = Linear(SiLU(cond))."""

    def __init__(self, width: int, vocab: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, vocab)

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ada(cond).unsqueeze(1).chunk(2, dim=-1)

    def forward(self, h: torch.Tensor, cond: torch.Tensor, mod=None) -> torch.Tensor:
        """`mod`: `modulation(cond)`, precomputed (once per sampled window)."""
        scale, shift = mod if mod is not None else self.modulation(cond)
        return self.out(self.norm(h) * (1 + scale) + shift)


class AAR(CodecGenerator):
    """VAR-style next-scale transformer over MSRQ tokens.

    `codec`: the msrq Codec (for audio in/out); `quantizer`: its MultiScaleResidualVQ (taken from the
    codec when not given; enough for token-level work such as tests and benchmarks)."""

    sampling_options = frozenset(
        {"class_label", "embedding", "cfg", "top_k", "top_p", "temperature", "prompt", "overlap"}
    )
    # int8: a step carries a whole scale (up to 2·T rows with guidance), where int8 matmuls win at every
    # layer size; quantize all but the smallest layers (arwave/models/quantize.py)
    int8_min_features = 128 * 128

    def __init__(self, cfg: AARConfig, codec: nn.Module | None = None, quantizer: nn.Module | None = None):
        super().__init__()
        if codec is not None:
            quantizer = quantizer if quantizer is not None else codec_msrq(codec)
            cfg = cfg.with_codec(codec.facts())
        elif quantizer is not None:
            cfg = cfg.with_quantizer(quantizer)
        if not cfg.scales or not cfg.latent_dim or not cfg.vocab_size:
            raise ArwaveError(
                "aar: scales/latent_dim/vocab_size are unknown: build the model with its codec "
                "(or a MultiScaleResidualVQ), or from a trained run's config"
            )
        self.cfg = cfg
        self.attach(codec, quantizer)
        self.scales = [int(s) for s in cfg.scales]
        K, L, C, V, D = len(self.scales), sum(self.scales), cfg.latent_dim, cfg.vocab_size, cfg.width
        self.K, self.L, self.T = K, L, self.scales[-1]

        self.condition = ConditionEmbedding(cfg.cond, D, cfg.num_classes, cfg.embed_dim)
        self.word_embed = nn.Linear(C, D)
        self.pos_start = nn.Parameter(torch.empty(1, self.scales[0], D))
        self.pos_embed = nn.Parameter(torch.empty(1, L, D))
        self.lvl_embed = nn.Embedding(K, D)
        self.transformer = Transformer(
            TransformerConfig(
                width=D,
                depth=cfg.depth,
                heads=cfg.heads,
                mlp_ratio=cfg.mlp_ratio,
                rotary=False,
                qk_norm=True,
                cond_dim=D,
            )
        )
        self.head = AdaLNHead(D, V)
        self.register_buffer("scale_ids", scale_ids(self.scales), persistent=False)
        self.register_buffer("mask", block_causal_mask(self.scales), persistent=False)
        self._init_weights()

    # -- init ----------------------------------------------------------------------------------------
    def _init_weights(self) -> None:
        """VAR: trunc-normal std sqrt(1/(3·width)) everywhere; head ×0.02; proj/fc2 ÷ sqrt(2·depth);
        AdaLN scale/shift rows ×0.5, gate rows ×init_adaln_gamma, biases 0."""
        D, cfg = self.cfg.width, self.cfg
        std = math.sqrt(1 / (3 * D))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.trunc_normal_(m.weight, std=std)
        for p in (self.pos_start, self.pos_embed):
            nn.init.trunc_normal_(p, std=std)
        with torch.no_grad():
            self.head.out.weight.mul_(cfg.init_head)
            self.head.ada[-1].weight.mul_(cfg.init_adaln)
            for block in self.transformer.blocks:
                block.attn.proj.weight.div_(math.sqrt(2 * cfg.depth))
                block.mlp.fc2.weight.div_(math.sqrt(2 * cfg.depth))
                w = block.ada[-1].weight  # rows: γ1, γ2, scale1, scale2, shift1, shift2
                w[2 * D :].mul_(cfg.init_adaln)
                w[: 2 * D].mul_(cfg.init_adaln_gamma)

    # -- teacher forcing -----------------------------------------------------------------------------
    def split(self, codes: torch.Tensor) -> list[torch.Tensor]:
        """(B, L) -> K maps (B, s_k)."""
        return list(codes.split(self.scales, dim=1))

    @torch.no_grad()
    def teacher_inputs(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, L) codes -> (B, L − s_1, C): [in_2; ...; in_K], in_{k+1} = area_down(ẑ_k → s_{k+1})."""
        maps = self.quantizer.var_inputs(self.split(codes))
        return torch.cat(maps, dim=2).transpose(1, 2).float()

    def pos_level(self) -> torch.Tensor:
        """(1, L, width): learned absolute position + level embedding of each token."""
        return self.pos_embed + self.lvl_embed(self.scale_ids)[None]

    def forward(
        self,
        codes: torch.Tensor,
        labels: torch.Tensor | None = None,
        embeddings: torch.Tensor | None = None,
        cond_drop: float = 0.0,
    ) -> torch.Tensor:
        """Teacher-forced logits (B, L, V) for codes (B, L); the condition is dropped to null with
        probability `cond_drop` per sample."""
        B = codes.shape[0]
        drop = self.condition.random_drop(B, cond_drop, codes.device)
        cond = self.condition(B, labels, embeddings, drop)
        sos = cond[:, None, :] + self.pos_start  # (B, s_1, width)
        x = torch.cat([sos, self.word_embed(self.teacher_inputs(codes))], dim=1) + self.pos_level()
        h = self.transformer(x, cond, mask=self.mask)
        return self.head(h, cond)

    # -- sampling ------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_window(
        self,
        cond: torch.Tensor,
        null: torch.Tensor | None,
        generator: torch.Generator,
        cfg: float = 0.0,
        top_k: int = 0,
        top_p: float = 0.0,
        temperature: float = 1.0,
        given: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
        return_logits: bool = False,
    ):
        """One window: K forward passes, one per scale, with a KV cache.

        cond (B, width) condition vectors; null (B, width) the null condition for guidance, or None
        for plain conditional sampling. Guidance at scale k: t_k = cfg·k/(K−1), logits =
        (1 + t)·cond − t·uncond, the batch doubled as [cond; null]. `given` (B, L) codes and `keep`
        (B, L) bool: tokens taken from `given` instead of sampled (in-painting, continuation, or teacher
        forcing when keep is all true). Returns (codes (B, L), ẑ (B, C, T)[, per-scale logits])."""
        B = cond.shape[0]
        guided = null is not None
        c = torch.cat([cond, null]) if guided else cond
        pos = self.pos_level()
        caches = self.transformer.new_cache()
        # the condition is fixed for the window: every AdaLN projection once, not once per scale
        mods, head_mod = self.transformer.modulations(c), self.head.modulation(c)
        x = (c[:, None, :] + self.pos_start) + pos[:, : self.scales[0]]
        z_hat, codes, all_logits, start = None, [], [], 0
        for k, s in enumerate(self.scales):
            h = self.transformer(x, c, caches=caches, mods=mods)
            logits = self.head(h, c, mod=head_mod).float()  # (B', s_k, V)
            if guided:
                logits = guided_logits(logits[:B], logits[B:], guidance_ramp(cfg, k, self.K))
            idx = sample(logits, generator, temperature, top_k, top_p)
            if given is not None:
                span = slice(start, start + s)
                idx = torch.where(keep[:, span], given[:, span].to(idx), idx)
            codes.append(idx)
            if return_logits:
                all_logits.append(logits)
            z_hat = self.quantizer.add_scale(z_hat, k, idx)
            start += s
            if k + 1 < self.K:
                nxt = self.quantizer.next_input(z_hat, k).transpose(1, 2).to(x.dtype)  # (B, s_{k+1}, C)
                x = self.word_embed(nxt) + pos[:, start : start + self.scales[k + 1]]
                if guided:
                    x = torch.cat([x, x])
        out = (torch.cat(codes, dim=1), z_hat.float())
        return (*out, all_logits) if return_logits else out

    def _defaults(self, cfg, top_k, top_p, temperature, overlap):
        c = self.cfg
        pick = lambda v, d: d if v is None else v
        return (
            float(pick(cfg, c.cfg)),
            int(pick(top_k, c.top_k)),
            float(pick(top_p, c.top_p)),
            float(pick(temperature, c.temperature)),
            float(pick(overlap, c.overlap)),
        )

    @torch.no_grad()
    def iter_windows(
        self,
        num: int = 1,
        frames: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        class_label=None,
        embedding=None,
        cfg: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float | None = None,
        overlap: float | None = None,
        prompt_latent: torch.Tensor | None = None,
    ) -> Iterator[Window]:
        """Windows of tokens, one at a time, until they hold at least `frames` new latent frames.

        Window after window: each new window keeps its first `round(overlap·T)` frames from the end of
        the previous one (overlap 0: independent windows) and samples the rest; with `prompt_latent`
        (num, C, n), encoder latents of a prompt, the first window keeps the prompt's last
        min(n, overlap·T or T/2) frames. Known frames enter as in-painting: the known latent, padded
        to T frames with its mean, is MSRQ-encoded, and its tokens are kept where `keep_masks` says
        (coarse scales whole, finer ones where the token's span is at least half known).
        AR steps = K per window."""
        cfg, top_k, top_p, temperature, overlap = self._defaults(cfg, top_k, top_p, temperature, overlap)
        generator = generator if generator is not None else make_generator(seed, self.pos_embed.device)
        T = self.T
        frames = T if frames is None else int(frames)
        ov = self.overlap_frames(overlap)
        cond, conditional = self.condition_vectors(num, class_label, embedding)
        null = self.condition.null(num) if conditional and cfg != 0 else None
        tail = None
        if prompt_latent is not None:
            n = min(ov if ov > 0 else T // 2, prompt_latent.shape[-1], T - 1)  # a prompt always counts
            tail = prompt_latent[..., -n:].to(cond.device).float()
        produced = 0
        while produced < frames:
            given = keep = None
            known = 0 if tail is None else tail.shape[-1]
            if known:
                fill = tail.mean(dim=-1, keepdim=True).expand(-1, -1, T - known)
                given = torch.cat(self.quantizer.encode(torch.cat([tail, fill], dim=-1)), dim=1)
                mask = (torch.arange(T, device=cond.device) < known).expand(num, T)
                keep = keep_masks(mask, self.scales)
            codes, z_hat = self.sample_window(cond, null, generator, cfg, top_k, top_p, temperature, given, keep)
            produced += T - known
            yield Window(codes, z_hat, known)
            tail = z_hat[..., T - ov :] if ov > 0 else None

    def sample_tokens(self, num: int = 1, frames: int | None = None, seed: int | None = None, **kw) -> list[Window]:
        """All windows of `iter_windows` (same arguments): tokens and latents, no audio."""
        return list(self.iter_windows(num, frames, seed, **kw))

    def overlap_frames(self, overlap: float | None = None) -> int:
        overlap = self.cfg.overlap if overlap is None else float(overlap)
        return min(max(int(round(overlap * self.T)), 0), self.T - 1)

    # -- audio ---------------------------------------------------------------------------------------
    def decode_windows(self, windows: list[Window], overlap: float | None = None) -> torch.Tensor:
        """Decode every window's ẑ (one batched decoder call) and join them with `WindowStitcher`."""
        B = windows[0].latent.shape[0]
        audio = decode_latent(self.codec, torch.cat([w.latent for w in windows], dim=0))
        hop = audio.shape[-1] // self.T
        stitch = WindowStitcher(hold=self.overlap_frames(overlap) * hop)
        parts = [stitch.push(a, w.known * hop) for w, a in zip(windows, audio.split(B))]
        return torch.cat(parts + [stitch.flush()], dim=-1)

    def _prepare(self, seconds, num, prompt):
        if seconds <= 0:
            raise ArwaveError(f"seconds must be > 0, got {seconds}")
        samples = int(round(seconds * self.sample_rate))
        prompt_latent = None
        if prompt is not None:
            prompt_latent = encode_prompt_latent(self.codec, prompt, num, self.T, self.pos_embed.device)
        return samples, math.ceil(samples / int(self.codec.hop)), prompt_latent

    @torch.no_grad()
    def generate(
        self,
        seconds: float,
        num: int = 1,
        seed: int | None = None,
        prompt: torch.Tensor | None = None,
        overlap: float | None = None,
        **sampling,
    ) -> torch.Tensor:
        """(num, channels, round(seconds·sample_rate)) audio. `sampling`: class_label (name or id),
        embedding, cfg, top_k, top_p, temperature. With `prompt` (C, N) or (num, C, N) at the model's
        rate the audio continues the prompt (the prompt itself is not included)."""
        samples, frames, prompt_latent = self._prepare(seconds, num, prompt)
        windows = self.sample_tokens(num, frames, seed, overlap=overlap, prompt_latent=prompt_latent, **sampling)
        return self.decode_windows(windows, overlap)[..., :samples].float()

    @torch.no_grad()
    def stream(
        self,
        seconds: float,
        seed: int | None = None,
        prompt: torch.Tensor | None = None,
        overlap: float | None = None,
        **sampling,
    ) -> Iterator[torch.Tensor]:
        """Yield (channels, n) audio chunks of one clip as windows are sampled and decoded; the chunks
        concatenate to exactly `generate(seconds, 1, seed, ...)[0]`."""
        samples, frames, prompt_latent = self._prepare(seconds, 1, prompt)
        hop, left = int(self.codec.hop), samples
        stitch = WindowStitcher(hold=self.overlap_frames(overlap) * hop)
        for w in self.iter_windows(1, frames, seed, overlap=overlap, prompt_latent=prompt_latent, **sampling):
            chunk = stitch.push(decode_latent(self.codec, w.latent), w.known * hop)[0, :, :left]
            left -= chunk.shape[-1]
            if chunk.shape[-1]:
                yield chunk.float()
        last = stitch.flush()[0, :, :left]
        if last.shape[-1]:
            yield last.float()


class WindowStitcher:
    """Joins decoded windows into one waveform. The first `known` samples of a window repeat audio that
    is already out (the end of the previous window, or the prompt): they are cross-faded linearly with
    the held-back end of the previous window (or dropped where they lie before the output's start).
    The last `hold` samples of each window are held back until the next window (or `flush`)."""

    def __init__(self, hold: int):
        self.hold = hold
        self.tail: torch.Tensor | None = None

    def push(self, audio: torch.Tensor, known: int) -> torch.Tensor:
        """audio (B, C, n) of one window -> the samples that are final now."""
        m = 0 if self.tail is None else self.tail.shape[-1]
        overlap = min(known, m)
        out = audio[..., known:]
        if overlap:
            fade = torch.linspace(0.0, 1.0, overlap + 2, device=audio.device, dtype=audio.dtype)[1:-1]
            mixed = self.tail[..., m - overlap :] * (1 - fade) + audio[..., known - overlap : known] * fade
            out = torch.cat([self.tail[..., : m - overlap], mixed, out], dim=-1)
        elif self.tail is not None:
            out = torch.cat([self.tail, out], dim=-1)
        keep = min(self.hold, out.shape[-1])
        self.tail = out[..., out.shape[-1] - keep :]
        return out[..., : out.shape[-1] - keep]

    def flush(self) -> torch.Tensor:
        tail, self.tail = self.tail, None
        return tail


# ---------------------------------------------------------------------------------------------------
# helpers shared with the next-token baseline and the benchmark


def codec_msrq(codec: nn.Module) -> nn.Module:
    """The MultiScaleResidualVQ inside an msrq codec."""
    if getattr(codec, "kind", None) != "msrq":
        raise ArwaveError(
            f"aar needs a codec with the msrq bottleneck, this one has {getattr(codec, 'kind', '?')!r} "
            "(train one with `arwave train codec --preset small`)"
        )
    return codec.msrq
