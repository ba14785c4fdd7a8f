"""Tiny training runs of the real model kinds (codec, cam, aar, nexttoken) for the resume and DDP tests.

Shared by tests/test_resume_ddp_kinds.py (in process) and by this file's __main__, which trains every kind
under `torchrun --nproc_per_node=2` so the test can compare DDP with single-process training.

`ddp_safe` configs leave out the randomness that is drawn per process (its draws depend on the rank, so
2 processes × B/2 cannot equal 1 process × B; both are still seeded and resumable): noise augmentation
and the rf head's flow draws (CAM trains the gmm head without noise augmentation), condition dropout,
and the codebooks' k-means init and dead-code resets, which rank 0 decides from its half of the batch
(the codec starts from initialised codebooks and never resets; their EMA statistics are all-reduced).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from arwave.registry import get_kind, preset

KINDS = ("codec", "cam", "aar", "nexttoken")
CODECS = {"codec": None, "cam": "codec-continuous", "aar": "codec-msrq", "nexttoken": "codec-rvq"}


def prepare(work: Path) -> Path:
    """Random codec runs of the three bottlenecks and two tiny manifests (mono tones, stereo tones)."""
    from test_aar_train import make_codec_run, make_manifest
    from test_cam_task import write_corpus

    work = Path(work)
    for name, codec_preset in (
        ("codec-msrq", "tiny"),
        ("codec-rvq", "tiny-rvq"),
        ("codec-continuous", "tiny-continuous"),
    ):
        make_codec_run(work / name, codec_preset)
    make_manifest(work / "mono")
    write_corpus(work / "stereo")
    return work


def config(kind: str, work: Path, batch: int = 4, ddp_safe: bool = False):
    """3 steps, warm-up 2, EMA 0.9, no periodic checkpoints or validation."""
    work = Path(work)
    cfg = preset(kind, "tiny")
    m = cfg.model
    cfg.data.manifest = str(work / ("stereo" if kind == "cam" else "mono") / "manifest.jsonl")
    if kind == "codec":
        m.disc_start, m.disc_skip_every = 0, 3  # critic steps at 1 and 2, not at 0
    else:
        m.codec_run = str(work / CODECS[kind])
    if kind == "cam":
        if ddp_safe:
            m.head, m.noise_aug = "gmm", False
        else:
            m.conditional = True  # exercises class dropout too
    if kind in ("aar", "nexttoken") and ddp_safe:
        m.cond_drop = 0.0
    t = cfg.train
    t.max_steps, t.warmup_steps, t.ema_decay = 3, 2, 0.9
    t.ckpt_every, t.val_every, t.log_every = 0, 0, 1
    t.device, t.threads = "cpu", 1
    cfg.data.batch_size = batch
    return cfg


def run_ddp_safe(kind: str, work: Path, run_dir: Path, batch: int) -> Path:
    """Train `config(kind, ddp_safe=True)` into run_dir, the codec's codebooks pre-initialised."""
    from arwave.codec.msrq import EMACodebook
    from arwave.training.loop import train

    cfg = config(kind, work, batch, ddp_safe=True)
    torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank
    task = get_kind(kind).build_task(cfg, run_dir)
    for book in task.model.modules():
        if isinstance(book, EMACodebook):
            book.initted.fill_(True)
            book.dead_threshold = 0.0
    return train(cfg, run_dir, progress=False, task=task)


if (
    __name__ == "__main__"
):  # under torchrun: python kind_runs.py WORK OUT [KIND,...]  -> OUT/<kind>-ddp, batch 2 per process
    import faulthandler

    import arwave.training.loop as loop
    from arwave.training import distributed

    faulthandler.dump_traceback_later(300, exit=True)  # a hung rank shows where, then exits
    loop.plot_metrics = lambda *args, **kwargs: None  # no loss.png: not compared
    # one process group for the four runs (train() joins it; re-creating it after each run can hang)
    distributed.setup("cpu")
    cleanup, distributed.cleanup = distributed.cleanup, lambda: None
    work, out = Path(sys.argv[1]), Path(sys.argv[2])
    for kind in sys.argv[3].split(",") if len(sys.argv) > 3 else KINDS:
        run_ddp_safe(kind, work, out / f"{kind}-ddp", batch=2)
    cleanup()
