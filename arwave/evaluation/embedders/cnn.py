"""The VGG-style block of PANNs' CNN14, shared by it and by aisfx (built on the same recipe).

Two 3x3 convolutions, each with batch norm and ReLU, then pooling: average pooling in CNN14, max
pooling in aisfx. The parameter names (conv1, conv2, bn1, bn2) are those of both checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, pooling: str):
        super().__init__()
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        self.pool = F.avg_pool2d if pooling == "avg" else F.max_pool2d
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.pool(x, pool) if pool > 1 else x
