"""`arwave train KIND`: build a preset (or a config file, or a fine-tune's source config), apply
overrides, run the one training loop.

Settings are resolved in this order, later wins: the preset (--preset, default tiny) or, with
--init-from, the source model's own config; the --config file (TOML, or JSON as in config.json);
--data/--codec/--max-steps/--minutes; --set.

Under torchrun it trains data-parallel: `torchrun --nproc_per_node=2 -m arwave train cam ...`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from arwave.registry import KIND_NAMES, PRESET_NAMES


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        default=None,
        help=f"named size: {', '.join(PRESET_NAMES)} (tests / demo / GPU); codec presets also come "
        "as SIZE-continuous, SIZE-msrq, SIZE-rvq [tiny]",
    )
    p.add_argument(
        "--config",
        metavar="FILE.toml",
        help="a run's settings: sections [model], [data], [train] as in "
        "config.json, optional kind/preset/init_from (--set wins)",
    )
    p.add_argument(
        "--data",
        metavar="MANIFEST|DIR",
        help="manifest.jsonl from `arwave data prepare`, or a folder of audio "
        "(`arwave train` indexes it into RUN/manifest.jsonl) "
        "(default: built-in corpus)",
    )
    p.add_argument(
        "--codec",
        metavar="RUN",
        help="codec run the AR model trains on, or a bundled codec's name (sets model.codec_run)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. --set model.depth=12 --set train.lr=1e-4 (repeatable)",
    )
    p.add_argument("--max-steps", type=int, help="stop after N optimiser steps")
    p.add_argument("--minutes", type=float, help="stop after M minutes of training (wall clock)")


def resolve_config(args, kind: str):
    """Preset (or the --init-from source's config) + --config file + --data/--codec/--max-steps/--minutes
    + --set, in that order (later wins)."""
    from arwave.config import ConfigError, apply_values, read_config_file
    from arwave.registry import preset

    path = getattr(args, "config", None)
    values = read_config_file(path) if path else {}
    if values.get("kind", kind) != kind:
        raise ConfigError(
            f"{path}: is a {values['kind']} config; train it with `arwave train {values['kind']} --config {path}`"
        )
    init_from = getattr(args, "init_from", None) or values.get("init_from")
    name = args.preset or values.get("preset")
    if init_from:
        from arwave.training.finetune import finetune_config

        if name:
            raise ConfigError(
                f"--init-from {init_from}: a fine-tune keeps its source's config; drop --preset/preset "
                "(change settings with --set or --config)"
            )
        cfg = finetune_config(init_from, kind)
    else:
        cfg = preset(kind, name or "tiny")
    if values:
        cfg = apply_values(cfg, values, str(path))
    return apply_cli_options(cfg, args)


def apply_cli_options(cfg, args):
    from arwave.config import ConfigError, apply_overrides

    extra = []
    if getattr(args, "data", None):
        if Path(args.data).expanduser().is_dir():
            raise ConfigError(
                f"--data {args.data}: a folder; index it with `arwave data prepare {args.data}` and give the manifest"
            )
        extra.append(f"data.manifest={Path(args.data).expanduser().resolve()}")
    if getattr(args, "codec", None):
        from arwave.pretrained import run_ref  # a bundled codec stays a name (`--codec codec-latent`)

        extra.append(f"model.codec_run={run_ref(args.codec)}")
    if getattr(args, "max_steps", None) is not None:
        extra.append(f"train.max_steps={args.max_steps}")
    if getattr(args, "minutes", None) is not None:
        extra.append(f"train.minutes={args.minutes}")
        if getattr(args, "max_steps", None) is None:
            extra.append("train.max_steps=1000000000")
    return apply_overrides(cfg, extra + list(args.overrides))


def run(args) -> int:
    from arwave import console
    from arwave.checkpoint import read_config
    from arwave.errors import ArwaveError
    from arwave.training.loop import train

    init_from = getattr(args, "init_from", None)
    out = Path(
        args.out
        or (
            f"runs/{args.kind}-from-{Path(init_from).name}"
            if init_from
            else f"runs/{args.kind}-{args.preset or 'tiny'}"
        )
    )
    with console.quiet(args.quiet):
        if args.resume:
            if init_from or getattr(args, "config", None):
                raise ArwaveError("--resume continues a run with its own config.json: drop --init-from/--config")
            cfg = read_config(out)
            if cfg.kind != args.kind:
                raise ArwaveError(
                    f"{out}: a {cfg.kind} run; resume it with `arwave train {cfg.kind} --out {out} --resume`"
                )
            index_data_folder(args, out, resume=True)
            cfg = apply_cli_options(cfg, args)
        else:
            folder = getattr(args, "data", None)
            if folder and Path(folder).expanduser().is_dir():  # every other setting checked before indexing
                checked = resolve_config(_without_data(args), args.kind)
                if checked.init_from:
                    from arwave.training.finetune import check_source

                    check_source(checked)
            index_data_folder(args, out, resume=False)
            cfg = resolve_config(args, args.kind)
        train(cfg, out, resume=args.resume, progress=not args.quiet)
    if not args.quiet:
        print(f"run saved in {out}")
    return 0


def _without_data(args):
    import copy

    other = copy.copy(args)
    other.data = None
    return other


def index_data_folder(args, out: Path, resume: bool) -> None:
    """--data DIR (a folder of audio): index it as `arwave data prepare` does into RUN/manifest.jsonl
    and train on that manifest. A resumed run reuses the manifest it started with (same splits)."""
    from arwave import checkpoint as ckpt
    from arwave.config import ConfigError
    from arwave.console import note
    from arwave.data.manifest import MANIFEST_NAME, prepare_folder

    folder = Path(args.data).expanduser() if getattr(args, "data", None) else None
    if folder is None or not folder.is_dir():
        return
    manifest = out / MANIFEST_NAME
    if resume:
        if not manifest.is_file():
            raise ConfigError(
                f"--data {folder}: {out} has no {MANIFEST_NAME} indexed from a folder; resume without --data"
            )
    else:
        if ckpt.latest_checkpoint(out) is not None:
            raise ConfigError(
                f"{out}: already holds a trained run; pass --resume to continue it or choose another --out"
            )
        report = prepare_folder(folder, out=manifest)
        s = report.splits
        note(
            f"indexed {report.indexed} files of {folder} ({report.seconds / 60:.2f} min; skipped "
            f"{len(report.skipped)}) "
            f"into {manifest}: train {s['train']}, val {s['val']}, test {s['test']}"
        )
    args.data = str(manifest)


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a codec, CAM, AAR, next-token or classifier model",
        description="Train one model kind with the shared training loop. Writes RUN/config.json, "
        "RUN/checkpoints/, RUN/metrics.csv, RUN/loss.png, RUN/tensorboard/ and RUN/samples/.",
    )
    p.add_argument("kind", choices=KIND_NAMES, help="what to train")
    add_run_options(p)
    p.add_argument("--out", metavar="RUN", help="run folder [runs/KIND-PRESET]")
    p.add_argument(
        "--init-from",
        dest="init_from",
        metavar="NAME|RUN",
        help="fine-tune: start a new run from the weights of a bundled model (`arwave models`) or a run "
        "folder, with its config (same architecture), a fresh optimiser and LR schedule; AR models "
        "keep its codec",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--quiet", action="store_true", help="print nothing but warnings and errors")
    p.set_defaults(func=run)
