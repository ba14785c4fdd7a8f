"""`arwave train KIND`: build a preset, apply overrides, run the one training loop.

Under torchrun it trains data-parallel: `torchrun --nproc_per_node=2 -m arwave train cam ...`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from arwave.registry import KIND_NAMES, PRESET_NAMES


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny",
                   help=f"named size: {', '.join(PRESET_NAMES)} (tests / demo / GPU); codec presets also come "
                        "as SIZE-continuous, SIZE-msrq, SIZE-rvq [tiny]")
    p.add_argument("--data", metavar="MANIFEST", help="manifest.jsonl from `arwave data prepare` (default: built-in corpus)")
    p.add_argument("--codec", metavar="RUN", help="codec run the AR model trains on, or a bundled codec's name "
                                                  "(sets model.codec_run)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set model.depth=12 --set train.lr=1e-4 (repeatable)")
    p.add_argument("--max-steps", type=int, help="stop after N optimiser steps")
    p.add_argument("--minutes", type=float, help="stop after M minutes of training (wall clock)")


def resolve_config(args, kind: str):
    """Preset + --data/--codec/--max-steps/--minutes + --set, in that order (later wins)."""
    from arwave.registry import preset

    cfg = preset(kind, args.preset)
    return apply_cli_options(cfg, args)


def apply_cli_options(cfg, args):
    from arwave.config import apply_overrides

    extra = []
    if getattr(args, "data", None):
        extra.append(f"data.manifest={Path(args.data).resolve()}")
    if getattr(args, "codec", None):
        from arwave.pretrained import run_ref       # a bundled codec stays a name (`--codec codec-latent`)
        extra.append(f"model.codec_run={run_ref(args.codec)}")
    if getattr(args, "max_steps", None) is not None:
        extra.append(f"train.max_steps={args.max_steps}")
    if getattr(args, "minutes", None) is not None:
        extra.append(f"train.minutes={args.minutes}")
        if getattr(args, "max_steps", None) is None:
            extra.append("train.max_steps=1000000000")
    return apply_overrides(cfg, extra + list(args.overrides))


def run(args) -> int:
    from arwave.checkpoint import read_config
    from arwave.errors import ArwaveError
    from arwave.training.loop import train

    out = Path(args.out or f"runs/{args.kind}-{args.preset}")
    if args.resume:
        cfg = read_config(out)
        if cfg.kind != args.kind:
            raise ArwaveError(f"{out}: a {cfg.kind} run; resume it with `arwave train {cfg.kind} --out {out} --resume`")
        cfg = apply_cli_options(cfg, args)
    else:
        cfg = resolve_config(args, args.kind)
    train(cfg, out, resume=args.resume, progress=not args.quiet)
    print(f"run saved in {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train a codec, CAM, AAR, next-token or classifier model",
                       description="Train one model kind with the shared training loop. Writes RUN/config.json, "
                                   "RUN/checkpoints/, RUN/metrics.csv and RUN/loss.png.")
    p.add_argument("kind", choices=KIND_NAMES, help="what to train")
    add_run_options(p)
    p.add_argument("--out", metavar="RUN", help="run folder [runs/KIND-PRESET]")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
