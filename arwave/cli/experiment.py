"""`arwave experiment {noise-aug,sat-vs-rvq,aar-vs-nexttoken}`: the papers' claims, one command each.

Each writes OUT/results.json, OUT/report.html and plots, and prints a JSON object as its last line with --json.
See docs/experiments.md for what was measured on a CPU and what it means.
"""

from __future__ import annotations

import json


def _finish(summary: dict, args) -> int:
    print(f"results in {args.out}/results.json and {args.out}/report.html")
    if args.json:
        print(json.dumps(summary, default=float))
    return 0


def run_noise_aug(args) -> int:
    from arwave.experiments.claims import noise_aug

    variants = args.variants.split(",") if args.variants else None
    return _finish(
        noise_aug(
            args.out,
            args.minutes,
            args.preset,
            args.codec,
            variants,
            args.context_multiple,
            args.num,
            args.seed,
            args.data,
            not args.quiet,
        ),
        args,
    )


def run_sat_vs_rvq(args) -> int:
    from arwave.experiments.claims import sat_vs_rvq

    return _finish(sat_vs_rvq(args.out, args.minutes, args.preset, args.data, args.max_items, not args.quiet), args)


def run_aar_vs_nexttoken(args) -> int:
    from arwave.experiments.claims import aar_vs_nexttoken

    return _finish(
        aar_vs_nexttoken(
            args.out,
            args.minutes,
            args.preset,
            args.msrq_codec,
            args.rvq_codec,
            args.classifier,
            args.num_per_class,
            args.seconds,
            args.data,
            args.seed,
            not args.quiet,
            aar=args.aar,
            nexttoken=args.nexttoken,
        ),
        args,
    )


def register(sub) -> None:
    p = sub.add_parser("experiment", help="reproduce the papers' claims: noise-aug, sat-vs-rvq, aar-vs-nexttoken")
    e = p.add_subparsers(dest="which", metavar="WHICH", required=True)

    def common(q, default_out):
        q.add_argument("--minutes", type=float, default=5.0, help="training budget per model [5]")
        q.add_argument("--preset", default="small", choices=("tiny", "small", "paper"))
        q.add_argument("--data", metavar="MANIFEST", help="train on this manifest instead of the built-in corpus")
        q.add_argument("--out", default=default_out)
        q.add_argument("--quiet", action="store_true")
        q.add_argument("--json", action="store_true")

    a = e.add_parser("noise-aug", help="(a) CAM vs MAR-RF, GIVT vs GIVT+noise: FAD over time of long rollouts")
    common(a, "experiments/noise-aug")
    a.add_argument("--codec", metavar="RUN", help="continuous codec run (default: train one)")
    a.add_argument("--variants", help="comma list of CAM, MAR-RF, GIVT, GIVT+noise, MAR [CAM,MAR-RF,GIVT,GIVT+noise]")
    a.add_argument("--context-multiple", type=float, default=4.0, help="rollout length in training contexts [4]")
    a.add_argument("--num", type=int, default=8, help="rollouts per model [8]")
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(func=run_noise_aug)

    b = e.add_parser("sat-vs-rvq", help="(b) SAT (455 tokens/s) vs RVQ (750 tokens/s): MEL/STFT distance, equal budget")
    common(b, "experiments/sat-vs-rvq")
    b.add_argument("--max-items", type=int, default=256, help="test windows evaluated [256]")
    b.set_defaults(func=run_sat_vs_rvq)

    c = e.add_parser("aar-vs-nexttoken", help="(c) AAR vs next-token: FAD/ISc/KL and generation speed")
    common(c, "experiments/aar-vs-nexttoken")
    c.add_argument("--msrq-codec", metavar="RUN", help="msrq codec run (default: train one)")
    c.add_argument("--rvq-codec", metavar="RUN", help="rvq codec run (default: train one)")
    c.add_argument("--classifier", metavar="RUN", help="classifier run for FAD/ISc/KL (default: train one)")
    c.add_argument("--aar", metavar="NAME|RUN", help="compare this AAR (e.g. the bundled aar) instead of training one")
    c.add_argument(
        "--nexttoken",
        metavar="NAME|RUN",
        help="compare this next-token model (e.g. the bundled one) instead of training one",
    )
    c.add_argument("--num-per-class", type=int, default=2)
    c.add_argument("--seconds", type=float, help="length of each generated clip [one window]")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=run_aar_vs_nexttoken)
