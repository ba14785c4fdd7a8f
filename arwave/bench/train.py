"""Training throughput of any model kind, measured through the real training loop.

Runs `steps` optimiser steps of `arwave train KIND` into a temporary folder and reports steps per
second and items (crops) per second, excluding set-up (data rendering, token caching, model build):
the rate is read from the loop's own `steps_per_s` log after a warm-up step.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch


def bench_train(cfg, steps: int = 20, threads: int | None = None) -> dict:
    from arwave.training.logger import read_metrics
    from arwave.training.loop import train

    if threads:
        torch.set_num_threads(int(threads))
    cfg.train.max_steps = steps
    cfg.train.minutes = 0
    cfg.train.log_every = max(1, steps // 2)
    cfg.train.val_every = 0
    cfg.train.ckpt_every = 0
    with tempfile.TemporaryDirectory(prefix="arwave-bench-") as tmp:
        t0 = time.perf_counter()
        train(cfg, Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - t0
        rows = [
            r for r in read_metrics(Path(tmp) / "run" / "metrics.csv") if r["name"] == "steps_per_s" and r["step"] > 1
        ]
    rate = sum(r["value"] for r in rows) / len(rows) if rows else steps / wall
    return {
        "kind": cfg.kind,
        "preset": cfg.preset,
        "steps": steps,
        "batch_size": cfg.data.batch_size,
        "steps_per_s": rate,
        "items_per_s": rate * cfg.data.batch_size,
        "wall_s_incl_setup": wall,
        "threads": torch.get_num_threads(),
    }
