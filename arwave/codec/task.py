"""The codec's training task: reconstruction losses + bottleneck regulariser, and the MS-STFT critic.

The codec's data is always read at the codec's sample rate and channel count, cut to its training
window, whatever `data.*` says.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from arwave.codec.discriminator import MultiScaleSTFTDiscriminator
from arwave.codec.losses import (
    feature_matching_loss,
    frame_loudness_loss,
    hinge_critic_loss,
    hinge_generator_loss,
    multi_resolution_mel_loss,
)
from arwave.codec.model import Codec, CodecConfig
from arwave.config import RunConfig
from arwave.training.task import Task


class _Frozen:
    """Context: the critic's parameters stop requiring grad, so the generator loss can run through the
    raw critic without accumulating gradients into it (or firing its DDP hooks)."""

    def __init__(self, module: nn.Module):
        self.params = [p for p in module.parameters() if p.requires_grad]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p in self.params:
            p.requires_grad_(True)


COLLAPSE_RATIO = 0.9


def warn_if_collapsed(ratio: float) -> bool:
    """Warn when reconstructions no longer depend on their input: MEL(recon_i, x_i) is nearly as far as
    MEL(recon_i, x_j) for other clips j (input-specificity ratio, docs/metrics.md). Returns True if warned."""
    if ratio <= COLLAPSE_RATIO:
        return False
    import warnings

    warnings.warn(
        f"codec: reconstructions of different inputs are near-identical (input-specificity ratio "
        f"{ratio:.2f} > {COLLAPSE_RATIO}): the codec has collapsed or has not started to learn; see "
        f"docs/codec.md, 'Collapse'",
        RuntimeWarning,
        stacklevel=2,
    )
    return True


class CodecTask(Task):
    """Generator loss: w_adv·l_g + w_feat·l_feat + w_wave·l_t + w_mel·l_f + (w_vq·l_vq | kl_weight·KL);
    critic loss: hinge. Adversarial terms and critic updates start at `disc_start`."""

    def __init__(self, cfg: RunConfig, run_dir: Path | None = None, datasets: tuple | None = None):
        m: CodecConfig = cfg.model
        self.cfg = cfg
        self.model = Codec(m)
        self.critic = MultiScaleSTFTDiscriminator(m.channels, m.disc_filters)
        if datasets is None:
            from arwave.data.dataset import datasets_from_config

            data = dataclasses.replace(cfg.data, sample_rate=m.sample_rate, channels=m.channels)
            datasets = datasets_from_config(data, segment_samples=m.window_frames * m.hop)
        self.train_set, self.val_set = datasets
        self.find_unused_parameters = self.model.bottleneck.unused_parameters
        self._fake: torch.Tensor | None = None
        self._real: torch.Tensor | None = None

    def _adversarial(self, step: int) -> bool:
        return step >= 0 and step >= self.cfg.model.disc_start

    def loss(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        m: CodecConfig = self.cfg.model
        real = batch["audio"]
        out = model(real)
        fake = out.audio
        with torch.autocast(device_type=real.device.type, enabled=False):  # spectra in fp32
            l_wave = F.l1_loss(fake.float(), real.float())
            l_mel = multi_resolution_mel_loss(fake.float(), real.float(), m.sample_rate, m.mel_bins)
            l_loud = frame_loudness_loss(fake.float(), real.float())
        bottleneck = self.model.bottleneck
        total = m.w_wave * l_wave + m.w_mel * l_mel + bottleneck.loss_weight * out.loss
        if m.w_loud:
            total = total + m.w_loud * l_loud
        logs = {
            "wave": float(l_wave.detach()),
            "mel": float(l_mel.detach()),
            "loud": float(l_loud.detach()),
            bottleneck.loss_name: float(out.loss.detach()),
        }
        logs.update({k: v for k, v in out.stats.items() if not k.startswith("ppl") or not k[3:].isdigit()})
        if self._adversarial(step):
            with _Frozen(self.critic):
                logits_fake, feats_fake = self.critic(fake)
                with torch.no_grad():
                    _, feats_real = self.critic(real)
            l_adv = hinge_generator_loss(logits_fake)
            l_feat = feature_matching_loss(feats_real, feats_fake)
            total = total + m.w_adv * l_adv + m.w_feat * l_feat
            logs.update(adv=float(l_adv.detach()), feat=float(l_feat.detach()))
        self._fake, self._real = fake.detach(), real
        return total, logs

    def critic_loss(self, critic: nn.Module, batch: Any, step: int):
        m: CodecConfig = self.cfg.model
        if self._fake is None or not self._adversarial(step):
            return None
        if m.disc_skip_every and step % m.disc_skip_every == 0:
            return None
        logits_real, _ = critic(self._real)
        logits_fake, _ = critic(self._fake)
        loss = hinge_critic_loss(logits_real, logits_fake)
        self._fake = self._real = None
        return loss, {"hinge": float(loss.detach())}

    def val_metrics(self, model: nn.Module, batch: Any) -> dict[str, float]:
        from arwave.evaluation.recon import input_specificity, mel_distance, stft_distance

        loss, logs = self.loss(model, batch, step=-1)
        self._fake = self._real = None
        real = batch["audio"]
        recon = model.reconstruct(real)
        out = {
            "loss": float(loss),
            **logs,
            "mel_distance": mel_distance(real, recon, self.cfg.model.sample_rate),
            "stft_distance": stft_distance(real, recon),
        }
        if real.shape[0] >= 2:
            ratio = sum(input_specificity(list(real), list(recon), self.cfg.model.sample_rate)) / real.shape[0]
            out["specificity"] = ratio
            warn_if_collapsed(ratio)
        return out

    def samples(self, model: nn.Module, step: int) -> dict[str, tuple[torch.Tensor, int]]:
        """The reconstruction of the first validation crop (RUN/samples/recon-<step>.wav) and that
        crop itself (reference.wav)."""
        if self.val_set is None or len(self.val_set) == 0:
            return {}
        real = self.val_set[(0, 0)]["audio"]
        device = next(model.parameters()).device
        recon = model.reconstruct(real[None].to(device))[0].cpu()
        rate = self.cfg.model.sample_rate
        return {"recon": (recon, rate), "reference": (real, rate)}
