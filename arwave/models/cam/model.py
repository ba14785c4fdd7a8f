"""CAM: a causal transformer over continuous codec latents + a per-frame head (rf / gmm / ddpm).

Sequence layout (T = `context` frames, SPEC §3):

    input  u_0 = start (+ class),  u_s = in_proj(x̃_s) + level(k_s) (+ class)   for s = 1..T−1
    z_t    = LayerNorm(Transformer_causal(u_0..u_{t−1}))[t−1]                  z_t models p(x_t | x_<t)

(0-based in code: z[:, t] is computed from frames < t and predicts x[:, t].) The class embedding is
added to EVERY input, not only to the start token, so the condition survives in a sliding window
after the start token has left it.

Generation keeps one KV cache per layer with `max_len = context − 1`: a new frame attends to at most
context − 1 cached entries plus itself, i.e. exactly the span seen in training. Past that length the
oldest frames slide out but the start token stays pinned at the head of the window (re-positioned
just before the oldest kept frame), because every training window began with it: the model never
saw a context without it. Each generated frame x̂ enters the context as corrupt(x̂, k_inf) and the
model is told k_inf.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
import torch.nn as nn

from arwave.config import OneOf, above, at_least, between
from arwave.errors import ArwaveError
from arwave.models.cam.heads import HEADS, make_head
from arwave.models.cam.noise import MODES, NoiseLevelEmbedding, augment, renoise
from arwave.models.generator import AudioGenerator, class_index, make_generator
from arwave.models.transformer import Transformer, TransformerConfig


@dataclass
class CAMConfig:
    # latents (facts of the codec; filled from it at training start)
    latent_dim: int = 64  # D
    hop: int = 4096  # audio samples per latent frame
    latent_scale: float = 0.0  # RMS of the training latents (0 = measure at training start);
    # the model works on latents / latent_scale (unit RMS)
    # backbone
    width: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    context: int = 64  # frames per training crop = attention span at inference
    # head
    head: str = "rf"  # rf | gmm | ddpm
    head_width: int = 256
    head_depth: int = 3
    head_batch_mul: int = 4  # (σ, noise) draws per z_t per step (rf, ddpm)
    head_steps: int = 0  # default sampling steps; 0 = head default (rf 8, ddpm 25)
    rf_time: str = "logit_normal"  # σ sampling in training: uniform | logit_normal
    gmm_modes: int = 32
    ddpm_steps: int = 1000
    ddpm_clip: float = 6.0  # |x0 estimate| clamp in ddpm sampling (0 = off)
    # noise augmentation
    noise_aug: bool = True
    k_max: float = 0.5  # k ~ U(0, k_max) per context frame
    noise_aug_mode: str = "linear"  # linear: (1−k)x + kε | vp: √(1−k)x + √k ε
    k_inf: float = 0.02  # default inference noise (used only if trained with noise_aug)
    # conditioning
    conditional: bool = False  # class-conditioned on the manifest's labels
    num_classes: int = 0  # filled from the data when conditional
    label_names: list[str] = field(default_factory=list)
    class_dropout: float = 0.1  # label dropped in training (enables CFG)
    cfg: float = 0.0  # classifier-free guidance of class-conditioned sampling when the caller gives none
    # codec
    codec_run: str = ""  # codec run folder (required to start training)
    stream_window: int = 8  # frames decoded per chunk if the codec cannot stream

    LIMITS: ClassVar[dict] = {
        "latent_dim": at_least(1),
        "hop": at_least(1),
        "width": at_least(1),
        "depth": at_least(1),
        "heads": at_least(1),
        "mlp_ratio": above(0),
        "context": at_least(2),
        "head": OneOf(HEADS),
        "head_width": at_least(1),
        "head_depth": at_least(1),
        "head_batch_mul": at_least(1),
        "rf_time": OneOf(("uniform", "logit_normal")),
        "gmm_modes": at_least(1),
        "ddpm_steps": at_least(1),
        "k_max": between(0, 1),
        "noise_aug_mode": OneOf(MODES),
        "k_inf": between(0, 1, hi_open=True),
        "class_dropout": between(0, 1, hi_open=True),
        "cfg": at_least(0),
        "stream_window": at_least(1),
    }

    def with_codec(self, facts) -> CAMConfig:
        """This config over a codec (`Codec.facts()`): its latent size D and hop (a new config)."""
        return replace(self, latent_dim=int(facts.latent_dim), hop=int(facts.hop))


def check_config(c: CAMConfig) -> None:
    if c.head not in HEADS:
        raise ArwaveError(f"cam: head must be one of {', '.join(HEADS)}, got {c.head!r}")
    if c.noise_aug_mode not in MODES:
        raise ArwaveError(f"cam: noise_aug_mode must be one of {', '.join(MODES)}, got {c.noise_aug_mode!r}")
    if c.rf_time not in ("uniform", "logit_normal"):
        raise ArwaveError(f"cam: rf_time must be uniform or logit_normal, got {c.rf_time!r}")
    if not 0.0 <= c.k_max <= 1.0 or not 0.0 <= c.k_inf < 1.0:
        raise ArwaveError(f"cam: need 0 <= k_max <= 1 and 0 <= k_inf < 1 (got k_max={c.k_max}, k_inf={c.k_inf})")
    if c.context < 2:
        raise ArwaveError(f"cam: context must be >= 2 frames, got {c.context}")
    if c.width % c.heads:
        raise ArwaveError(f"cam: width {c.width} is not divisible by heads {c.heads}")


class CAM(AudioGenerator):
    sampling_options = {"prompt", "class_label", "cfg", "k_inf", "head_steps", "temperature"}

    def __init__(
        self,
        cfg: CAMConfig,
        codec: nn.Module | None = None,
        sample_rate: int | None = None,
        channels: int | None = None,
        hop: int | None = None,
    ):
        super().__init__()
        self.cam = cfg
        D, W = cfg.latent_dim, cfg.width
        self.in_proj = nn.Linear(D, W)
        self.level_embed = NoiseLevelEmbedding(W)
        self.start = nn.Parameter(torch.randn(W) * 0.02)
        # rows 0..C−1: classes; row C: "no class" (label dropout for CFG, unlabeled files)
        self.class_embed = nn.Embedding(cfg.num_classes + 1, W) if cfg.num_classes > 0 else None
        if self.class_embed is not None:
            nn.init.normal_(self.class_embed.weight, std=0.02)
        self.backbone = Transformer(
            TransformerConfig(width=W, depth=cfg.depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio)
        )
        self.norm = nn.LayerNorm(W)
        self.head = make_head(
            cfg.head,
            D,
            W,
            cfg.head_width,
            cfg.head_depth,
            batch_mul=cfg.head_batch_mul,
            rf_time=cfg.rf_time,
            steps=cfg.head_steps,
            gmm_modes=cfg.gmm_modes,
            ddpm_steps=cfg.ddpm_steps,
            ddpm_clip=cfg.ddpm_clip,
        )
        self.attach(codec)
        self.sample_rate = int(sample_rate or getattr(codec, "sample_rate", 0) or 0)
        self.channels = int(channels or getattr(codec, "channels", 0) or 0)
        self.hop = int(hop or getattr(codec, "hop", 0) or 0)
        self.label_names = list(cfg.label_names)
        self.latent_scale = float(cfg.latent_scale) if cfg.latent_scale > 0 else 1.0

    # ---------------------------------------------------------------------------------------------
    # plumbing

    def set_precision(self, precision: str = "float32") -> CAM:
        """Weights of the backbone and head in float32, bfloat16 (half the memory traffic per frame,
        which bounds batch-1 speed on CPU) or int8 (dynamically quantized Linear layers, CPU;
        arwave/models/quantize.py). The head's sampling state and the frames stay float32."""
        return self._set_precision(precision)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop if self.hop else float("nan")

    @property
    def default_k_inf(self) -> float:
        return self.cam.k_inf if self.cam.noise_aug and self.cam.k_max > 0 else 0.0

    def _levels(self, k: torch.Tensor) -> torch.Tensor:
        """Level embedding; a model trained without noise augmentation only ever saw k = 0."""
        if not (self.cam.noise_aug and self.cam.k_max > 0):
            k = torch.zeros_like(k)
        return self.level_embed(k)

    def embed_frames(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Context frames x (B, L, D) at noise levels k (B, L) -> backbone inputs (B, L, W)."""
        return self.in_proj(x) + self._levels(k)

    def _class_vectors(self, labels: torch.Tensor | None, batch: int, device) -> torch.Tensor | None:
        """(B, 1, W) embeddings of labels (−1 or None: the "no class" row), or None for an unconditional model."""
        if self.class_embed is None:
            return None
        null = self.class_embed.num_embeddings - 1
        if labels is None:
            labels = torch.full((batch,), null, device=device, dtype=torch.long)
        labels = torch.where(labels < 0, torch.full_like(labels, null), labels)
        return self.class_embed(labels)[:, None, :]

    def _start_tokens(self, batch: int) -> torch.Tensor:
        return self.start.view(1, 1, -1).expand(batch, 1, -1)

    # ---------------------------------------------------------------------------------------------
    # training

    def states(
        self, x: torch.Tensor, k: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced backbone states z (B, T, W) for context frames x (B, T, D) at levels k (B, T),
        x in model space (latents / latent_scale); z[:, t] depends on x[:, :t] and k[:, :t] only
        (frame T−1 is a target, never an input)."""
        B, T, _ = x.shape
        if k is None:
            k = x.new_zeros(B, T)
        u = torch.cat([self._start_tokens(B), self.embed_frames(x[:, :-1], k[:, :-1])], dim=1)
        cls = self._class_vectors(labels, B, x.device)
        if cls is not None:
            u = u + cls
        return self.norm(self.backbone(u, mask="causal"))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Training loss on clean codec latents x (B, T, D): scale to unit RMS, corrupt the context
        (noise augmentation), run the backbone, score every frame with the head against the CLEAN target."""
        cfg = self.cam
        x = x / self.latent_scale
        x_in, k = augment(x, cfg.k_max if cfg.noise_aug else 0.0, cfg.noise_aug_mode)
        if labels is not None and self.class_embed is not None and self.training and cfg.class_dropout > 0:
            drop = torch.rand(labels.shape, device=labels.device) < cfg.class_dropout
            labels = torch.where(drop, torch.full_like(labels, -1), labels)
        z = self.states(x_in, k, labels)
        return self.head.loss(z.reshape(-1, z.shape[-1]), x.reshape(-1, x.shape[-1]))

    # ---------------------------------------------------------------------------------------------
    # generation

    def _step(self, tokens: torch.Tensor, caches) -> torch.Tensor:
        """Feed tokens (B, L, W) through the cached backbone; z of the last position (B, W)."""
        return self.norm(self.backbone(tokens, mask="causal", caches=caches)[:, -1])

    def _class_index(self, class_label) -> int | None:
        if class_label is None:
            return None
        if self.class_embed is None:
            raise ArwaveError("this CAM is unconditional: it takes no class_label")
        return class_index(class_label, self.label_names, self.cam.num_classes)

    def _check_options(self, sampling: dict) -> None:
        unknown = set(sampling) - self.sampling_options
        if unknown:
            raise ArwaveError(
                f"cam does not take sampling option(s) {', '.join(sorted(unknown))} "
                f"(it takes {', '.join(sorted(self.sampling_options))})"
            )

    def frames(
        self,
        frames: int,
        num: int = 1,
        generator: torch.Generator | None = None,
        *,
        k_inf: float | None = None,
        head_steps: int | None = None,
        temperature: float = 1.0,
        class_label=None,
        cfg: float | None = None,
        prompt_latents: torch.Tensor | None = None,
        timings: dict | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield `frames` generated latent frames, each (num, D) float32 in the codec's latent space.
        All noise comes from `generator`. (Inside, frames are divided by `latent_scale`: unit RMS.)

        prompt_latents (D, Tp): codec latents to continue from (prefilled clean, k = 0).
        timings: if a dict is given, seconds spent in "backbone" and "head" are added to it."""
        c = self.cam
        if frames < 1 or num < 1:
            raise ArwaveError(f"need frames >= 1 and num >= 1, got frames={frames}, num={num}")
        k_inf = self.default_k_inf if k_inf is None else float(k_inf)
        if not 0.0 <= k_inf < 1.0:
            raise ArwaveError(f"k_inf must be in [0, 1), got {k_inf}")
        index = self._class_index(class_label)
        if cfg is None:  # the model's default guidance, for class-conditioned sampling only
            cfg = c.cfg if index is not None and c.head != "gmm" else 0.0
        cfg = float(cfg)
        if cfg and index is None:
            raise ArwaveError("cfg (classifier-free guidance) needs a class_label")
        if cfg and c.head == "gmm":
            raise ArwaveError("cam with the gmm head has no classifier-free guidance (use cfg=0)")
        return self._frames(frames, num, generator, k_inf, head_steps, temperature, index, cfg, prompt_latents, timings)

    def _frames(self, frames, num, generator, k_inf, head_steps, temperature, index, cfg, prompt_latents, timings):
        """The generation loop behind `frames` (arguments already checked there, so errors come early)."""
        c = self.cam
        device = self.start.device
        guided = cfg != 0
        B = 2 * num if guided else num  # rows [cond | uncond] share the context
        cls = None
        if index is not None:
            labels = torch.full((B,), index, dtype=torch.long, device=device)
            if guided:
                labels[num:] = -1
            cls = self._class_vectors(labels, B, device)
        clock = time.perf_counter if timings is not None else None

        def tick(name, t0):
            if clock is not None:
                timings[name] = timings.get(name, 0.0) + clock() - t0

        self.backbone.set_weight_layout(rows=B)  # memory order for B rows per step (values unchanged)
        # the start token stays at the head of the sliding window, as in every training window
        caches = self.backbone.new_cache(max_len=max(1, c.context - 1), sink=1)
        t0 = clock() if clock else 0
        tokens = self._start_tokens(B)
        if prompt_latents is not None:
            p = (
                (prompt_latents / self.latent_scale)
                .to(device=device, dtype=self.start.dtype)
                .t()[None]
                .expand(B, -1, -1)
            )
            p = p[:, -(c.context - 1) :]  # the prefill must fit in the attention span
            tokens = torch.cat([tokens, self.embed_frames(p, p.new_zeros(p.shape[:2]))], dim=1)
        if cls is not None:
            tokens = tokens + cls
        z = self._step(tokens, caches)
        tick("backbone", t0)
        level = self._levels(torch.full((B, 1), k_inf, device=device, dtype=self.start.dtype))
        for t in range(frames):
            t0 = clock() if clock else 0
            x = self.head.sample(
                z[:num],
                generator,
                temperature=temperature,
                steps=head_steps,
                z_uncond=z[num:] if guided else None,
                guidance=cfg,
            )
            tick("head", t0)
            yield x * self.latent_scale if self.latent_scale != 1.0 else x
            if t == frames - 1:
                break
            t0 = clock() if clock else 0
            ctx = renoise(x, k_inf, c.noise_aug_mode, generator)
            if guided:
                ctx = torch.cat([ctx, ctx])
            tok = self.in_proj(ctx.to(level.dtype))[:, None] + level
            if cls is not None:
                tok = tok + cls
            z = self._step(tok, caches)
            tick("backbone", t0)

    def _seconds_to_frames(self, seconds: float) -> tuple[int, int]:
        if not self.hop or not self.sample_rate:
            raise ArwaveError("this CAM does not know its codec's sample rate and hop")
        samples = int(round(seconds * self.sample_rate))
        if samples <= 0:
            raise ArwaveError(f"seconds must be > 0, got {seconds}")
        return math.ceil(samples / self.hop), samples

    def _prompt_latents(self, prompt) -> torch.Tensor | None:
        if prompt is None:
            return None
        if not torch.is_tensor(prompt) or prompt.dim() != 2 or prompt.shape[0] != self.channels:
            raise ArwaveError(
                f"prompt must be a waveform tensor (channels={self.channels}, samples) at "
                f"{self.sample_rate} Hz, got "
                f"{tuple(prompt.shape) if torch.is_tensor(prompt) else type(prompt).__name__}"
            )
        if prompt.shape[1] < self.hop:
            raise ArwaveError(f"prompt is shorter than one codec frame ({self.hop} samples)")
        device = self.start.device
        return self.codec.encode(prompt[None].to(device=device, dtype=torch.float32))[0]  # (D, Tp)

    @torch.inference_mode()
    def sample_latents(self, frames: int, num: int = 1, seed: int | None = None, **sampling) -> torch.Tensor:
        """Latents only (num, D, frames): no codec needed (unless a waveform `prompt` is given).
        Also takes `prompt_latents` (D, Tp)."""
        prompt_latents = sampling.pop("prompt_latents", None)
        self._check_options(sampling)
        if "prompt" in sampling:
            prompt_latents = self._prompt_latents(sampling.pop("prompt"))
        g = make_generator(seed, self.start.device)
        out = list(self.frames(frames, num, g, prompt_latents=prompt_latents, **sampling))
        return torch.stack(out, dim=-1)

    @torch.inference_mode()
    def generate(self, seconds: float, num: int = 1, seed: int | None = None, **sampling) -> torch.Tensor:
        """Waveform (num, channels, round(seconds·sample_rate)). With a `prompt` (channels, N) the
        result is the continuation only; the codec decodes it after the prompt's latents, so it joins on."""
        self._check_options(sampling)
        frames, samples = self._seconds_to_frames(seconds)
        prompt = self._prompt_latents(sampling.pop("prompt", None))
        g = make_generator(seed, self.start.device)
        z = torch.stack(list(self.frames(frames, num, g, prompt_latents=prompt, **sampling)), dim=-1)
        skip = 0
        if prompt is not None:
            z = torch.cat([prompt[None].expand(num, -1, -1).to(z.dtype), z], dim=-1)
            skip = prompt.shape[-1] * self.hop
        audio = self.codec.decode(z)
        return audio[..., skip : skip + samples].float()

    @torch.inference_mode()
    def stream(
        self, seconds: float, seed: int | None = None, *, pipeline: bool | None = None, **sampling
    ) -> Iterator[torch.Tensor]:
        """Yield audio chunks (channels, n·hop) as frames are generated and decoded (the last chunk is
        cut to length). Causal codecs decode through `codec.streaming_decoder()`, which is exact for any
        number of frames per step; otherwise each frame is decoded from a window of the last
        `stream_window` frames.

        pipeline=True: decoding runs on a second thread, overlapped with generating the next frames
        (torch releases the GIL inside its kernels), so a frame costs max(generate, decode) rather
        than their sum on a machine with two free cores. The default (None) is True when torch's
        intra-op threads leave a core free, else False (a second thread would only contend). The
        decoder's one-time preparation (weight norm folded, prompt primed) overlaps the first frame's
        generation. The first frame is decoded alone (first audio as early as possible); after it,
        frames are decoded in blocks that grow with the audio already handed out (a quarter of it, up
        to `stream_block_max` frames): one batched decode costs far less per frame than frame-by-frame,
        and two threads contend less for the interpreter (docs/benchmarks.md). The schedule is fixed, so
        the same seed gives the same samples. pipeline=False decodes the same blocks on the calling
        thread (the same samples)."""
        self._check_options(sampling)
        frames, samples = self._seconds_to_frames(seconds)
        prompt = self._prompt_latents(sampling.pop("prompt", None))
        g = make_generator(seed, self.start.device)
        prepare, decoder, batched = self._frame_decoder(prompt)

        def decode(xs: list[torch.Tensor]):
            with torch.inference_mode():
                return decoder(torch.stack(xs, dim=-1))[0].float()

        emitted = 0

        def cut(chunk):
            nonlocal emitted
            chunk = chunk[:, : samples - emitted]
            emitted += chunk.shape[-1]
            return chunk

        latents = self.frames(frames, 1, g, prompt_latents=prompt, **sampling)

        def blocks() -> Iterator[list[torch.Tensor]]:
            """The frames in decoder steps: the first frame alone (first audio as early as possible),
            then blocks of a quarter of the frames handed out so far, up to `stream_block_max`. A fixed
            schedule, not a timing-dependent one, so that the same seed gives the same samples (a
            block's decode rounds differently from frame-by-frame), with or without the thread. A block
            is at most a quarter of the audio already out, so a consumer playing in real time stays fed
            as long as generation runs comfortably faster than real time."""
            handed, waiting = 0, []
            for x in latents:
                waiting.append(x)
                size = max(1, min(self.stream_block_max, handed // 4)) if batched and handed else 1
                if len(waiting) >= size:
                    handed += len(waiting)
                    yield waiting
                    waiting = []
            if waiting:
                yield waiting

        if pipeline is None:  # a decoding thread pays off only with a core to spare for it
            pipeline = torch.get_num_threads() < (os.cpu_count() or 1)
        if not pipeline:
            prepare()
            for xs in blocks():
                yield cut(decode(xs))
            return

        def prepare_on_thread():
            with torch.inference_mode():
                prepare()

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cam-decode") as pool:
            pending = pool.submit(prepare_on_thread)  # jobs run in order on the one worker
            first = True
            for xs in blocks():
                job = pool.submit(decode, xs)  # decodes while the loop generates the next block
                if first:  # latency to first audio: wait for it now
                    first = False
                    pending.result()
                    yield cut(job.result())
                    pending = None
                    continue
                if pending is not None:
                    yield cut(pending.result())
                pending = job
            if pending is not None:
                yield cut(pending.result())

    stream_block_max = 8  # most frames per decoder step in `stream` (blocks grow to it as audio is handed out)

    def _frame_decoder(self, prompt: torch.Tensor | None = None):
        """(prepare, step, batched): `step` maps frames (1, D, n) to audio (1, C, n·hop); `prepare()` must
        run once before the first step: it readies the decoder and primes it with the prompt's latents.
        batched: whether a step may take several frames at once (a causal streaming decoder);
        otherwise it takes one frame at a time."""
        codec = self.codec
        make = getattr(codec, "streaming_decoder", None)
        if make is not None and getattr(codec, "causal", True):
            dec = make()

            def prepare():
                if hasattr(dec, "reset"):
                    dec.reset()
                if hasattr(dec, "prepare"):
                    dec.prepare()
                for t in range(prompt.shape[-1] if prompt is not None else 0):
                    dec.step(prompt[None, :, t : t + 1])

            return prepare, dec.step, True
        window = max(1, int(self.cam.stream_window))
        history = [] if prompt is None else [prompt[None, :, t : t + 1] for t in range(prompt.shape[-1])]

        def step(frame):  # non-causal codec: decode a window, keep its last hop
            history.append(frame)
            del history[:-window]
            return codec.decode(torch.cat(history, dim=-1))[..., -self.hop :]

        return (lambda: None), step, False
