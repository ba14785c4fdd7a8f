"""`arwave models`: the bundled pretrained models; `arwave export RUN NAME`: bundle a trained run.

models [--json]                 a table (name, kind, parameters, size, format, steps, quality; the
                                training data and command under each row), or one JSON object
export RUN NAME [--fp16] [--parent CODEC] [--dest DIR] [--description T] [--training-data T]
                [--command T] [--quality KEY=VALUE | --quality FILE.json ...] [--json]
"""

from __future__ import annotations

import json
from pathlib import Path

from arwave.console import count_text, quality_text
from arwave.errors import ArwaveError


def _bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def cmd_models(args) -> int:
    from arwave import pretrained

    rows = pretrained.list_models()
    total = sum(r.get("size_bytes", 0) for r in rows if r["bundled"])
    if args.json:
        print(json.dumps({"root": str(pretrained.root()), "total_size_bytes": total, "models": rows}))
        return 0
    print(f"bundled models in {pretrained.root()} ({_bytes(total)} of weights)")
    head = f"{'NAME':<22} {'KIND':<11} {'PARAMS':>7} {'SIZE':>9}  {'FORMAT':<17} {'STEPS':>7}  QUALITY"
    print(head)
    for r in rows:
        if not r["bundled"]:
            print(
                f"{r['name']:<22} {r['kind']:<11} {'-':>7} {'-':>9}  {'not bundled':<17} {'-':>7}  train: {r['train']}"
            )
            continue
        print(
            f"{r['name']:<22} {r['kind']:<11} {count_text(r.get('parameters', 0)):>7} "
            f"{_bytes(r.get('size_bytes', 0)):>9}  "
            f"{r.get('format', '?'):<17} {r.get('steps', 0):>7}  {quality_text(r.get('quality') or {})}"
        )
        if r.get("parent"):
            print(f"{'':<22} codec: {r['parent']}")
        print(f"{'':<22} data: {r.get('training_data', '?')}")
        print(f"{'':<22} command: {r.get('training_command', '?')}")
    return 0


def parse_quality(items: list[str]) -> dict:
    """`KEY=VALUE` (numbers become numbers) or a JSON file holding one object, merged in order."""
    out: dict = {}
    for item in items:
        if "=" in item:
            key, value = item.split("=", 1)
            try:
                out[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                out[key.strip()] = value
            continue
        path = Path(item)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ArwaveError(f"--quality {item}: expected KEY=VALUE or a JSON file ({err})") from None
        if not isinstance(data, dict):
            raise ArwaveError(f"--quality {item}: the JSON file must hold one object")
        out.update(data)
    return out


def cmd_export(args) -> int:
    from arwave import pretrained
    from arwave.pretrained import bundle

    final = bundle.export(
        args.run,
        args.name,
        fp16=args.fp16,
        int8=args.int8,
        parent=args.parent,
        dest=args.dest,
        description=args.description,
        training_data=args.training_data,
        command=args.command,
        quality=parse_quality(args.quality),
    )
    card = pretrained.read_card(final)
    print(
        f"exported {args.run} as {args.name}: {final} ({count_text(card['parameters'])} parameters, "
        f"{_bytes(card['size_bytes'])}, {card['format']}, step {card['steps']})"
    )
    if args.json:
        print(json.dumps({"path": str(final), **card}))
    return 0


def register(sub) -> None:
    m = sub.add_parser(
        "models",
        help="list the bundled pretrained models (load them by name anywhere a run is taken)",
        description="The pretrained models bundled with arwave: parameters, size, format, training "
        "data, the command that trained them and their measured quality.",
    )
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_models)

    e = sub.add_parser(
        "export",
        help="bundle a trained run as a pretrained model (config + weights + card)",
        description="Write NAME/config.json, NAME/model.safetensors (EMA weights if kept; no optimiser "
        "state) and NAME/card.json into the bundle folder ($ARWAVE_PRETRAINED_DIR or the "
        "package's arwave/pretrained/).",
    )
    e.add_argument("run", metavar="RUN", help="trained run folder (its latest checkpoint)")
    e.add_argument("name", metavar="NAME", help="bundle name, e.g. codec-latent, cam")
    e.add_argument("--fp16", action="store_true", help="store float16 weights (tensors outside its range stay float32)")
    e.add_argument(
        "--int8",
        action="store_true",
        help="store large weight matrices as int8 with per-row scales, the "
        "rest float16 (check the quality: docs/pretrained.md)",
    )
    e.add_argument(
        "--parent",
        metavar="CODEC",
        help="AR models: the bundled codec the run was trained on [the known parent of NAME]",
    )
    e.add_argument(
        "--dest", metavar="DIR", help="bundle folder to write into [$ARWAVE_PRETRAINED_DIR or arwave/pretrained]"
    )
    e.add_argument("--description", help="model card description [the known description of NAME]")
    e.add_argument("--training-data", dest="training_data", help="model card: training data [from the run's config]")
    e.add_argument("--command", help="model card: the exact command that trained the run")
    e.add_argument(
        "--quality",
        action="append",
        default=[],
        metavar="KEY=VALUE|FILE.json",
        help="model card: a measured quality figure (repeatable), or a JSON file of them",
    )
    e.add_argument("--json", action="store_true", help="print the card as one JSON object")
    e.set_defaults(func=cmd_export)
