"""Adapters for the usual FAD backbones, loading a weight file the user already has (nothing is
downloaded). Each re-implements the network and its input features in torch, with the parameter names
of the reference code so that its state dict loads.

    vggish  torchvggish state dict (`vggish-10086976.pth`, harritaylor/torchvggish).
            16 kHz; |STFT| of 400-sample periodic-Hann frames (hop 160, FFT 512, no padding); 64 mel
            bands 125-7500 Hz, triangles in the HTK mel domain, DC bin dropped; log(mel + 0.01);
            examples of 96 frames (0.96 s), hop 96. Embedding: the 128-d output of the last linear
            layer *without* the final ReLU and without PCA/quantisation (as google-research FAD and
            `frechet-audio-distance` do). No class head.
    panns   PANNs CNN14 checkpoint (`Cnn14_mAP=0.431.pth`, qiuqiangkong/audioset_tagging_cnn).
            32 kHz; power STFT 1024 / hop 320, periodic Hann, centred with reflect padding; 64 Slaney
            mel bands 50-14000 Hz (the checkpoint's own `logmel_extractor.melW` when present);
            10 log10(max(mel, 1e-10)). Blocks of 10 s (the training clip length), a shorter clip is one
            block. Embedding: the 2048-d `fc1` output; posteriors: softmax over the 527 AudioSet logits.
    clap    Microsoft CLAP 2022 (`CLAP_weights_2022.pth`, microsoft/CLAP): CNN14 audio encoder at
            44.1 kHz (same features as panns, at 44.1 kHz) + projection to 1024-d. Blocks of 5 s
            (its training duration); a shorter clip is repeated up to 5 s, as msclap does. No class head.
            LAION-CLAP (HTSAT) checkpoints are not supported.

Weight files: `.safetensors`, or a torch file that `torch.load(weights_only=True)` can read (a plain
state dict, possibly under a "model" key). A file that needs arbitrary unpickling is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.device import pick_device
from arwave.evaluation.embedders import Embedder, EmbedderError
from arwave.evaluation.embedders.cnn import ConvBlock
from arwave.mel import mel_filterbank

WEIGHT_FILES = {
    "vggish": "the torchvggish weights 'vggish-10086976.pth' (github.com/harritaylor/torchvggish releases)",
    "panns": "the PANNs checkpoint 'Cnn14_mAP=0.431.pth' (zenodo.org/record/3987831)",
    "clap": "the Microsoft CLAP checkpoint 'CLAP_weights_2022.pth' (huggingface.co/microsoft/msclap)",
}


def load_state(path: str | Path, kind: str) -> dict[str, torch.Tensor]:
    """Tensors of a weight file, without running pickled code."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise EmbedderError(f"{path}: no such weight file (embedder {kind!r} needs {WEIGHT_FILES[kind]})")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise EmbedderError(
                f"{path}: cannot be read without unpickling code ({str(err).splitlines()[0][:120]}); "
                "convert it once to .safetensors with a trusted torch.load"
            ) from None
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise EmbedderError(f"{path}: not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items() if torch.is_tensor(v)}


def load_into(module: nn.Module, state: dict[str, torch.Tensor], path, ignore_prefixes: tuple[str, ...] = ()) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in unexpected if not k.startswith(ignore_prefixes)]
    if missing or unexpected:
        raise EmbedderError(
            f"{path}: weights do not match the {type(module).__name__} network "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


# ---------------------------------------------------------------------------------------------------
# VGGish


def vggish_mel_matrix(
    n_spec: int = 257, sample_rate: int = 16000, n_mels: int = 64, lo: float = 125.0, hi: float = 7500.0
) -> torch.Tensor:
    """(n_spec, n_mels) weights of VGGish's mel_features: triangles linear in HTK mel (1127 ln(1 + f/700))."""
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)
    bins_mel = mel(np.linspace(0.0, sample_rate / 2, n_spec))
    edges = np.linspace(mel(lo), mel(hi), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    w = np.maximum(
        0.0, np.minimum((bins_mel[:, None] - lower) / (center - lower), (upper - bins_mel[:, None]) / (upper - center))
    )
    w[0, :] = 0.0
    return torch.from_numpy(w.astype(np.float32))


class VGGishNet(nn.Module):
    """torchvggish's VGG: `features` (conv stack, Sequential indices as there) + `embeddings` MLP."""

    def __init__(self):
        super().__init__()
        layers, cin = [], 1
        for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 128), nn.ReLU()
        )

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """(B, 96, 64) log-mel examples -> (B, 128), the last linear layer without its ReLU."""
        x = self.features(examples[:, None])  # (B, 512, 6, 4)
        x = x.permute(0, 2, 3, 1).flatten(1)  # TF's (H, W, C) flattening order
        return self.embeddings[:-1](x)


