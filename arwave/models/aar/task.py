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
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from arwave.config import ConfigError, RunConfig
from arwave.errors import ArwaveError
from arwave.models.aar.model import AAR, AARConfig, check_config
from arwave.models.codec_parent import attach_codec_run, data_at_codec, resolved_config
from arwave.training.task import Task


def clip_conditions(
    kind: str, m, files, split: str, cache_dir: Path, skipped: Sequence[int] = ()
) -> list[torch.Tensor] | None:
    """Per-file condition embeddings (cond = "embedding") of the files not in `skipped` (those whose
    codes could not be made), or None.

    `embedder = "manifest:KEY"` reads a precomputed vector from each manifest row's field KEY (any
    embedder run offline); any other name goes through arwave.evaluation.embedders.by_name.get_embedder and
    embeds the whole file (AAR: a clip-level embedding conditions every window of the clip)."""
    if m.cond != "embedding":
        return None
    if not m.embedder:
        raise ConfigError(f"{kind}: cond=embedding needs --set embedder=NAME (an embedder name or manifest:KEY)")
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
            f"{kind}-embedding-{split}",
            files.sample_rate,
            files.channels,
            extra={"embedder": getattr(embedder, "cache_key", m.embedder)},
        )
    return out


def with_condition_facts(m, encoded):
    """A token model's config with what the data says about its conditions: the classes (cond =
    "class") or the size of the condition vectors (cond = "embedding"); a new config."""
    from arwave.data.encoded import with_labels

    if m.cond == "class":
        return with_labels(m, encoded.label_names)
    if m.cond == "embedding" and encoded.condition_dim:
        return replace(m, embed_dim=encoded.condition_dim)
    return m


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
        from arwave.data.encoded import encode_splits

        check_config(cfg.model)
        attached = attach_codec_run(cfg, run_dir, "aar", "msrq")
        codec, facts = attached.codec, attached.facts
        m: AARConfig = cfg.model.with_codec(facts)
        data = data_at_codec(cfg.data, facts, facts.window_frames)

        def windows(per_file, file_labels, conds, split) -> TokenItems:
            """Every window of every file is one item: labels and conditions repeat per window."""
            counts = [len(c) for c in per_file]
            labels = torch.tensor([lab for lab, n in zip(file_labels, counts) for _ in range(n)], dtype=torch.long)
            emb = torch.cat([e[None].expand(n, -1) for e, n in zip(conds, counts)]) if conds is not None else None
            return TokenItems(torch.cat(per_file), labels, emb)

        encoded = encode_splits(
            data,
            lambda a: msrq_window_codes(codec, a, m.window_stride),
            attached.cache_dir,
            "aar-codes",
            {**attached.cache_key, "stride": m.window_stride},
            build=windows,
            conditions=lambda files, split, skipped: clip_conditions(
                cfg.kind, m, files, split, attached.cache_dir, skipped
            ),
        )
        codec.cpu()
        if encoded.train is None or len(encoded.train) == 0:
            raise ArwaveError("aar: no training windows (the train split is empty)")
        m = with_condition_facts(m, encoded)
        self.config = resolved_config(cfg, m, data)
        self.train_set, self.val_set = encoded.train, encoded.val
        self.model = AAR(m, codec=codec)

    def loss(self, model, batch, step):
        codes = batch["codes"]
        logits = model(
            codes,
            labels=batch.get("label"),
            embeddings=batch.get("embedding"),
            cond_drop=self.config.model.cond_drop if step >= 0 else 0.0,
        )
        ce = F.cross_entropy(logits.float().flatten(0, 1), codes.flatten(), reduction="none").view(codes.shape)
        with torch.no_grad():
            acc = (logits.argmax(-1) == codes).float().mean()
            first = self.config.model.scales[0]
            half = sum(self.config.model.scales[: len(self.config.model.scales) // 2])
        return ce.mean(), {
            "acc": acc,
            "ce_coarse": ce[:, :half].mean().detach(),
            "ce_fine": ce[:, half:].mean().detach(),
            "ce_first": ce[:, :first].mean().detach(),
        }

    def samples(self, model, step: int) -> dict:
        """One window sampled with the default settings (first class): RUN/samples/sample-<step>.wav."""
        label = 0 if self.config.model.cond == "class" and self.config.model.num_classes else None
        audio = model.generate(model.codec.window_samples / model.sample_rate, num=1, seed=0, class_label=label)[0]
        return {"sample": (audio, model.sample_rate)}
