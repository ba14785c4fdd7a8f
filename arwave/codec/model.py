"""The Codec: encoder -> bottleneck (continuous | msrq | rvq) -> decoder (SEANet or spectral).

What other code calls (shapes: audio (B, C, N); frames T = ceil(N / hop)):
    codec(audio)                 -> CodecOutput (training/validation pass, audio trimmed to N)
    codec.encode(audio)          -> continuous: latents (B, D, T) float, unit scale
                                    msrq: list of K long tensors (B, W, s_k), W windows of T_w frames
                                    rvq: codes (B, N_levels, T) long
    codec.decode(tokens)         -> audio (B, C, frames * hop)
    codec.encode_latents(audio)  -> the continuous latent before quantization (continuous: = encode)
    codec.decode_latents(z)      -> audio from continuous-space latents (continuous: unit-scale
                                    latents; msrq/rvq: ẑ, e.g. the AAR sampler's accumulated ẑ)
    codec.reconstruct(audio)     -> decode(encode(audio)) trimmed to N
    codec.streaming_decoder()    -> StreamingDecoder with .step(z (B, D, n)) -> (B, C, n * hop), .reset(),
                                    .prepare() (fold the weight norm now rather than in the first step)
    codec.msrq                   -> the MultiScaleResidualVQ (AAR's teacher forcing / sampling helpers)

Long audio is processed in chunks of frames with `context` frames of look-around on each side and a
raised-cosine crossfade of `fade` frames between consecutive chunks (no seams, bounded memory). A causal
decoder is instead run through its streaming path chunk by chunk, which is exact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.codec.bottlenecks import BOTTLENECKS, build_bottleneck
from arwave.codec.msrq import MultiScaleResidualVQ
from arwave.codec.seanet import SEANetDecoder, SEANetEncoder
from arwave.codec.spectral import SpectralDecoder, SpectralEncoder
from arwave.config import ConfigError, OneOf, at_least, between
from arwave.errors import ArwaveError


@dataclass
class CodecConfig:
    bottleneck: str = "msrq"  # continuous | msrq | rvq
    architecture: str = "seanet"  # seanet (waveform convs, SPEC) | spectral (STFT + iSTFT head)
    # audio and encoder/decoder (SEANet; for spectral: strides = (STFT hop, learned down-sampling...))
    sample_rate: int = 24000
    channels: int = 1
    strides: tuple[int, ...] = (2, 4, 5, 8)  # hop = product (320 -> 75 frames/s at 24 kHz)
    width: int = 32  # channels of the first conv, doubled at every stride
    max_channels: int = 1024
    residual_layers: int = 1
    lstm_layers: int = 2  # 0 = no LSTM
    causal: bool = False  # left padding only (needed for streaming decoding)
    spectral_dim: int = 256  # spectral: ConvNeXt width
    spectral_blocks: int = 4  # spectral: ConvNeXt blocks per side
    latent_dim: int = 128  # D: quantized dim (msrq/rvq) or latent dim (continuous)
    window_frames: int = 75  # training crop in frames; msrq quantizes windows of T = this
    # msrq (SAT)
    num_scales: int = 16  # K; scales = msrq_scales(window_frames, K)
    num_phi: int = 6
    phi_kernel: int = 9
    shared_codebook: bool = False
    per_scale_ste: bool = False  # SAT's straight-through per scale (encoder gradient × K) instead of VAR's one
    # rvq
    rvq_levels: int = 10
    # EMA codebooks (msrq and rvq)
    codebook_size: int = 1024
    ema_decay: float = 0.99
    dead_code_threshold: float = 2.0
    kmeans_iters: int = 50
    # continuous (VAE)
    kl_weight: float = 1e-4
    # discriminator and loss weights (SAT: 3·adv + 3·feat + 0.1·wave + 1·mel + 1·vq)
    disc_filters: int = 32
    disc_start: int = 0  # adversarial terms and critic updates start at this step
    disc_skip_every: int = 3  # SAT skips the critic update when step % 3 == 0 (0 = never)
    w_adv: float = 3.0
    w_feat: float = 3.0
    w_wave: float = 0.1
    w_mel: float = 1.0
    w_loud: float = 0.0  # frame-loudness L1 in bels: log-domain losses alone leave the output quieter
    w_vq: float = 1.0
    mel_bins: int = 64

    LIMITS: ClassVar[dict] = {
        "bottleneck": OneOf(("continuous", "msrq", "rvq")),
        "architecture": OneOf(("seanet", "spectral")),
        "sample_rate": at_least(1),
        "channels": at_least(1),
        "strides": at_least(1),
        "width": at_least(1),
        "max_channels": at_least(1),
        "latent_dim": at_least(1),
        "window_frames": at_least(1),
        "num_scales": at_least(1),
        "phi_kernel": at_least(1),
        "rvq_levels": at_least(1),
        "codebook_size": at_least(2),
        "ema_decay": between(0, 1, hi_open=True),
        "mel_bins": at_least(1),
        "disc_filters": at_least(1),
    }

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    @property
    def window_seconds(self) -> float:
        return self.window_frames * self.hop / self.sample_rate


def check_config(cfg: CodecConfig) -> None:
    if cfg.bottleneck not in ("continuous", "msrq", "rvq"):
        raise ConfigError(f"codec: bottleneck must be continuous, msrq or rvq, got {cfg.bottleneck!r}")
    if cfg.architecture not in ("seanet", "spectral"):
        raise ConfigError(f"codec: architecture must be seanet or spectral, got {cfg.architecture!r}")
    if cfg.architecture == "spectral" and cfg.strides and cfg.strides[0] < 2:
        raise ConfigError(f"codec: a spectral codec's first stride is its STFT hop (>= 2), got {cfg.strides}")
    if not cfg.strides or any(s < 1 for s in cfg.strides):
        raise ConfigError(f"codec: strides must be positive integers, got {cfg.strides}")
    problem = BOTTLENECKS[cfg.bottleneck].check(cfg)
    if problem:
        raise ConfigError(f"codec: {problem}")


@dataclass(frozen=True)
class CodecFacts:
    """Every fact about a codec that an AR model needs, read once (`Codec.facts()`)."""

    bottleneck: str  # continuous | msrq | rvq
    sample_rate: int
    channels: int
    hop: int  # audio samples per latent frame
    latent_dim: int  # channels of encode_latents / decode_latents (msrq: the quantized dim C)
    window_frames: int  # training window (msrq: T, the frames quantized together)
    scales: tuple[int, ...]  # msrq: token-map sizes s_1..s_K; () otherwise
    levels: int  # rvq: residual levels; 0 otherwise
    codebook_size: int  # the VQs: codes per codebook; 0 for continuous
    tokens_per_second: float  # integer tokens per second (continuous: latent vectors per second)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def seconds(self, frames: int) -> float:
        return frames * self.hop / self.sample_rate


class CodecOutput(NamedTuple):
    audio: torch.Tensor  # (B, C, N) reconstruction, same length as the input
    z: torch.Tensor  # (B, in_dim, T) encoder output
    z_hat: torch.Tensor  # (B, out_dim, T) decoder input
    loss: torch.Tensor  # bottleneck regulariser (unweighted: KL or VQ loss)
    codes: Any  # None | list of (B, W, s_k) | (B, N, T)
    stats: dict[str, float]


def _fade_weights(length: int, fade: int, fade_in: bool, fade_out: bool, device, dtype) -> torch.Tensor:
    """Ones with a raised-cosine ramp: fade-in sin², fade-out cos², so overlapping ramps sum to 1."""
    w = torch.ones(length, device=device, dtype=dtype)
    if fade > 0:
        t = (torch.arange(fade, device=device, dtype=torch.float64) + 0.5) / fade
        ramp = torch.sin(0.5 * math.pi * t).pow(2).to(dtype)
        if fade_in:
            w[:fade] = ramp
        if fade_out:
            w[length - fade :] = ramp.flip(0)
    return w


def run_chunked(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    in_rate: int,
    out_rate: int,
    chunk: int,
    context: int,
    fade: int,
) -> torch.Tensor:
    """Apply a frame-synchronous network `fn` ((B, C, n·in_rate) -> (B, C', n·out_rate)) to a long input
    chunk by chunk. Chunk i keeps frames [s_i, s_i + chunk) computed with `context` extra frames on each
    side; consecutive kept regions overlap by `fade` frames and are crossfaded (weights sum to 1)."""
    T = x.shape[-1] // in_rate
    if chunk <= 0 or T <= chunk:
        return fn(x)
    fade = min(fade, chunk - 1)
    step = chunk - fade
    out, starts = None, list(range(0, T - fade, step))
    for i, s in enumerate(starts):
        e = min(s + chunk, T)
        a, b = max(0, s - context), min(T, e + context)
        y = fn(x[..., a * in_rate : b * in_rate])
        y = y[..., (s - a) * out_rate : (e - a) * out_rate]
        if out is None:
            out = y.new_zeros(*y.shape[:-1], T * out_rate)
        w = _fade_weights(y.shape[-1], fade * out_rate, fade_in=i > 0, fade_out=e < T, device=y.device, dtype=y.dtype)
        out[..., s * out_rate : e * out_rate] += y * w
    return out


class StreamingDecoder:
    """Frame-by-frame decoding for a causal codec with cached state (conv left contexts, transposed-conv
    overlaps, LSTM state). `step(z)` takes n >= 1 new latent frames (B, D, n), in the space `decode_latents`
    takes, and returns the n·hop samples they complete; the concatenation equals the offline decode."""

    def __init__(self, codec: Codec):
        if not codec.causal:
            raise ArwaveError("streaming decoding needs a causal codec (train it with --set causal=true)")
        self.codec = codec
        self.hop = codec.hop
        self.cache: dict = {}

    @torch.no_grad()
    def step(self, z: torch.Tensor) -> torch.Tensor:
        return self.codec.decoder.step(self.codec.bottleneck.to_decoder(z), self.cache)

    def reset(self) -> None:
        self.cache = {}

    @torch.no_grad()
    def prepare(self) -> StreamingDecoder:
        """Compute the decoder's inference weights now (weight norm folded, `seanet.InferenceWeight`)
        instead of in the first `step`: ~25 ms for the paper codec, once per codec until its weights
        change. `CAM.stream` calls it on the decoding thread while the first frame is generated."""
        self.codec.decoder.prepare_inference()
        return self


class Codec(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        check_config(cfg)
        self.cfg = cfg
        self.bottleneck = build_bottleneck(cfg)
        if cfg.architecture == "spectral":
            net = dict(strides=tuple(cfg.strides), dim=cfg.spectral_dim, blocks=cfg.spectral_blocks)
            self.encoder = SpectralEncoder(cfg.channels, self.bottleneck.in_dim, **net)
            self.decoder = SpectralDecoder(cfg.channels, self.bottleneck.out_dim, **net)
            if self.bottleneck.in_dim == 2 * cfg.latent_dim:  # a posterior (mean, log-variance)
                self.encoder.init_posterior(cfg.latent_dim)
            return
        net = dict(
            strides=tuple(cfg.strides),
            width=cfg.width,
            max_channels=cfg.max_channels,
            residual_layers=cfg.residual_layers,
            lstm_layers=cfg.lstm_layers,
            causal=cfg.causal,
        )
        self.encoder = SEANetEncoder(cfg.channels, self.bottleneck.in_dim, **net)
        self.decoder = SEANetDecoder(cfg.channels, self.bottleneck.out_dim, **net)

    # -- facts ---------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def channels(self) -> int:
        return self.cfg.channels

    @property
    def kind(self) -> str:
        """The bottleneck: 'continuous', 'msrq' or 'rvq'."""
        return self.cfg.bottleneck

    @property
    def causal(self) -> bool:
        """Whether the decoder is causal (streamable); the spectral decoder always is."""
        return self.cfg.causal or self.cfg.architecture == "spectral"

    @property
    def hop(self) -> int:
        return math.prod(self.cfg.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def latent_dim(self) -> int:
        """Channels of the latents AR models see (encode_latents / decode_latents)."""
        return self.bottleneck.out_dim

    @property
    def window_frames(self) -> int:
        """Training window in frames (for msrq: T, the frames quantized together)."""
        return self.cfg.window_frames

    @property
    def window_samples(self) -> int:
        return self.cfg.window_frames * self.hop

    @property
    def msrq(self) -> MultiScaleResidualVQ:
        if not hasattr(self.bottleneck, "msrq"):
            raise ArwaveError(f"this codec has a {self.kind!r} bottleneck, not msrq")
        return self.bottleneck.msrq

    @property
    def tokens_per_second(self) -> float:
        """Integer tokens per second (msrq: Σ s_k per window; rvq: levels · frame rate); for the
        continuous codec, latent vectors per second."""
        return self.bottleneck.tokens_per_frame * self.frame_rate

    def facts(self) -> CodecFacts:
        b = self.bottleneck
        return CodecFacts(
            bottleneck=b.name,
            sample_rate=int(self.sample_rate),
            channels=int(self.channels),
            hop=int(self.hop),
            latent_dim=int(self.latent_dim),
            window_frames=int(self.window_frames),
            scales=tuple(b.scales),
            levels=int(b.levels),
            codebook_size=int(b.codebook_size),
            tokens_per_second=float(self.tokens_per_second),
        )

    def _unit(self) -> int:
        """Audio is padded to a multiple of this many samples (a window for msrq, else a hop)."""
        return self.bottleneck.unit_frames * self.hop

    def _pad(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() == 2:
            audio = audio[None]
        if audio.dim() != 3 or audio.shape[1] != self.channels:
            raise ArwaveError(f"codec expects audio (B, {self.channels}, N), got {tuple(audio.shape)}")
        unit = self._unit()
        extra = (-audio.shape[-1]) % unit
        return F.pad(audio, (0, extra)) if extra else audio

    def _chunking(self, chunk_frames: int | None) -> tuple[int, int, int]:
        w = self.window_frames
        chunk = 4 * w if chunk_frames is None else int(chunk_frames)
        return chunk, max(2, w // 4), max(1, min(w // 8, chunk // 4)) if chunk > 0 else 0

    # -- training ------------------------------------------------------------------------------------
    def forward(self, audio: torch.Tensor) -> CodecOutput:
        n = audio.shape[-1]
        x = self._pad(audio)
        z = self.encoder(x)
        with torch.autocast(device_type=z.device.type, enabled=False):
            out = self.bottleneck(z.float())
        y = self.decoder(out.z_hat.to(z.dtype))[..., :n]
        return CodecOutput(y, z, out.z_hat, out.loss, out.codes, out.stats)

    # -- inference -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _encoder_out(self, audio: torch.Tensor, chunk_frames: int | None) -> torch.Tensor:
        chunk, context, fade = self._chunking(chunk_frames)
        return run_chunked(self.encoder, self._pad(audio), self.hop, 1, chunk, context, fade)

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, chunk_frames: int | None = None):
        """Audio (B, C, N) -> tokens (see the module docstring). chunk_frames=0 disables chunking."""
        return self.bottleneck.encode(self._encoder_out(audio, chunk_frames).float())

    @torch.no_grad()
    def encode_latents(self, audio: torch.Tensor, chunk_frames: int | None = None) -> torch.Tensor:
        """Continuous latents (B, D, T): unit-scale means for the continuous codec; the encoder output
        before quantization for msrq / rvq."""
        return self.bottleneck.latents(self._encoder_out(audio, chunk_frames).float())

    @torch.no_grad()
    def _decoder_out(self, h: torch.Tensor, chunk_frames: int | None) -> torch.Tensor:
        chunk, context, fade = self._chunking(chunk_frames)
        if chunk <= 0 or h.shape[-1] <= chunk:
            return self.decoder(h)
        if self.causal:  # exact: stream chunk by chunk
            cache: dict = {}
            return torch.cat(
                [self.decoder.step(h[..., i : i + chunk], cache) for i in range(0, h.shape[-1], chunk)], dim=-1
            )
        return run_chunked(self.decoder, h, 1, self.hop, chunk, context, fade)

    @torch.no_grad()
    def decode(self, tokens, chunk_frames: int | None = None) -> torch.Tensor:
        """Tokens from `encode` -> audio (B, C, frames · hop)."""
        return self._decoder_out(self.bottleneck.decode(tokens), chunk_frames)

    @torch.no_grad()
    def decode_latents(self, z: torch.Tensor, chunk_frames: int | None = None) -> torch.Tensor:
        """Continuous-space latents (B, D, T) -> audio (B, C, T · hop)."""
        return self._decoder_out(self.bottleneck.to_decoder(z.float()), chunk_frames)

    @torch.no_grad()
    def reconstruct(self, audio: torch.Tensor, chunk_frames: int | None = None) -> torch.Tensor:
        n = audio.shape[-1]
        return self.decode(self.encode(audio, chunk_frames), chunk_frames)[..., :n]

    def streaming_decoder(self) -> StreamingDecoder:
        return StreamingDecoder(self)


# ---------------------------------------------------------------------------------------------------
# encoded files (what `arwave encode` writes and `arwave decode` reads)

ENCODED_FORMAT = "arwave-codec-tokens/1"


def save_encoded(path: str | Path, codec: Codec, tokens, num_samples: int, extra: dict | None = None) -> None:
    """safetensors file: `latents` (continuous), `codes` (rvq) or `codes.<k>` (msrq) + metadata."""
    from arwave.checkpoint import save_tensors

    tensors = codec.bottleneck.to_tensors(tokens)
    meta = {
        "format": ENCODED_FORMAT,
        "bottleneck": codec.kind,
        "sample_rate": codec.sample_rate,
        "channels": codec.channels,
        "hop": codec.hop,
        "num_samples": int(num_samples),
        "window_frames": codec.window_frames,
        "latent_dim": codec.latent_dim,
        **(extra or {}),
    }
    save_tensors(path, {k: v.cpu() for k, v in tensors.items()}, metadata={k: json.dumps(v) for k, v in meta.items()})


def load_encoded(path: str | Path) -> tuple[Any, dict]:
    """(tokens, metadata) from a file written by `save_encoded`."""
    from safetensors import safe_open

    from arwave.checkpoint import load_tensors

    tensors = load_tensors(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    except Exception as err:
        raise ArwaveError(f"{path}: unreadable metadata ({err})") from None
    if meta.get("format") != ENCODED_FORMAT:
        raise ArwaveError(f"{path}: not an arwave encoded file (format {meta.get('format')!r})")
    n = meta.get("num_samples")
    if meta.get("bottleneck") not in BOTTLENECKS or not isinstance(n, int) or n < 1:
        raise ArwaveError(f"{path}: damaged metadata (needs bottleneck {'/'.join(BOTTLENECKS)} and num_samples >= 1)")
    kind = BOTTLENECKS[meta["bottleneck"]]
    try:
        tokens = kind.from_tensors(tensors)
    except KeyError:
        tokens = None
    if tokens is None or sorted(kind.to_tensors(tokens)) != sorted(tensors):
        raise ArwaveError(
            f"{path}: a {meta['bottleneck']} file should hold {kind.tensor_names}, found {', '.join(sorted(tensors))}"
        )
    return tokens, meta
