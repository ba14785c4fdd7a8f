"""Spectral encoder / decoder: an STFT front end and a Vocos-style iSTFT head around ConvNeXt stacks.

Why: on a CPU the SEANet waveform networks spend their time on high-rate convolutions, and at large
hops they collapse to one constant output for many minutes (docs/codec.md, "Choosing the recipe").
Networks that run at frame rate and let an (i)STFT do the last step buy far more parameters per
CPU-second and learn input-specific reconstructions within minutes (Vocos, arXiv 2306.00814;
music2latent's STFT-hop x learned-downsampling factorisation for hop 4096).

Layout, for `strides = (h, r_1, ..., r_m)`: STFT hop h, window n = 4·h (periodic Hann), and a learned
down-sampling by r = ∏ r_i, so the codec hop is h·r (the same `hop = prod(strides)` rule as SEANet).

    encoder: audio -> STFT frames f (input samples [f·h, f·h + n), no centring)
             -> |X|^½·e^{i∠X} as real/imag channels -> conv k7 -> ConvNeXt x B -> conv k=r stride r
             -> LayerNorm -> Linear(out_dim)                                  (non-causal, looks ahead n)
    decoder: z -> Linear(dim) -> transposed conv k=r stride r (latent t -> STFT frames t·r .. t·r+r-1)
             -> causal ConvNeXt x B -> LayerNorm -> Linear -> log|S|, ∠S per bin and channel
             -> frames irfft(|S|·e^{i∠S})·w -> overlap-add at hop h            (causal)

Output sample s depends only on STFT frames f <= s / h, so the decoder is causal in latent frames:
`step(z, cache)` keeps each depthwise conv's left context and the overlap-add tail (n − h samples) and
returns exactly n_frames·hop samples, equal to the offline pass. The first n − h samples of a stream
are covered by fewer windows (a 3-hop fade-in at the very start), the same offline and streaming.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_LOG_MAGNITUDE = 5.0  # |S| <= e^5 ≈ 148 (Vocos clips at 1e2): no overflow early in training


class ConvNeXtBlock(nn.Module):
    """x + γ·Linear(GELU(Linear(LayerNorm(dwconv_k(x))))) (ConvNeXt as in Vocos), on (B, D, T)."""

    def __init__(self, dim: int, mult: int = 3, kernel: int = 7, causal: bool = False, layer_scale: float = 0.1):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, mult * dim)
        self.down = nn.Linear(mult * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))
        self.context = kernel - 1
        self.causal = causal

    def _mix(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        h = self.down(F.gelu(self.up(self.norm(h.transpose(1, 2)))))
        return x + (self.gamma * h).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.context, 0) if self.causal else (self.context // 2, self.context - self.context // 2)
        return self._mix(x, self.dwconv(F.pad(x, pad)))

    def step(self, x: torch.Tensor, cache: dict) -> torch.Tensor:
        """Causal streaming: prepend the last `kernel − 1` inputs (zeros at the start)."""
        assert self.causal, "streaming needs a causal block"
        past = cache.get(self)
        if past is None:
            past = x.new_zeros(x.shape[0], x.shape[1], self.context)
        xx = torch.cat([past, x], dim=-1)
        cache[self] = xx[..., xx.shape[-1] - self.context :]
        return self._mix(x, self.dwconv(xx))


def _split_strides(strides: Sequence[int]) -> tuple[int, int]:
    """(STFT hop h, learned down-sampling r) from `strides = (h, r_1, ...)`."""
    return int(strides[0]), int(math.prod(strides[1:]))


class SpectralEncoder(nn.Module):
    def __init__(self, channels: int, out_dim: int, strides: Sequence[int], dim: int = 256, blocks: int = 4):
        super().__init__()
        self.stft_hop, self.down = _split_strides(strides)
        self.n_fft = 4 * self.stft_hop
        bins = self.n_fft // 2 + 1
        self.channels = channels
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.inp = nn.Conv1d(2 * channels * bins, dim, 7, padding=3)
        self.blocks = nn.Sequential(*[ConvNeXtBlock(dim, layer_scale=1.0 / blocks) for _ in range(blocks)])
        self.downsample = nn.Conv1d(dim, dim, self.down, stride=self.down) if self.down > 1 else nn.Identity()
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, out_dim)

    def init_posterior(self, latent_dim: int, logvar: float = -6.0) -> None:
        """For a VAE bottleneck (channels [μ, log σ²]): start with σ = e^{logvar/2} small, not 1. With
        σ ≈ 1 and |μ| ≈ 0.5 the first latents are mostly noise, the decoder learns to ignore them and the
        codec collapses to one output (seen at hop 2048: input-specificity ratio 1.0 after 1000 steps)."""
        with torch.no_grad():
            self.out.bias[latent_dim : 2 * latent_dim].fill_(logvar)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, C, N) -> (B, 2·C·bins, N / h): amplitude-compressed complex STFT, |X|^½·e^{i∠X}."""
        B, C, N = audio.shape
        x = F.pad(audio.reshape(B * C, N).float(), (0, self.n_fft - self.stft_hop))
        spec = torch.stft(x, self.n_fft, self.stft_hop, window=self.window, center=False, return_complex=True)
        spec = spec / math.sqrt(self.n_fft)
        spec = spec * spec.abs().clamp_min(1e-8).pow(-0.5)
        feats = torch.cat([spec.real, spec.imag], dim=1)  # (B·C, 2·bins, T_f)
        return feats.reshape(B, C * feats.shape[1], feats.shape[-1]).to(audio.dtype)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        h = self.downsample(self.blocks(self.inp(self.features(audio))))
        return self.out(self.norm(h.transpose(1, 2))).transpose(1, 2)


