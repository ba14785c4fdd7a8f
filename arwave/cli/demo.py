"""`arwave demo`: the bundled pretrained models generating, measured, in a report (default); or, with
`--from-scratch`, the whole chain trained on the built-in corpus within a time budget."""

from __future__ import annotations

import json

from arwave.errors import ArwaveError

# options of the train-everything path, and their defaults there
SCRATCH_ONLY = {"minutes": 10.0, "preset": "small", "corpus_minutes": None}
# options of the bundled path, and their defaults there
BUNDLED_ONLY = {
    "data": None,
    "seconds": 4.0,
    "seeds": 2,
    "classes": None,
    "rollout_seconds": 20.0,
    "window_seconds": 5.0,
    "rollouts": 2,
    "embedder": None,
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def run(args) -> int:
    given = lambda names: [_flag(n) for n in names if getattr(args, n) is not None]
    if args.from_scratch:
        if given(BUNDLED_ONLY):
            raise ArwaveError(f"{', '.join(given(BUNDLED_ONLY))}: not used with --from-scratch")
        opts = {k: (v if getattr(args, k) is None else getattr(args, k)) for k, v in SCRATCH_ONLY.items()}
        from arwave.experiments.demo import run_demo

        result = run_demo(
            args.out,
            minutes=opts["minutes"],
            preset=opts["preset"],
            seed=args.seed,
            progress=not args.quiet,
            corpus_minutes=opts["corpus_minutes"],
        )
        print(f"report written to {result['report']}")
        if args.json:
            print(
                json.dumps(
                    {k: result[k] for k in ("report", "wall_minutes", "classifier")} | {"runs": list(result["runs"])},
                    default=float,
                )
            )
        return 0
    if given(SCRATCH_ONLY):
        raise ArwaveError(
            f"{', '.join(given(SCRATCH_ONLY))}: only with --from-scratch (the default demo trains "
            "nothing: it uses the bundled models)"
        )
    opts = {k: (v if getattr(args, k) is None else getattr(args, k)) for k, v in BUNDLED_ONLY.items()}
    from arwave.experiments.bundled_demo import run_bundled_demo

    result = run_bundled_demo(
        args.out,
        data=opts["data"],
        seconds=opts["seconds"],
        seeds=opts["seeds"],
        classes=[c.strip() for c in opts["classes"].split(",") if c.strip()] if opts["classes"] else None,
        rollout_seconds=opts["rollout_seconds"],
        window_seconds=opts["window_seconds"],
        rollouts=opts["rollouts"],
        embedders=opts["embedder"],
        seed=args.seed,
        progress=not args.quiet,
    )
    print(f"report written to {result['report']}")
    if args.json:
        gq = result.get("generation_quality") or {}
        print(
            json.dumps(
                {
                    "report": result["report"],
                    "wall_minutes": result["wall_minutes"],
                    "data": result["data"],
                    "bundled": result["bundled"],
                    "skipped": result["skipped"],
                    "generation_quality": {
                        r["model"]: {"recognition": r["recognition"], "pass": r["pass"]} for r in gq.get("models", [])
                    },
                },
                default=float,
            )
        )
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the bundled pretrained models generating, measured, in an HTML report "
        "(--from-scratch: train the whole chain first)",
        description="Default: generate class-conditioned clips with the bundled cam, aar and nexttoken, "
        "reconstruct held-out clips with the bundled codecs, run a small generation-quality "
        "measurement and write OUT/report.html (how each model was trained, clips, "
        "spectrograms, metrics). Models that are not bundled are named and skipped. "
        "--from-scratch: render the built-in corpus, train a classifier, a continuous codec + "
        "CAM and a SAT codec + AAR within a time budget, then evaluate (trained runs in "
        "OUT/runs are reused on a second call).",
    )
    p.add_argument("--out", default="demo-out", help="output folder [demo-out]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true")
    b = p.add_argument_group("bundled models (default)")
    b.add_argument(
        "--data",
        metavar="MANIFEST",
        help="manifest with train and test splits [the bundles' training "
        "manifest if on this machine, else the built-in corpus, 40 min]",
    )
    b.add_argument("--seconds", type=float, help="length of each generated clip [4]")
    b.add_argument("--seeds", type=int, help="clips per class [2]")
    b.add_argument("--classes", help="comma-separated classes [all]")
    b.add_argument("--rollout-seconds", type=float, help="CAM rollout length, 0 = none [20]")
    b.add_argument("--window-seconds", type=float, help="FAD-over-time window [5]")
    b.add_argument("--rollouts", type=int, help="CAM rollouts [2]")
    b.add_argument(
        "--embedder",
        action="append",
        metavar="NAME",
        help="FAD embedder, repeatable [classifier:instrument-classifier]",
    )
    s = p.add_argument_group("--from-scratch (train everything)")
    s.add_argument("--from-scratch", action="store_true", help="train every model on the built-in corpus instead")
    s.add_argument("--minutes", type=float, help="time budget for the whole demo [10]")
    s.add_argument("--preset", choices=("tiny", "small"), help="model sizes [small]")
    s.add_argument("--corpus-minutes", type=float, help="size of the built-in corpus to render [6]")
    p.set_defaults(func=run)
