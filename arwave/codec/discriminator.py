"""Multi-scale STFT discriminator (Encodec / SAT).

Each sub-discriminator looks at one complex STFT (window = n_fft, hop): real and imaginary parts of
every audio channel, divided by sqrt(n_fft / 2), stacked as 2·C input channels over (time, frequency).
Layers (LeakyReLU 0.2 after each but the last, weight norm everywhere):
    Conv2d (3, 9)                                     2C -> F
    3 x Conv2d (3, 9), stride (1, 2), time dilation 1, 2, 4   F -> F
    Conv2d (3, 3)                                     F -> F
    Conv2d (3, 3) post                                F -> 1 logit map
It returns the logit map and the 5 intermediate feature maps (for feature matching).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from arwave.codec.losses import stft

MSSTFT_RESOLUTIONS = ((1024, 256), (2048, 512), (512, 128), (256, 64), (128, 32))  # (n_fft, hop), SAT


def _conv2d(cin: int, cout: int, kernel: tuple[int, int], stride=(1, 1), dilation=(1, 1)) -> nn.Module:
    padding = ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)
    return weight_norm(nn.Conv2d(cin, cout, kernel, stride=stride, dilation=dilation, padding=padding))


class STFTDiscriminator(nn.Module):
    def __init__(self, channels: int, n_fft: int, hop: int, filters: int = 32, dilations=(1, 2, 4)):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        convs = [_conv2d(2 * channels, filters, (3, 9))]
        convs += [_conv2d(filters, filters, (3, 9), stride=(1, 2), dilation=(d, 1)) for d in dilations]
        convs += [_conv2d(filters, filters, (3, 3))]
        self.convs = nn.ModuleList(convs)
        self.post = _conv2d(filters, 1, (3, 3))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = stft(audio, self.n_fft, self.hop, center=False) / (self.n_fft / 2) ** 0.5  # (B, C, F, T)
        x = torch.cat([spec.real, spec.imag], dim=1).transpose(2, 3)  # (B, 2C, T, F)
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        return self.post(x), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    """forward(audio (B, C, N)) -> (list of 5 logit maps, list of 5 lists of 5 feature maps)."""

    def __init__(self, channels: int, filters: int = 32, resolutions=MSSTFT_RESOLUTIONS):
        super().__init__()
        self.discs = nn.ModuleList(STFTDiscriminator(channels, n, h, filters) for n, h in resolutions)

    def forward(self, audio: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, feats = [], []
        for d in self.discs:
            logit, feat = d(audio)
            logits.append(logit)
            feats.append(feat)
        return logits, feats
