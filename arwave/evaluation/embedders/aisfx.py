"""aisfx: the pretrained sound-effects CNN of Ma & Lerch (ISMIR 2022), whose weights ship in the
`aisfx` wheel (`aisfx/models/checkpoint.pth`, 6.2 M parameters). Our own re-implementation of its
network (same parameter names, so the weights load) and of its input features, in torch.

Features (the package's librosa path, `aisfx.spectrogram.spectrogram_librosa`, with `aisfx.inference`):
    mono (channel mean), resampled to 44.1 kHz, peak-normalised (x / max|x|)
    power STFT: n_fft = win = 2048, hop = 1024, periodic Hann, centred with zero padding (librosa >= 0.9)
    96 mel bands, 0 - 22050 Hz, HTK mel formula (htk=True), each filter summing to one (norm=1)
    log10(1e4 * mel + 1), then divided by 9.4578 (the package's 'original' min-max normalisation)
    blocks of 100 frames (2.32 s) with a hop of 50 frames (1.16 s), a trailing partial block dropped;
    a clip shorter than one block is zero-padded to one block (silence in this log domain)
Network: 4 conv blocks (2 x [3x3 conv, BN, ReLU] + 2x2 max pool, the last without pooling), 64-128-
256-512 channels, mean over frequency, max over time -> 512-d embedding per block. Nine dataset heads
(512-256-128-K MLPs); `ucsMixed` (69 Universal Category System classes) gives the posteriors for ISc/KL.
The class names of the heads are not in the checkpoint, so classes are reported as indices.

The checkpoint is a pickle. It is converted once (`torch.load(weights_only=True)`, with numpy scalar
types allow-listed, so no code is run) to `$ARWAVE_CACHE/embedders/aisfx.safetensors`; after that only
the safetensors file is read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.device import pick_device
from arwave.evaluation.embedders import Embedder, EmbedderError
from arwave.evaluation.embedders.cnn import ConvBlock
from arwave.mel import mel_filterbank
from arwave.paths import cache_root

SAMPLE_RATE = 44100
N_FFT = 2048
HOP = 1024
N_MELS = 96
LOG_MAX = 9.457798957824707  # aisfx.preprocessing.spectrogram_normalize, spec_norm='original'
BLOCK_FRAMES = 100  # aisfx.inference.EMB_BLOCK_LENGTH (2.32 s)
BLOCK_HOP_FRAMES = 50  # emb_hop_size = 0.5 (the package's and the paper's default)
POSTERIOR_HEAD = "ucsMixed"


# ---------------------------------------------------------------------------------------------------
# network (parameter names follow aisfx.models.cnn2d so that its state dict loads unchanged)


class EmbeddingNet(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        w = [1, width, 2 * width, 4 * width, 8 * width]
        for i in range(4):
            setattr(self, f"conv_block{i + 1}", ConvBlock(w[i], w[i + 1], pooling="max"))
        self.dim = w[-1]

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, time, mel) -> (B, 512): mean over frequency, max over time."""
        x = spec[:, None]
        x = self.conv_block1(x, 2)
        x = self.conv_block2(x, 2)
        x = self.conv_block3(x, 2)
        x = self.conv_block4(x, 1)
        return x.mean(dim=3).amax(dim=2)


class AisfxNet(nn.Module):
    """EmbeddingNet + one MLP head per training dataset (`heads`: name -> (index, num_classes))."""

    def __init__(self, heads: dict[str, tuple[int, int]]):
        super().__init__()
        self.heads = dict(heads)
        self.embedding_net = EmbeddingNet()
        d = self.embedding_net.dim
        order = sorted(self.heads, key=lambda k: self.heads[k][0])
        self.fc = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Linear(d, d // 2),
                    nn.ReLU(),
                    nn.Linear(d // 2, d // 4),
                    nn.ReLU(),
                    nn.Linear(d // 4, self.heads[k][1]),
                )
                for k in order
            ]
        )

    def forward(self, spec: torch.Tensor, head: str = POSTERIOR_HEAD) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embedding_net(spec)
        return emb, self.fc[self.heads[head][0]](emb)


# ---------------------------------------------------------------------------------------------------
# features


class AisfxFeatures(nn.Module):
    """Waveform (N,) at 44.1 kHz -> normalised log-mel (frames, 96), frames = 1 + N // 1024."""

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)
        self.register_buffer(
            "mel", mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, 0.0, SAMPLE_RATE / 2, htk=True, norm=1), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        peak = x.abs().max()
        x = x / peak if peak > 0 else x
        spec = torch.stft(x, N_FFT, HOP, window=self.window, center=True, pad_mode="constant", return_complex=True)
        power = spec.real**2 + spec.imag**2  # (1025, frames)
        return (torch.log10(self.mel @ power * 1e4 + 1.0) / LOG_MAX).T