class SpectralDecoder(nn.Module):
    def __init__(self, channels: int, in_dim: int, strides: Sequence[int], dim: int = 256, blocks: int = 4):
        super().__init__()
        self.stft_hop, self.up = _split_strides(strides)
        self.n_fft = 4 * self.stft_hop
        self.bins = self.n_fft // 2 + 1
        self.channels = channels
        self.hop = self.stft_hop * self.up
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.inp = nn.Linear(in_dim, dim)
        self.upsample = nn.ConvTranspose1d(dim, dim, self.up, stride=self.up) if self.up > 1 else nn.Identity()
        self.blocks = nn.ModuleList([ConvNeXtBlock(dim, causal=True, layer_scale=1.0 / blocks) for _ in range(blocks)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 2 * channels * self.bins)
        with torch.no_grad():  # start quiet (|S| ≈ e^-4), not at full scale
            self.head.bias.view(channels, 2, self.bins)[:, 0].fill_(-4.0)

    def _frames(self, z: torch.Tensor, cache: dict | None) -> torch.Tensor:
        """Latents (B, in_dim, T) -> windowed time-domain STFT frames (B·C, n_fft, T·r)."""
        h = self.upsample(self.inp(z.transpose(1, 2)).transpose(1, 2))
        for block in self.blocks:
            h = block(h) if cache is None else block.step(h, cache)
        out = self.head(self.norm(h.transpose(1, 2)))  # (B, T_f, 2·C·bins)
        B, Tf = out.shape[:2]
        out = (
            out.view(B, Tf, self.channels, 2, self.bins)
            .permute(0, 2, 1, 3, 4)
            .reshape(B * self.channels, Tf, 2, self.bins)
        )
        magnitude = out[:, :, 0].clamp(max=MAX_LOG_MAGNITUDE).exp()
        phase = out[:, :, 1]
        frames = torch.fft.irfft(torch.polar(magnitude.float(), phase.float()), n=self.n_fft, norm="ortho")
        return (frames * self.window).transpose(1, 2)  # (B·C, n_fft, T_f)

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """(B·C, n_fft, T_f) -> (B·C, (T_f − 1)·h + n_fft)."""
        length = (frames.shape[-1] - 1) * self.stft_hop + self.n_fft
        return F.fold(frames, (1, length), (1, self.n_fft), stride=(1, self.stft_hop)).flatten(1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, in_dim, T) -> (B, C, T·hop)."""
        B, T = z.shape[0], z.shape[-1]
        y = self._overlap_add(self._frames(z, None))[:, : T * self.hop]
        return y.view(B, self.channels, T * self.hop).to(z.dtype)

    def prepare_inference(self) -> None:
        """Nothing to fold (no weight norm); kept for the StreamingDecoder interface."""

    def step(self, z: torch.Tensor, cache: dict[Any, Any]) -> torch.Tensor:
        """n new latent frames (B, in_dim, n) -> the n·hop samples they complete (equal to `forward`)."""
        B, n = z.shape[0], z.shape[-1]
        y = self._overlap_add(self._frames(z, cache))
        tail = cache.get(self)
        if tail is not None:
            y[:, : tail.shape[-1]] += tail
        cache[self] = y[:, n * self.hop :]
        return y[:, : n * self.hop].reshape(B, self.channels, n * self.hop).to(z.dtype)
