"""AAR's training task: cross-entropy over the MSRQ token maps of windows of a trained msrq codec.

Training data = the MSRQ codes of aligned windows of every file, encoded once per (codec checkpoint,
split, window stride) and cached in `CODEC_RUN/cache/`. Windows start every `window_stride` windows
(0.5: a half-window-shifted copy of the data; MSRQ codes depend on the window alignment, so this is
the cheap form of random crops). At training start the codec run is copied into `RUN/codec/`
(config + latest weights) and `parent = "codec"`, so `arwave.load(RUN)` alone rebuilds the model
with its codec attached.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from arwave.config import ConfigError, RunConfig
from arwave.errors import ArwaveError
from arwave.models.aar.model import AAR, AARConfig, check_config
from arwave.models.codec_parent import attach_codec_run
from arwave.training.task import Task


def clip_conditions(
    cfg: RunConfig, files, split: str, cache_dir: Path, skipped: Sequence[int] = ()
) -> list[torch.Tensor] | None:
    """Per-file condition embeddings (cond = "embedding") of the files not in `skipped` (those whose
    codes could not be made), or None.

    `embedder = "manifest:KEY"` reads a precomputed vector from each manifest row's field KEY (any
    embedder run offline); any other name goes through arwave.evaluation.embedders.by_name.get_embedder and
    embeds the whole file (AAR: a clip-level embedding conditions every window of the clip)."""
    m = cfg.model
    if m.cond != "embedding":
        return None
    if not m.embedder:
        raise ConfigError(f"{cfg.kind}: cond=embedding needs --set embedder=NAME (an embedder name or manifest:KEY)")
    from arwave.data.encoded import drop_skipped, encode_files

    if m.embedder.startswith("manifest:"):
        field = m.embedder.split(":", 1)[1]
        out = []
        for row in drop_skipped(files.rows, skipped):
            if field not in row:
                raise ArwaveError(f"{row['path']}: manifest row has no {field!r} vector (embedder={m.embedder})")
            out.append(torch.tensor(row[field], dtype=torch.float32).flatten())
    else:
        from arwave.evaluation.embedders.by_name import get_embedder

        embedder = get_embedder(m.embedder)
        out = encode_files(
            drop_skipped(files.file_paths, skipped),
            lambda a: embedder.embed_clips([a], files.sample_rate)[0],
            cache_dir,
            f"{cfg.kind}-embedding-{split}",
            files.sample_rate,
            files.channels,
            extra={"embedder": getattr(embedder, "cache_key", m.embedder)},
        )
    if out:
        m.embed_dim = int(out[0].numel())
    return out


class TokenItems(Dataset):
    """Fixed training items: codes (M, ...) long, labels (M,), optional embeddings (M, E).
    item = {"codes": codes[i], "label": int, ["embedding": (E,)]}; the seed is not used (no crops)."""

    def __init__(self, codes: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor | None = None):
        self.codes, self.labels, self.embeddings = codes, labels, embeddings

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        item = {"codes": self.codes[index], "label": int(self.labels[index])}
        if self.embeddings is not None:
            item["embedding"] = self.embeddings[index]
        return item


def msrq_window_codes(codec: nn.Module, audio: torch.Tensor, stride: float, batch: int = 32) -> torch.Tensor:
    """(C, N) audio -> (W, L) MSRQ codes of the windows starting every `stride` windows (hop-aligned);
    a file shorter than one window is zero-padded to one."""
    window, hop = int(codec.window_samples), int(codec.hop)
    step = max(hop, int(round(stride * codec.window_frames)) * hop)
    if audio.shape[-1] < window:
        audio = F.pad(audio, (0, window - audio.shape[-1]))
    device = next(codec.parameters()).device
    starts = list(range(0, audio.shape[-1] - window + 1, step))
    out = []
    for i in range(0, len(starts), batch):
        x = torch.stack([audio[:, s : s + window] for s in starts[i : i + batch]]).to(device)
        codes = codec.encode(x, chunk_frames=0)  # K × (b, 1, s_k)
        out.append(torch.cat([c[:, 0] for c in codes], dim=1).cpu())
    return torch.cat(out)


class AARTask(Task):
    """Cross-entropy of the teacher-forced next-scale logits over all L tokens of a window."""

    def __init__(self, cfg: RunConfig, run_dir: str | Path):
        from arwave.data.encoded import encode_splits, set_labels

        m: AARConfig = cfg.model
        check_config(m)
        codec, cache_dir, key, device = attach_codec_run(cfg, run_dir, "aar", "msrq")
        cfg.data.sample_rate, cfg.data.channels = int(codec.sample_rate), int(codec.channels)
        cfg.data.segment_seconds = codec.window_samples / codec.sample_rate

        def windows(per_file, file_labels, conds, split) -> TokenItems:
            """Every window of every file is one item: labels and conditions repeat per window."""
            counts = [len(c) for c in per_file]
            labels = torch.tensor([lab for lab, n in zip(file_labels, counts) for _ in range(n)], dtype=torch.long)
            emb = torch.cat([e[None].expand(n, -1) for e, n in zip(conds, counts)]) if conds is not None else None
            return TokenItems(torch.cat(per_file), labels, emb)

        sets = encode_splits(
            cfg.data,
            lambda a: msrq_window_codes(codec, a, m.window_stride),
            cache_dir,
            "aar-codes",
            {**key, "stride": m.window_stride},
            build=windows,
            on_labels=(lambda names: set_labels(m, names)) if m.cond == "class" else None,
            conditions=lambda files, split, skipped: clip_conditions(cfg, files, split, cache_dir, skipped),
        )
        codec.cpu()
        if sets["train"] is None or len(sets["train"]) == 0:
            raise ArwaveError("aar: no training windows (the train split is empty)")
        self.train_set, self.val_set = sets["train"], sets["val"]
        self.cfg = cfg
        self.model = AAR(m, codec=codec)

    def loss(self, model, batch, step):
        codes = batch["codes"]
        logits = model(
            codes,
            labels=batch.get("label"),
            embeddings=batch.get("embedding"),
            cond_drop=self.cfg.model.cond_drop if step >= 0 else 0.0,
        )
        ce = F.cross_entropy(logits.float().flatten(0, 1), codes.flatten(), reduction="none").view(codes.shape)
        with torch.no_grad():
            acc = (logits.argmax(-1) == codes).float().mean()
            first = self.cfg.model.scales[0]
            half = sum(self.cfg.model.scales[: len(self.cfg.model.scales) // 2])
        return ce.mean(), {
            "acc": acc,
            "ce_coarse": ce[:, :half].mean().detach(),
            "ce_fine": ce[:, half:].mean().detach(),
            "ce_first": ce[:, :first].mean().detach(),
        }

    def samples(self, model, step: int) -> dict:
        """One window sampled with the default settings (first class): RUN/samples/sample-<step>.wav."""
        label = 0 if self.cfg.model.cond == "class" and self.cfg.model.num_classes else None
        audio = model.generate(model.codec.window_samples / model.sample_rate, num=1, seed=0, class_label=label)[0]
        return {"sample": (audio, model.sample_rate)}
