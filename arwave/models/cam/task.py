"""CAM's training task: crops of `context` frames of the cached latents of a trained continuous codec.

The latents are encoded once per (codec checkpoint, split) and cached in `CODEC_RUN/cache/`. At
training start the codec run is copied into `CAM_RUN/codec/` (config + latest weights) and
`parent = "codec"`, so `arwave.load(CAM_RUN)` alone gives a model that decodes audio.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch

from arwave.config import RunConfig
from arwave.data.encoded import EncodedCrops
from arwave.errors import ArwaveError
from arwave.models.cam.model import CAM, check_config
from arwave.models.codec_parent import attach_codec_run, data_at_codec, resolved_config
from arwave.training.task import Task


class LatentCrops(EncodedCrops):
    """Crops of `context` frames from per-file latents (D, T_f): item = {"latents": (context, D), "label"}."""

    def __getitem__(self, key):
        f, z = self.crop(key)
        return {"latents": z.t().contiguous(), "label": self.labels[f]}


class CAMTask(Task):
    def __init__(self, cfg: RunConfig, run_dir: str | Path):
        from arwave.data.encoded import encode_splits, with_labels

        check_config(cfg.model)
        attached = attach_codec_run(cfg, run_dir, "cam", "continuous")
        codec, device = attached.codec, attached.device
        # the data is read at the codec's format, whatever the preset assumed (as AAR and next-token do)
        mc = cfg.model.with_codec(attached.facts)
        data = data_at_codec(cfg.data, attached.facts, mc.context)
        encoded = encode_splits(
            data,
            lambda a: codec.encode(a[None].to(device))[0].float().cpu(),
            attached.cache_dir,
            "cam-latents",
            attached.cache_key,
            build=lambda lat, labels, _, split: LatentCrops(lat, labels, mc.context, random_crop=(split == "train")),
        )
        codec.cpu()
        train = encoded.train
        if mc.conditional:
            mc = with_labels(mc, encoded.label_names)
        if train is not None and train.sequences and mc.latent_scale <= 0:
            # noise levels k, k_inf and the head's N(0, I) prior assume unit-scale frames
            sq = sum(float(z.double().pow(2).sum()) for z in train.sequences)
            count = sum(z.numel() for z in train.sequences)
            mc = replace(mc, latent_scale=max(math.sqrt(sq / max(count, 1)), 1e-8))
        if train is None or len(train) == 0:
            secs = attached.facts.seconds(mc.context)
            raise ArwaveError(
                f"cam: no training file is at least context={mc.context} frames ({secs:.1f} s) long; "
                "lower --set context=N or add longer audio"
            )
        self.config = resolved_config(cfg, mc, data)
        self.train_set = train
        self.val_set = encoded.val if encoded.val is not None and len(encoded.val) else None
        self.conditional = mc.conditional
        self.codec = codec  # decodes the samples; never part of the trained weights
        self.model = CAM(mc, None, sample_rate=data.sample_rate, channels=data.channels, hop=mc.hop)

    def loss(self, model, batch, step):
        labels = batch["label"] if self.conditional else None
        return model(batch["latents"], labels), {}

    def samples(self, model, step: int) -> dict:
        """One training context of frames sampled with the default settings (first class), decoded by
        the run's codec (attached for the call only): RUN/samples/sample-<step>.wav."""
        mc = model.cam
        label = 0 if mc.conditional and mc.num_classes else None
        device = next(model.parameters()).device
        model.attach(self.codec.to(device))
        try:
            audio = model.generate(mc.context * mc.hop / model.sample_rate, num=1, seed=0, class_label=label)[0]
        finally:
            model.attach(None)
            self.codec.cpu()
        return {"sample": (audio, model.sample_rate)}

    def val_metrics(self, model, batch):
        # the same noise draws for every validation, so val losses are comparable across steps
        device = batch["latents"].device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(0)
            return {"loss": float(self.loss(model, batch, -1)[0])}
