"""`arwave bench {codec,cam,nextscale-vs-nexttoken,train}`: speed, measured (never asserted in tests).

Every bench prints a table and, with `--json`, one JSON object as its last stdout line. Record figures
in docs/benchmarks.md together with the command and the machine.
"""

from __future__ import annotations

import json
import platform

import torch


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _print_rows(rows: list[dict], cols: list[str]) -> None:
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    table = [[c for c in cols]] + [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def _split(s: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip())


def run_codec(args) -> int:
    from arwave.bench.codec import bench_codec

    rows = bench_codec(
        _split(args.preset),
        _split(args.bottleneck),
        seconds=args.seconds,
        threads=args.threads,
        device=args.device,
        repeats=args.repeats,
    )
    if not args.json:
        _print_rows(
            rows, ["preset", "bottleneck", "params", "sample_rate", "tokens_per_second", "encode_xrt", "decode_xrt"]
        )
    else:
        print(json.dumps({"bench": "codec", "machine": machine(), "rows": rows}))
    return 0


def run_cam(args) -> int:
    from arwave.bench.cam import bench_cam, format_table

    rows = bench_cam(
        presets=_split(args.preset),
        heads=_split(args.head),
        batch_sizes=tuple(int(b) for b in _split(args.batch)),
        frames=args.frames,
        head_steps=args.head_steps,
        threads=args.threads,
        precision=args.quantize or args.precision,
        codec=args.codec,
    )
    print(format_table(rows))
    if args.json:
        print(json.dumps({"bench": "cam", "machine": machine(), "rows": rows}))
    return 0


def run_nextscale(args) -> int:
    from arwave.bench.nextscale import bench_nextscale_vs_nexttoken

    out = bench_nextscale_vs_nexttoken(
        args.preset,
        args.seconds,
        tuple(int(b) for b in _split(args.batch)),
        args.repeats,
        args.device,
        args.threads,
        progress=not args.json,
        codec=args.codec,
        precision=args.precision,
    )
    out["machine"] = machine()
    if not args.json:
        print(json.dumps(out, indent=2))
    else:
        print(json.dumps(out))
    return 0


def run_profile(args) -> int:
    from arwave.bench import profile as prof

    torch.set_num_threads(int(args.threads or 1))
    rows = []
    floor = prof.floors() if args.floors else None
    if floor:
        print(
            f"floors ({floor['threads']} thread(s)): float32 matmul {floor['matmul_gflops']} GFLOP/s, "
            f"memory copy {floor['copy_gbps']} GB/s",
            flush=True,
        )
    for what in _split(args.model):
        if what == "cam":
            r = prof.profile_cam(args.preset, args.codec, args.head, args.seconds, args.precision)
        elif what == "aar":
            r = prof.profile_aar(args.preset, args.codec, args.seconds, args.overlap, args.precision)
        elif what == "nexttoken":
            r = prof.profile_nexttoken(args.preset, args.codec, args.seconds, args.precision)
        else:
            from arwave.errors import ArwaveError

            raise ArwaveError(f"bench profile: unknown model {what!r} (cam, aar, nexttoken)")
        rows.append(r)
        print(prof.format_breakdown(r), flush=True)
    if args.json:
        print(json.dumps({"bench": "profile", "machine": machine(), "floors": floor, "rows": rows}))
    return 0


def run_codec_quality(args) -> int:
    from arwave.bench.codec_quality import bench_codec_quality

    if args.threads:
        torch.set_num_threads(args.threads)
    out = bench_codec_quality(
        args.codecs,
        args.data,
        clips=args.clips,
        seconds=args.seconds,
        opus_kbps=args.opus_kbps,
        progress=not args.json,
        labelled=args.labelled,
        classifier=args.classifier,
    )
    out["machine"] = machine()
    _print_rows(
        out["rows"],
        [
            "codec",
            "bottleneck",
            "tokens_per_second",
            "mel",
            "ratio",
            "ratio_max",
            "rms_db",
            "rms_db_max",
            "xrt",
            "cpu_xrt",
            *(["recognised_recon"] if args.labelled else []),
        ],
    )
    if args.json:
        print(json.dumps(out))
    return 0


def run_generation_quality(args) -> int:
    from arwave.bench.generation_quality import bench_generation_quality, format_table

    if args.threads:
        torch.set_num_threads(args.threads)
    out = bench_generation_quality(
        args.models,
        args.data,
        classes=_split(args.classes) if args.classes else None,
        seeds=args.seeds,
        seconds=args.seconds,
        rollout_seconds=args.rollout_seconds,
        window_seconds=args.window_seconds,
        rollouts=args.rollouts,
        classifier=args.classifier,
        embedders=args.embedder,
        seed=args.seed,
        progress=not args.json,
    )
    out["machine"] = machine()
    print(format_table(out))
    if args.json:
        print(json.dumps(out))
    return 0


def run_train(args) -> int:
    from arwave.bench.train import bench_train
    from arwave.cli.train import resolve_config

    cfg = resolve_config(args, args.kind)
    row = bench_train(cfg, steps=args.steps, threads=args.threads)
    if not args.json:
        _print_rows([row], ["kind", "preset", "batch_size", "steps_per_s", "items_per_s", "wall_s_incl_setup"])
    else:
        print(json.dumps({"bench": "train", "machine": machine(), "rows": [row]}))
    return 0


def register(sub) -> None:
    from arwave.cli.train import add_run_options
    from arwave.registry import KIND_NAMES

    p = sub.add_parser("bench", help="measure speed: codec, CAM streaming, next-scale vs next-token, training")
    b = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    c = b.add_parser("codec", help="encode/decode speed (× real time) and parameters per preset and bottleneck")
    c.add_argument("--preset", default="tiny,small,paper")
    c.add_argument("--bottleneck", default="continuous,msrq,rvq")
    c.add_argument("--seconds", type=float, default=10.0)
    c.add_argument("--repeats", type=int, default=2)
    c.add_argument("--threads", type=int)
    c.add_argument("--device", default="cpu")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=run_codec)

    q = b.add_parser(
        "codec-quality",
        help="reconstruction of held-out music: MEL distance, input specificity, "
        "loudness, speed, next to Opus (docs/metrics.md)",
    )
    q.add_argument("codecs", nargs="+", metavar="CODEC", help="codec run folders or bundled names")
    q.add_argument(
        "--data", required=True, metavar="MANIFEST", help="manifest whose test split holds the held-out tracks"
    )
    q.add_argument("--clips", type=int, default=12)
    q.add_argument("--seconds", type=float, default=10.0)
    q.add_argument("--opus-kbps", type=float, default=6.0, help="Opus reference bitrate (0 = none) [6]")
    q.add_argument(
        "--labelled",
        metavar="MANIFEST",
        help="labelled manifest: also the share of its test clips CLASSIFIER recognises after reconstruction",
    )
    q.add_argument("--classifier", default="instrument-classifier", help="for --labelled [instrument-classifier]")
    q.add_argument("--threads", type=int)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_codec_quality)

    g = b.add_parser(
        "generation-quality",
        help="class-conditioned clips: recognised, distinct, not silent, FAD vs "
        "the real-vs-real floor, FAD over long rollouts (issue 11 targets)",
    )
    g.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="bundled names or run folders [the bundled cam, aar, nexttoken that exist]",
    )
    g.add_argument(
        "--data", metavar="MANIFEST", help="manifest with train and test splits [the models' training manifest]"
    )
    g.add_argument("--classes", help="comma-separated classes [every class of each model]")
    g.add_argument("--seeds", type=int, default=4, help="clips per class (one batch: --num of arwave generate) [4]")
    g.add_argument("--seconds", type=float, default=10.0, help="length of each clip [10]")
    g.add_argument("--seed", type=int, default=0, help="seed of every class's batch and of the rollouts [0]")
    g.add_argument("--rollout-seconds", type=float, default=60.0, help="CAM rollout length, 0 = none [60]")
    g.add_argument("--window-seconds", type=float, default=10.0, help="FAD-over-time window of the rollouts [10]")
    g.add_argument("--rollouts", type=int, help="number of CAM rollouts [one per class]")
    g.add_argument(
        "--classifier", default="instrument-classifier", help="classifier run or bundled name [instrument-classifier]"
    )
    g.add_argument(
        "--embedder", action="append", metavar="NAME", help="FAD embedder, repeatable [classifier:CLASSIFIER and aisfx]"
    )
    g.add_argument("--threads", type=int)
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=run_generation_quality)

    m = b.add_parser("cam", help="CAM ms per frame (backbone / head / decode), real-time factor, latency, memory")
    m.add_argument("--preset", default="tiny,small,paper")
    m.add_argument("--head", default="rf,gmm,ddpm")
    m.add_argument("--batch", default="1,16")
    m.add_argument(
        "--frames", type=int, default=None, help="frames generated per measurement [the preset's context, ≤ 64]"
    )
    m.add_argument("--head-steps", type=int, default=None, help="rf/ddpm sampling steps [the preset's default]")
    m.add_argument("--threads", type=int)
    m.add_argument("--precision", default="float32", choices=("float32", "bfloat16", "int8"))
    m.add_argument("--quantize", default=None, choices=("int8",), help="same as --precision int8")
    m.add_argument(
        "--codec", default=None, help="codec preset size (cpu: the bundled spectral codec) [the preset's own]"
    )
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=run_cam)

    f = b.add_parser(
        "profile",
        help="torch.profiler breakdown of generation time by part (backbone, head, "
        "sampling, codec decode, glue, Python overhead)",
    )
    f.add_argument("--model", default="cam,aar,nexttoken", help="cam, aar, nexttoken (comma-separated)")
    f.add_argument("--preset", default="small", help="model preset (random weights)")
    f.add_argument(
        "--codec", default="cpu", help="codec preset size: cpu (the bundled spectral codecs), tiny, small, paper"
    )
    f.add_argument("--head", default="rf", help="cam head")
    f.add_argument("--seconds", type=float, default=4.0, help="audio generated per profiled call")
    f.add_argument("--overlap", type=float, default=None, help="aar window overlap [the model's default, 0.5]")
    f.add_argument("--precision", default="float32", choices=("float32", "bfloat16", "int8"))
    f.add_argument("--threads", type=int)
    f.add_argument("--floors", action="store_true", help="also measure the matmul and memory-copy floors")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=run_profile)

    n = b.add_parser("nextscale-vs-nexttoken", help="AR steps and wall time: AAR vs the next-token baseline")
    n.add_argument("--preset", default="small")
    n.add_argument("--seconds", type=float, default=10.0)
    n.add_argument("--batch", default="1,16")
    n.add_argument("--repeats", type=int, default=2)
    n.add_argument("--threads", type=int)
    n.add_argument("--device", default="cpu")
    n.add_argument(
        "--codec", default=None, help="codec preset size (cpu: the bundled spectral codecs) [the preset's own]"
    )
    n.add_argument("--precision", default="float32", choices=("float32", "int8"), help="both models' weights")
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=run_nextscale)

    t = b.add_parser("train", help="training steps per second of any kind, through the real training loop")
    t.add_argument("kind", choices=KIND_NAMES)
    add_run_options(t)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--threads", type=int)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=run_train)