class VGGishEmbedder(Embedder):
    name = "vggish"
    sample_rate = 16000
    dim = 128

    def __init__(self, weights, device="cpu", batch_size: int = 64):
        self.device = pick_device(device)
        self.net = VGGishNet()
        load_into(self.net, load_state(weights, "vggish"), weights, ignore_prefixes=("pproc.",))
        self.net.eval().to(self.device)
        self.window = torch.hann_window(400, periodic=True)
        self.mel = vggish_mel_matrix()
        self.batch_size = batch_size
        self.cache_key = f"vggish-{file_digest(weights)}"

    def examples(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) at 16 kHz -> (num_examples, 96, 64); a clip shorter than 0.96 s is padded with silence."""
        x = F.pad(x, (0, max(0, 400 - x.shape[-1])))
        frames = x.unfold(0, 400, 160) * self.window  # no centring, as mel_features.frame
        mag = torch.fft.rfft(frames, n=512).abs()  # (T, 257)
        logmel = torch.log(mag @ self.mel + 0.01)  # (T, 64)
        if logmel.shape[0] < 96:
            logmel = F.pad(logmel, (0, 0, 0, 96 - logmel.shape[0]), value=float(np.log(0.01)))
        return logmel.unfold(0, 96, 96).transpose(1, 2)

    @torch.no_grad()
    def _run(self, clips):
        ex = [self.examples(x) for x in clips]
        out = torch.cat([self.net(b.to(self.device)).cpu() for b in torch.cat(ex).split(self.batch_size)])
        return [(e, None) for e in out.split([len(e) for e in ex])]


# ---------------------------------------------------------------------------------------------------
# CNN14 (PANNs) and Microsoft CLAP 2022


class Cnn14(nn.Module):
    """PANNs CNN14 (eval mode): log-mel -> 6 conv blocks -> mean+max pooling -> fc1 (embedding) -> logits."""

    def __init__(
        self,
        sample_rate: int,
        n_fft: int = 1024,
        hop: int = 320,
        n_mels: int = 64,
        fmin: float = 50.0,
        fmax: float = 14000.0,
        classes: int = 527,
        out_emb: int = 2048,
    ):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        self.register_buffer(
            "melW", mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).T.contiguous(), persistent=False
        )
        self.bn0 = nn.BatchNorm2d(n_mels)
        widths = [1, 64, 128, 256, 512, 1024, 2048]
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1], pooling="avg"))
        self.fc1 = nn.Linear(2048, out_emb)
        self.fc_audioset = nn.Linear(out_emb, classes)

    def logmel(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, 1, frames, n_mels): 10 log10(max(mel power, 1e-10))."""
        spec = torch.stft(
            x, self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect", return_complex=True
        )
        power = (spec.real**2 + spec.imag**2).transpose(1, 2)  # (B, frames, bins)
        return (10.0 * torch.log10((power @ self.melW).clamp_min(1e-10)))[:, None]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N) -> (embedding (B, out_emb), logits (B, classes))."""
        h = self.bn0(self.logmel(x).transpose(1, 3)).transpose(1, 3)
        for i in range(1, 7):
            h = getattr(self, f"conv_block{i}")(h, 2 if i < 6 else 1)
        h = h.mean(3)
        h = h.amax(2) + h.mean(2)
        emb = F.relu(self.fc1(h))
        return emb, self.fc_audioset(emb)


def _load_cnn14(net: Cnn14, state: dict, path, prefix: str = "") -> None:
    sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    mel = sub.pop("logmel_extractor.melW", None)
    if mel is not None:
        if mel.shape != net.melW.shape:
            raise EmbedderError(f"{path}: mel filterbank {tuple(mel.shape)} does not match {tuple(net.melW.shape)}")
        net.melW.copy_(mel)
    load_into(net, sub, path, ignore_prefixes=("spectrogram_extractor.",))


def _blocks(x: torch.Tensor, block: int, repeat_short: bool) -> torch.Tensor:
    """(N,) -> (num_blocks, block) with hop = block; a short clip is one block (repeated if asked)."""
    if x.shape[-1] < block:
        if not repeat_short:
            return x[None]
        x = x.repeat(-(-block // x.shape[-1]))[:block]
    n = x.shape[-1] // block
    return x[: n * block].reshape(n, block)


class PannsEmbedder(Embedder):
    name = "panns"
    sample_rate = 32000
    dim = 2048
    block_seconds = 10.0

    def __init__(self, weights, device="cpu"):
        self.device = pick_device(device)
        self.net = Cnn14(self.sample_rate)
        _load_cnn14(self.net, load_state(weights, "panns"), weights)
        self.net.eval().to(self.device)
        self.class_names = [f"audioset:{i}" for i in range(self.net.fc_audioset.out_features)]
        self.cache_key = f"panns-{file_digest(weights)}"

    @torch.no_grad()
    def _run(self, clips):
        out = []
        for x in clips:
            blocks = _blocks(x, int(self.block_seconds * self.sample_rate), repeat_short=False).to(self.device)
            emb, logits = self.net(blocks)
            out.append((emb.cpu(), logits.softmax(-1).cpu()))
        return out


class Projection(nn.Module):
    """msclap's projection: LayerNorm(W1 x + dropout(W2 gelu(W1 x)))."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)

    def forward(self, x):
        e1 = self.linear1(x)
        return self.layer_norm(e1 + self.linear2(F.gelu(e1)))


