"""`arwave` command line. Each verb lives in its own module under arwave/cli/ and registers itself
with `register(subparsers)`; every handler is `func(args) -> int | None`.

Errors meant for users (ArwaveError) print one line and exit 2; no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from arwave import __version__
from arwave.errors import ArwaveError

# order = order in `arwave --help`
COMMAND_MODULES = (
    "arwave.cli.data",       # data corpus / data prepare
    "arwave.cli.train",      # train {codec,cam,aar,nexttoken,classifier}
    "arwave.cli.generate",   # generate / stream
    "arwave.cli.codec",      # encode / decode
    "arwave.cli.models",     # models / export (bundled pretrained models)
    "arwave.cli.eval",       # eval {recon,gen,fad-over-time,fad,classifier}
    "arwave.cli.bench",      # bench {codec,cam,nextscale-vs-nexttoken,train}
    "arwave.cli.experiment", # experiment {noise-aug,sat-vs-rvq,aar-vs-nexttoken}
    "arwave.cli.demo",       # demo
    "arwave.cli.serve",      # serve (web page, streamed generation)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arwave", description="Fast autoregressive audio generation — CAM and SAT + AAR: data, training, "
                                   "generation, streaming, evaluation and benchmarks. `arwave COMMAND --help` for each.")
    parser.add_argument("--version", action="version", version=f"arwave {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        code = args.func(args)
    except ArwaveError as err:
        print(f"arwave: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("arwave: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
