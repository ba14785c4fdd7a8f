"""Tiny stand-ins for every bundled model (codec-latent, codec-sat, codec-rvq, cam, aar, nexttoken,
instrument-classifier): untrained tiny-preset runs exported with `arwave.pretrained.bundle.export` into a
temporary bundle root, plus a labelled manifest with train, val and test splits. Built once per test
process (the tests only read them; a test that removes a bundle works on a copy)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

LABELS = ("high", "low")
_BUILT: dict = {}


def write_manifest(folder: Path, sample_rate: int = 16000, seconds: float = 1.0) -> Path:
    """12 stereo tones, labels high/low alternating: 6 train, 2 val, 4 test (2 per label)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rows = []
    for i in range(12):
        label = LABELS[1] if i % 2 == 0 else LABELS[0]
        freq = (220 if label == "low" else 880) * (1 + 0.07 * i)
        wave = 0.3 * np.sin(2 * np.pi * freq * t)
        path = folder / f"tone{i}.wav"
        sf.write(path, np.stack([wave, 0.6 * wave], 1).astype(np.float32), sample_rate)
        rows.append(
            {
                "path": str(path),
                "label": label,
                "split": "train" if i < 6 else "val" if i < 8 else "test",
                "duration": seconds,
            }
        )
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def _run(kind: str, folder: Path, manifest: Path, codec: str | None = None, **model) -> Path:
    """A tiny run of `kind` as the training loop would write it at step 1, without training steps."""
    from arwave.checkpoint import save_checkpoint
    from arwave.config import run_config_to_json
    from arwave.registry import get_kind, preset

    cfg = preset(kind, "tiny")
    cfg.data.manifest = str(manifest)
    if codec:
        cfg.model.codec_run = codec
    for key, value in model.items():
        setattr(cfg.model, key, value)
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    task = get_kind(kind).build_task(cfg, folder)  # fills labels, copies the codec
    (folder / "config.json").write_text(run_config_to_json(task.config or cfg))
    save_checkpoint(folder, 1, {"model": task.model.state_dict()}, {"step": 1})
    return folder


def tiny_bundles() -> tuple[Path, Path]:
    """(bundle root, manifest). Every bundle's card carries a distinct training command
    ("arwave train KIND --preset tiny ... # NAME") and quality {"tiny": 1}."""
    if _BUILT:
        return _BUILT["root"], _BUILT["manifest"]
    from arwave import pretrained
    from arwave.pretrained import bundle

    base = Path(tempfile.mkdtemp(prefix="arwave-tiny-bundles-"))
    root, runs = base / "bundles", base / "runs"
    root.mkdir()
    manifest = write_manifest(base / "data")
    before = os.environ.get(pretrained.ENV)
    os.environ[pretrained.ENV] = str(root)  # AR exports check their parent under root()
    try:

        def export(run, name, kind):
            bundle.export(
                run,
                name,
                command=f"arwave train {kind} --preset tiny --out {run} # {name}",
                quality={"tiny": 1},
                training_data=f"tones in {manifest}",
            )

        from test_aar_train import make_codec_run

        for name, preset_name in (
            ("codec-latent", "tiny-continuous"),
            ("codec-sat", "tiny"),
            ("codec-rvq", "tiny-rvq"),
        ):
            export(make_codec_run(runs / name, preset_name), name, "codec")
        export(_run("cam", runs / "cam", manifest, "codec-latent", conditional=True), "cam", "cam")
        export(_run("aar", runs / "aar", manifest, "codec-sat"), "aar", "aar")
        export(_run("nexttoken", runs / "nexttoken", manifest, "codec-rvq"), "nexttoken", "nexttoken")
        export(_run("classifier", runs / "classifier", manifest), "instrument-classifier", "classifier")
    finally:
        if before is None:
            os.environ.pop(pretrained.ENV, None)
        else:
            os.environ[pretrained.ENV] = before
    _BUILT.update(root=root, manifest=manifest)
    return root, manifest
