"""The next-token baseline: a GPT over residual-VQ tokens (the comparison point of the AAR paper).

Codes (B, N, F): N RVQ levels per latent frame. Two layouts of the token grid into AR steps:

- "flat" (the paper's baseline, one token per step): frame-major t0l0, t0l1, …, t0l(N−1), t1l0, …
  → F·N steps. Step s predicts level s mod N; its input is the previous token, embedded with that
  token's level table, plus an embedding of the level being predicted.
- "delay" (MusicGen's delay pattern, a config switch): level l is shifted right by l frames and
  all N levels are predicted in parallel per step → F + N − 1 steps; positions outside the shifted
  grid hold a PAD token (id V) that is never predicted, only fed back.

Every input position also gets the condition vector added (the first position is the start token
= condition + a learned start vector). The backbone is the shared Transformer with rotary positions
(relative), which is what makes the sliding window (generation longer than the training context)
work. The window sees what training saw: every training crop starts with the start token and then
whole frames, so the sliding KV cache keeps the start token pinned at its head and drops the oldest
frame's N tokens at once (flat), i.e. every sampling step's context is [start, whole frames..., the
current frame so far] of at most the training length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
import torch.nn as nn

from arwave.config import ConfigError, OneOf, above, at_least, between
from arwave.errors import ArwaveError
from arwave.models.aar.base import CodecGenerator, decode_latent, encode_prompt_latent
from arwave.models.aar.condition import COND_KINDS, ConditionEmbedding
from arwave.models.generator import make_generator
from arwave.models.sampling import guided_logits, sample
from arwave.models.transformer import Transformer, TransformerConfig

PATTERNS = ("flat", "delay")


@dataclass
class NextTokenConfig:
    codec_run: str = ""  # rvq codec run folder (required to train; copied into RUN/codec)
    width: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    pattern: str = "flat"  # flat (one token per step) | delay (MusicGen delay, N tokens per step)
    context_frames: int = 0  # training crop in latent frames (0: one codec window, set at task build)
    cond: str = "class"  # class | embedding | none
    cond_drop: float = 0.1
    embed_dim: int = 512
    embedder: str = ""
    # filled when the task is built
    num_classes: int = 0
    label_names: list[str] = field(default_factory=list)
    levels: int = 0  # N
    vocab_size: int = 0  # V
    # sampling defaults
    cfg: float = 3.0  # constant guidance: (1 + cfg)·cond − cfg·uncond
    top_k: int = 0
    top_p: float = 0.95
    temperature: float = 1.0

    LIMITS: ClassVar[dict] = {
        "width": at_least(1),
        "depth": at_least(1),
        "heads": at_least(1),
        "mlp_ratio": above(0),
        "pattern": OneOf(PATTERNS),
        "cond": OneOf(COND_KINDS),
        "cond_drop": between(0, 1, hi_open=True),
        "embed_dim": at_least(1),
        "top_p": between(0, 1),
    }

    def with_codec(self, facts) -> NextTokenConfig:
        """This config over an rvq codec (`Codec.facts()`): its levels N and codebook size V, and one codec
        window as the training crop unless `context_frames` is set (a new config)."""
        return replace(
            self._with_tokens(facts.levels, facts.codebook_size),
            context_frames=int(self.context_frames or facts.window_frames),
        )

    def with_quantizer(self, rvq: nn.Module) -> NextTokenConfig:
        """The same over a bare ResidualVQ (tests and benchmarks build models without a codec)."""
        return self._with_tokens(rvq.levels, rvq.codebook_size)

    def _with_tokens(self, N: int, V: int) -> NextTokenConfig:
        N, V = int(N), int(V)
        if self.levels and (self.levels != N or self.vocab_size != V):
            raise ArwaveError(
                f"nexttoken: the codec's RVQ ({N} levels, {V} codes) does not match the model config "
                f"({self.levels} levels, {self.vocab_size} codes)"
            )
        return replace(self, levels=N, vocab_size=V)


def check_config(m: NextTokenConfig) -> None:
    if m.cond not in COND_KINDS:
        raise ConfigError(f"nexttoken: cond must be one of {', '.join(COND_KINDS)}, got {m.cond!r}")
    if m.pattern not in PATTERNS:
        raise ConfigError(f"nexttoken: pattern must be one of {', '.join(PATTERNS)}, got {m.pattern!r}")
    if m.width % m.heads:
        raise ConfigError(f"nexttoken: width {m.width} is not divisible by heads {m.heads}")
    if not 0 <= m.cond_drop < 1:
        raise ConfigError(f"nexttoken: cond_drop must be in [0, 1), got {m.cond_drop}")


# ---------------------------------------------------------------------------------------------------
# token layouts: codes (B, N, F) <-> steps (B, S, P) (P tokens per step)


def flatten_codes(codes: torch.Tensor) -> torch.Tensor:
    """(B, N, F) -> (B, F·N, 1), frame-major."""
    return codes.transpose(1, 2).reshape(codes.shape[0], -1, 1)


def unflatten_codes(steps: torch.Tensor, levels: int) -> torch.Tensor:
    """(B, F·N, 1) -> (B, N, F)."""
    return steps.reshape(steps.shape[0], -1, levels).transpose(1, 2)


def delay_codes(codes: torch.Tensor, pad: int) -> torch.Tensor:
    """(B, N, F) -> (B, F + N − 1, N): step s holds level l of frame s − l (PAD outside)."""
    B, N, F = codes.shape
    out = codes.new_full((B, F + N - 1, N), pad)
    for level in range(N):
        out[:, level : level + F, level] = codes[:, level]
    return out


def undelay_codes(steps: torch.Tensor) -> torch.Tensor:
    """(B, F + N − 1, N) -> (B, N, F)."""
    B, S, N = steps.shape
    F = S - N + 1
    return torch.stack([steps[:, level : level + F, level] for level in range(N)], dim=1)


class NextToken(CodecGenerator):
    """GPT over RVQ tokens. `codec`: the rvq Codec; `quantizer`: its ResidualVQ (for tests/benchmarks)."""

    sampling_options = frozenset({"class_label", "embedding", "cfg", "top_k", "top_p", "temperature", "prompt"})

    def __init__(self, cfg: NextTokenConfig, codec: nn.Module | None = None, quantizer: nn.Module | None = None):
        super().__init__()
        if codec is not None:
            quantizer = quantizer if quantizer is not None else codec_rvq(codec)
            cfg = cfg.with_codec(codec.facts())
        elif quantizer is not None:
            cfg = cfg.with_quantizer(quantizer)
        if cfg.pattern not in PATTERNS:
            raise ArwaveError(f"nexttoken: pattern={cfg.pattern!r}, expected one of {', '.join(PATTERNS)}")
        if not cfg.levels or not cfg.vocab_size or not cfg.context_frames:
            raise ArwaveError(
                "nexttoken: levels/vocab_size/context_frames are unknown: build the model with its "
                "codec, or from a trained run's config"
            )
        if cfg.pattern == "flat" and cfg.context_frames < 2:
            raise ArwaveError(
                "nexttoken: the flat pattern needs context_frames >= 2 (a sliding window drops whole "
                f"frames and keeps at least one), got {cfg.context_frames}"
            )
        self.cfg = cfg
        self.attach(codec, quantizer)
        N, V, D = cfg.levels, cfg.vocab_size, cfg.width
        self.N, self.V = N, V
        self.delay = cfg.pattern == "delay"
        self.P = N if self.delay else 1  # tokens per step
        self.condition = ConditionEmbedding(cfg.cond, D, cfg.num_classes, cfg.embed_dim)
        self.start = nn.Parameter(torch.zeros(1, 1, D))
        self.tok_embed = nn.Embedding(N * (V + 1), D)  # one table per level; row V = PAD
        if not self.delay:
            self.lvl_embed = nn.Embedding(N, D)  # the level being predicted (flat)
        self.transformer = Transformer(
            TransformerConfig(width=D, depth=cfg.depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, rotary=True)
        )
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, self.P * V)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2: normal(0, 0.02), residual projections ÷ sqrt(2·depth)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        with torch.no_grad():
            for block in self.transformer.blocks:
                block.attn.proj.weight.div_(math.sqrt(2 * self.cfg.depth))
                block.mlp.fc2.weight.div_(math.sqrt(2 * self.cfg.depth))

    # -- layout --------------------------------------------------------------------------------------
    def steps_for(self, frames: int) -> int:
        return frames + self.N - 1 if self.delay else frames * self.N

    @property
    def context_steps(self) -> int:
        return self.steps_for(self.cfg.context_frames)

    def to_steps(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N, F) -> (B, S, P) step tokens."""
        return delay_codes(codes, self.V) if self.delay else flatten_codes(codes)

    def from_steps(self, steps: torch.Tensor) -> torch.Tensor:
        return undelay_codes(steps) if self.delay else unflatten_codes(steps, self.N)

    def slot_levels(self, first: int, count: int, device=None) -> torch.Tensor:
        """(count, P) RVQ level of each token of steps first..first+count−1."""
        if self.delay:
            return torch.arange(self.N, device=device).expand(count, self.N)
        return (torch.arange(first, first + count, device=device) % self.N)[:, None]

    def valid(self, frames: int, device=None) -> torch.Tensor:
        """(S, P) bool: step slots that hold a real token (delay: not PAD)."""
        S = self.steps_for(frames)
        if not self.delay:
            return torch.ones(S, 1, dtype=torch.bool, device=device)
        s = torch.arange(S, device=device)[:, None]
        lvl = torch.arange(self.N, device=device)[None]
        return (s - lvl >= 0) & (s - lvl < frames)

    def embed_steps(self, tokens: torch.Tensor, first: int, cond: torch.Tensor) -> torch.Tensor:
        """Inputs of steps first+1 .. first+S from the tokens (B, S, P) of steps first .. first+S−1."""
        S = tokens.shape[1]
        levels = self.slot_levels(first, S, tokens.device)
        x = self.tok_embed(tokens + levels * (self.V + 1)).sum(dim=2)
        if not self.delay:  # the level predicted next
            x = x + self.lvl_embed(torch.arange(first + 1, first + 1 + S, device=tokens.device) % self.N)
        return x + cond[:, None, :]

    def start_input(self, cond: torch.Tensor) -> torch.Tensor:
        x = self.start + cond[:, None, :]
        if not self.delay:
            x = x + self.lvl_embed.weight[0]
        return x

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, S, width) -> (B, S, P, V)."""
        return self.head(self.norm(h)).view(*h.shape[:2], self.P, self.V)

    # -- teacher forcing -----------------------------------------------------------------------------
    def forward(
        self,
        codes: torch.Tensor,
        labels: torch.Tensor | None = None,
        embeddings: torch.Tensor | None = None,
        cond_drop: float = 0.0,
    ) -> torch.Tensor:
        """codes (B, N, F) -> logits (B, S, P, V) of every step's tokens (targets: `to_steps(codes)`,
        counted where `valid(F)`)."""
        B = codes.shape[0]
        drop = self.condition.random_drop(B, cond_drop, codes.device)
        cond = self.condition(B, labels, embeddings, drop)
        steps = self.to_steps(codes)
        x = torch.cat([self.start_input(cond), self.embed_steps(steps[:, :-1], 0, cond)], dim=1)
        return self.logits(self.transformer(x, mask="causal"))

    # -- sampling ------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_steps(
        self,
        frames: int,
        cond: torch.Tensor,
        null: torch.Tensor | None,
        generator: torch.Generator,
        cfg: float = 0.0,
        top_k: int = 0,
        top_p: float = 0.0,
        temperature: float = 1.0,
        given: torch.Tensor | None = None,
        return_logits: bool = False,
    ):
        """Sample `frames` frames of codes, one AR step at a time with a KV cache that slides once it
        holds the training context. `given` (B, N, g) codes force the first g frames (a prompt, or
        teacher forcing when g = frames). Guidance (null not None): (1 + cfg)·cond − cfg·uncond with the
        batch doubled as [cond; null]. Returns codes (B, N, frames)[, logits (B, S, P, V)]."""
        B, device = cond.shape[0], cond.device
        S = self.steps_for(frames)
        forced_tokens = torch.full((B, S, self.P), self.V, dtype=torch.long, device=device)
        forced = ~self.valid(frames, device).expand(B, S, self.P).clone()  # PAD slots
        if given is not None:
            g = given.shape[-1]
            full = torch.zeros(B, self.N, frames, dtype=torch.long, device=device)
            full[..., :g] = given.to(device)
            known = torch.zeros(B, self.N, frames, dtype=torch.long, device=device)
            known[..., :g] = 1
            forced_tokens = torch.where(forced, forced_tokens, self.to_steps(full))
            forced = forced | (self.to_steps(known) == 1)
        guided = null is not None
        c = torch.cat([cond, null]) if guided else cond
        # start token pinned, whole frames dropped: each context is a prefix of a training crop
        caches = self.transformer.new_cache(max_len=self.context_steps - 1, sink=1, stride=1 if self.delay else self.N)
        x = self.start_input(c)
        out = torch.empty(B, S, self.P, dtype=torch.long, device=device)
        all_logits = []
        for s in range(S):
            logits = self.logits(self.transformer(x, mask="causal", caches=caches))[:, 0].float()  # (B', P, V)
            if guided:
                logits = guided_logits(logits[:B], logits[B:], cfg)
            if return_logits:
                all_logits.append(logits)
            tok = sample(logits, generator, temperature, top_k, top_p)
            tok = torch.where(forced[:, s], forced_tokens[:, s], tok)
            out[:, s] = tok
            x = self.embed_steps(tok[:, None], s, c[:B])
            if guided:
                x = torch.cat([x, self.embed_steps(tok[:, None], s, c[B:])])
        codes = self.from_steps(out)
        return (codes, torch.stack(all_logits, dim=1)) if return_logits else codes

    @torch.no_grad()
    def sample_tokens(
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
        prompt_codes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Codes (num, N, frames) (default: one training context); with `prompt_codes` (num, N, g) the
        result starts with those g frames and continues them (frames counts the new ones)."""
        c = self.cfg
        pick = lambda v, d: d if v is None else v
        cfg, top_k = float(pick(cfg, c.cfg)), int(pick(top_k, c.top_k))
        top_p, temperature = float(pick(top_p, c.top_p)), float(pick(temperature, c.temperature))
        generator = generator if generator is not None else make_generator(seed, self.start.device)
        frames = c.context_frames if frames is None else int(frames)
        cond, conditional = self.condition_vectors(num, class_label, embedding)
        null = self.condition.null(num) if conditional and cfg != 0 else None
        g = 0 if prompt_codes is None else prompt_codes.shape[-1]
        return self.sample_steps(frames + g, cond, null, generator, cfg, top_k, top_p, temperature, prompt_codes)

    @torch.no_grad()
    def generate(
        self,
        seconds: float,
        num: int = 1,
        seed: int | None = None,
        class_label=None,
        embedding=None,
        cfg: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float | None = None,
        prompt: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(num, channels, round(seconds·sample_rate)); with `prompt` (C, N) or (num, C, N) the audio
        continues the prompt (whose last context−1 frames are fed as given tokens; not included)."""
        if seconds <= 0:
            raise ArwaveError(f"seconds must be > 0, got {seconds}")
        samples = int(round(seconds * self.sample_rate))
        hop = int(self.codec.hop)
        prompt_codes = None
        if prompt is not None:
            latent = encode_prompt_latent(self.codec, prompt, num, self.cfg.context_frames - 1, self.start.device)
            prompt_codes = self.quantizer.encode(latent)
        codes = self.sample_tokens(
            num,
            math.ceil(samples / hop),
            seed=seed,
            class_label=class_label,
            embedding=embedding,
            cfg=cfg,
            top_k=top_k,
            top_p=top_p,
            temperature=temperature,
            prompt_codes=prompt_codes,
        )
        audio = decode_latent(self.codec, self.quantizer.decode(codes))
        g = 0 if prompt_codes is None else prompt_codes.shape[-1]
        return audio[..., g * hop : g * hop + samples].float()


def codec_rvq(codec: nn.Module) -> nn.Module:
    bottleneck = getattr(codec, "bottleneck", None)
    rvq = getattr(bottleneck, "rvq", None)
    if rvq is None:
        raise ArwaveError(
            "nexttoken needs a codec with the rvq bottleneck (train one with `arwave train codec --set bottleneck=rvq`)"
        )
    return rvq
