"""`arwave serve`: the web page of arwave/serve/ (pick a model, class, seed, length, cfg, k_inf; hear the
audio while it is generated; download the WAV), served by uvicorn. See docs/serve.md.

    serve [--host 127.0.0.1] [--port 8000] [--runs-root runs] [--max-seconds 30] [--max-concurrent 8]
"""

from __future__ import annotations

import ipaddress
import sys

from arwave.errors import ArwaveError


def register(sub) -> None:
    s = sub.add_parser(
        "serve",
        help="web page: generate with a model and hear it while it is generated",
        description="Serve a page that streams generated audio to the browser as it is made. "
        "Models: the bundled ones and the cam/aar/nexttoken runs under --runs-root.",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument(
        "--runs-root", default="runs", metavar="DIR", help="serve the run folders found under DIR (default runs)"
    )
    s.add_argument(
        "--max-seconds", type=float, default=30.0, metavar="S", help="longest clip a request may ask for (default 30)"
    )
    s.add_argument(
        "--max-concurrent",
        type=int,
        default=8,
        metavar="N",
        help="generations at once; more get HTTP 503 'busy' (default 8)",
    )
    s.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch intra-op threads shared by all generations (default 1: requests run in parallel instead)",
    )
    s.set_defaults(func=cmd_serve)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args) -> int:
    import torch
    import uvicorn

    from arwave.serve import ServeSettings, available_models, create_app

    if not 0 < args.port < 65536:
        raise ArwaveError(f"--port must be in 1..65535, got {args.port}")
    if args.threads < 1:
        raise ArwaveError(f"--threads must be >= 1, got {args.threads}")
    names = available_models(args.runs_root)
    if not names:
        raise ArwaveError(
            f"no models to serve: {args.runs_root} holds no cam, aar or nexttoken run folder "
            "(train one, or point --runs-root at a folder of runs)"
        )
    torch.set_num_threads(args.threads)
    app = create_app(
        ServeSettings(runs_root=args.runs_root, max_seconds=args.max_seconds, max_concurrent=args.max_concurrent)
    )
    shown = args.host if ":" not in args.host else f"[{args.host}]"
    print(
        f"arwave serve: {len(names)} model(s): {', '.join(names[:8])}{' …' if len(names) > 8 else ''}", file=sys.stderr
    )
    print(f"arwave serve: open http://{shown}:{args.port}/  (Ctrl-C stops)", file=sys.stderr)
    if not _is_loopback(args.host):
        print(
            f"arwave serve: warning: listening on {args.host}: anyone who can reach this machine can generate "
            "(no authentication)",
            file=sys.stderr,
        )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
