"""What AAR and the next-token baseline share: the condition inputs of a sampling call (class
names/ids, embedding vectors) and prompt / latent codec I/O, over a codec attached as every
AudioGenerator attaches it (`AudioGenerator.attach`; its EMA codebooks must never update).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.errors import ArwaveError
from arwave.models.generator import AudioGenerator, class_index


class CodecGenerator(AudioGenerator):
    """An AudioGenerator over the tokens of an attached codec. Subclasses set `cfg` (with `cond`,
    `label_names`, `num_classes`) and `condition` (a ConditionEmbedding) and call `attach`."""

    @property
    def sample_rate(self) -> int:
        return int(self.codec.sample_rate)

    @property
    def channels(self) -> int:
        return int(self.codec.channels)

    @property
    def label_names(self) -> list[str]:
        return list(self.cfg.label_names)

    def set_precision(self, precision: str = "float32") -> CodecGenerator:
        """Weights in float32 or int8 (dynamically quantized Linear layers, CPU only:
        arwave/models/quantize.py); the codec, embeddings and sampling stay float32."""
        return self._set_precision(precision, allowed=("float32", "int8"))

    def condition_vectors(self, num: int, class_label=None, embedding=None) -> tuple[torch.Tensor, bool]:
        """(num, width) condition vectors for a sampling call, and whether any condition was given
        (without one the sample is unconditional: the null condition, and guidance is off)."""
        device = next(self.condition.parameters()).device
        labels = embeddings = None
        if class_label is not None:
            if self.cfg.cond != "class":
                raise ArwaveError(f"this model is conditioned on {self.cfg.cond!r}, not on a class label")
            labels = parse_labels(class_label, num, self.cfg.label_names, self.cfg.num_classes).to(device)
        if embedding is not None:
            if self.cfg.cond != "embedding":
                raise ArwaveError(f"this model is conditioned on {self.cfg.cond!r}, not on an embedding")
            embeddings = torch.as_tensor(embedding, dtype=torch.float32, device=device)
            embeddings = embeddings.expand(num, -1) if embeddings.dim() == 1 else embeddings
            if embeddings.shape[0] != num:
                raise ArwaveError(f"got {embeddings.shape[0]} condition embeddings for {num} samples")
        conditional = labels is not None or embeddings is not None
        return self.condition(num, labels, embeddings), conditional


def parse_labels(class_label, num: int, names: list[str], num_classes: int) -> torch.Tensor:
    """A class name, an id, or a list of either (one per sample) -> (num,) long."""
    items = (
        class_label
        if isinstance(class_label, (list, tuple))
        else class_label.tolist()
        if torch.is_tensor(class_label) and class_label.dim() > 0
        else [class_label] * num
    )
    if len(items) != num:
        raise ArwaveError(f"got {len(items)} class labels for {num} samples")
    out = [class_index(item, names, num_classes) for item in items]
    return torch.tensor(out, dtype=torch.long)


def decode_latent(codec: nn.Module, z_hat: torch.Tensor) -> torch.Tensor:
    """Quantized latents ẑ (B, C, F) -> audio (B, channels, F·hop) through the codec's decoder."""
    return codec.decode_latents(z_hat)


def encode_prompt_latent(codec: nn.Module, prompt: torch.Tensor, num: int, frames: int, device) -> torch.Tensor:
    """Encoder latents before quantization (num, C, n) of the last n = min(prompt frames, `frames`)
    frames of a prompt waveform (C, N) or (num, C, N) at the codec's rate. A codec encodes whole units
    (msrq: windows), so at least one unit ending at the prompt's end is encoded (zero-padded on the left)."""
    prompt = torch.as_tensor(prompt, dtype=torch.float32, device=device)
    if prompt.dim() == 1:
        prompt = prompt[None]
    if prompt.dim() == 2:
        prompt = prompt[None].expand(num, -1, -1)
    if prompt.dim() != 3 or prompt.shape[0] != num:
        raise ArwaveError(
            f"prompt must be (channels, samples) or ({num}, channels, samples), got {tuple(prompt.shape)}"
        )
    if prompt.shape[1] != codec.channels:
        raise ArwaveError(f"prompt has {prompt.shape[1]} channels, the codec expects {codec.channels}")
    hop = int(codec.hop)
    n = min(prompt.shape[-1] // hop, int(frames))
    if n < 1:
        raise ArwaveError(f"prompt is shorter than one latent frame ({hop} samples)")
    span = max(n, int(codec.bottleneck.unit_frames))
    x = F.pad(prompt[..., prompt.shape[-1] - n * hop :], ((span - n) * hop, 0))
    return codec.encode_latents(x).float()[..., -n:]