class ClapAudio(nn.Module):
    def __init__(self, sample_rate: int = 44100, d_proj: int = 1024):
        super().__init__()
        self.base = Cnn14(sample_rate)
        self.projection = Projection(2048, d_proj)

    def forward(self, x):
        return self.projection(self.base(x)[0])


class ClapEmbedder(Embedder):
    name = "clap"
    sample_rate = 44100
    dim = 1024
    block_seconds = 5.0

    def __init__(self, weights, device="cpu"):
        self.device = pick_device(device)
        self.net = ClapAudio(self.sample_rate, self.dim)
        state = load_state(weights, "clap")
        prefix = "audio_encoder."
        if not any(k.startswith(prefix) for k in state):
            raise EmbedderError(f"{weights}: no 'audio_encoder.*' weights: not a Microsoft CLAP 2022 checkpoint")
        _load_cnn14(self.net.base, state, weights, prefix + "base.")
        load_into(
            self.net.projection,
            {k[len(prefix + "projection.") :]: v for k, v in state.items() if k.startswith(prefix + "projection.")},
            weights,
        )
        self.net.eval().to(self.device)
        self.cache_key = f"clap-{file_digest(weights)}"

    @torch.no_grad()
    def _run(self, clips):
        block = int(self.block_seconds * self.sample_rate)
        return [(self.net(_blocks(x, block, repeat_short=True).to(self.device)).cpu(), None) for x in clips]


ADAPTERS = {"vggish": VGGishEmbedder, "panns": PannsEmbedder, "clap": ClapEmbedder}


def build(name: str, weights: str | Path | None, device="cpu", **kw) -> Embedder:
    if not weights:
        raise EmbedderError(
            f"embedder {name!r} needs a local weight file: pass weights=PATH "
            f"(CLI: --embedder {name}:PATH) with {WEIGHT_FILES[name]}; arwave never downloads weights"
        )
    return ADAPTERS[name](weights, device=device, **kw)
