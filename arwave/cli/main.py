"""`arwave` command line. Each verb lives in its own module under arwave/cli/ and registers itself
with `register(subparsers)`; every handler is `func(args) -> int | None`.

Errors meant for users (ArwaveError) print one line and exit 2; no traceback. Warnings print one line
(`arwave: warning: ...`). Ctrl-C exits 130, SIGTERM during training 143 (after saving a checkpoint).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from arwave import __version__
from arwave.errors import ArwaveError, ArwaveWarning, Terminated

# order = order in `arwave --help`
COMMAND_MODULES = (
    "arwave.cli.data",  # data corpus / data prepare
    "arwave.cli.train",  # train {codec,cam,aar,nexttoken,classifier}
    "arwave.cli.generate",  # generate / stream
    "arwave.cli.codec",  # encode / decode
    "arwave.cli.models",  # models / export (bundled pretrained models)
    "arwave.cli.eval",  # eval {recon,gen,fad-over-time,fad,classifier}
    "arwave.cli.bench",  # bench {codec,cam,nextscale-vs-nexttoken,train}
    "arwave.cli.experiment",  # experiment {noise-aug,sat-vs-rvq,aar-vs-nexttoken}
    "arwave.cli.demo",  # demo
    "arwave.cli.serve",  # serve (web page, streamed generation)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arwave",
        description="Fast autoregressive audio generation — CAM and SAT + AAR: data, training, "
        "generation, streaming, evaluation and benchmarks. `arwave COMMAND --help` for each.",
    )
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
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            code = args.func(args)
    except ArwaveError as err:
        print(f"arwave: error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        print("arwave: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("arwave: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """arwave's own warnings as one line; other libraries' keep Python's usual format."""
    if issubclass(category, ArwaveWarning):
        print(f"arwave: warning: {message}", file=file or sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=file or sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