def blocks_of(spec: torch.Tensor) -> torch.Tensor:
    """(T, 96) -> (num_blocks, 100, 96) as aisfx.preprocessing.blocking(drop_partial_block=True)."""
    T = spec.shape[0]
    if T < BLOCK_FRAMES:
        return F.pad(spec, (0, 0, 0, BLOCK_FRAMES - T))[None]
    n = (T - BLOCK_FRAMES) // BLOCK_HOP_FRAMES + 1
    return spec.unfold(0, BLOCK_FRAMES, BLOCK_HOP_FRAMES)[:n].transpose(1, 2)


# ---------------------------------------------------------------------------------------------------
# weights: one-time conversion of the wheel's pickle to safetensors


def wheel_checkpoint() -> Path:
    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(
            "embedder 'aisfx' needs the aisfx package (its wheel holds the weights): "
            "pip install --no-deps aisfx==0.1.2, or place a converted file at "
            f"{converted_path()}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"
    if not path.is_file():
        raise EmbedderError(f"{path}: aisfx checkpoint missing from the installed aisfx package")
    return path


def converted_path() -> Path:
    return cache_root() / "embedders" / "aisfx.safetensors"


def convert_checkpoint(src: str | Path | None = None, dst: str | Path | None = None) -> Path:
    """Read the wheel's checkpoint without running pickled code and write safetensors (atomic)."""
    import numpy as np

    from arwave.checkpoint import save_tensors

    src = Path(src) if src else wheel_checkpoint()
    dst = Path(dst) if dst else converted_path()
    # The pickle holds (state_dict, {name: (numpy int64 index, num_classes)}): allow just numpy scalars.
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    allowed = [
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
        type(np.dtype("int64")),
    ]
    try:
        with torch.serialization.safe_globals(allowed):
            weights, heads = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as err:
        raise EmbedderError(f"{src}: cannot read the aisfx checkpoint safely ({str(err).splitlines()[0]})") from None
    heads = {str(k): [int(v[0]), int(v[1])] for k, v in heads.items()}
    tensors = {k: v for k, v in weights.items() if not k.endswith("num_batches_tracked")}
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    save_tensors(dst, tensors, metadata={"heads": json.dumps(heads), "source_sha256": digest, "source": "aisfx 0.1.2"})
    return dst


def load_network(path: str | Path | None = None) -> tuple[AisfxNet, str]:
    """AisfxNet with the converted weights (converting on first use); returns (net, weights sha256 prefix)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path else converted_path()
    if not path.is_file():
        convert_checkpoint(dst=path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        heads = {k: tuple(v) for k, v in json.loads(meta["heads"]).items()}
        state = load_file(str(path))
    except Exception as err:
        raise EmbedderError(f"{path}: not a converted aisfx weights file ({err}); delete it to convert again") from None
    net = AisfxNet(heads)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise EmbedderError(
            f"{path}: weights do not match the aisfx network (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return net.eval(), meta.get("source_sha256", "")[:12]


# ---------------------------------------------------------------------------------------------------
# the embedder


class AisfxEmbedder(Embedder):
    name = "aisfx"
    sample_rate = SAMPLE_RATE
    dim = 512

    def __init__(
        self,
        device: str | torch.device | None = "cpu",
        weights: str | Path | None = None,
        head: str = POSTERIOR_HEAD,
        batch_size: int = 32,
    ):
        self.device = pick_device(device)
        self.net, digest = load_network(weights)
        if head not in self.net.heads:
            raise EmbedderError(f"aisfx has no head {head!r} (heads: {', '.join(self.net.heads)})")
        self.net.to(self.device)
        self.features_fn = AisfxFeatures().to(self.device)
        self.head = head
        self.class_names = [f"{head}:{i}" for i in range(self.net.heads[head][1])]
        self.batch_size = batch_size
        self.cache_key = f"aisfx-{digest}" if digest else "aisfx"

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) at 44.1 kHz -> (frames, 96) normalised log-mel."""
        return self.features_fn(x.to(self.device))

    @torch.no_grad()
    def _run(self, clips):
        blocks = [blocks_of(self.spectrogram(x)) for x in clips]
        sizes = [len(b) for b in blocks]
        stacked = torch.cat(blocks)
        embs, probs = [], []
        for i in range(0, len(stacked), self.batch_size):
            e, logits = self.net(stacked[i : i + self.batch_size], self.head)
            embs.append(e.cpu())
            probs.append(logits.softmax(-1).cpu())
        embs, probs = torch.cat(embs).split(sizes), torch.cat(probs).split(sizes)
        return list(zip(embs, probs))
