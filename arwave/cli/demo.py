"""`arwave demo`: train, sample and evaluate the whole chain on the built-in corpus, and write a report."""
from __future__ import annotations

import json


def run(args) -> int:
    from arwave.experiments.demo import run_demo
    result = run_demo(args.out, minutes=args.minutes, preset=args.preset, seed=args.seed, progress=not args.quiet,
                      corpus_minutes=args.corpus_minutes)
    print(f"report written to {result['report']}")
    if args.json:
        print(json.dumps({k: result[k] for k in ("report", "wall_minutes", "classifier")} | {"runs": list(result["runs"])}, default=float))
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="the whole chain on the built-in corpus, with an HTML report",
                       description="Render the built-in corpus, train a classifier, a continuous codec + CAM and a "
                                   "SAT codec + AAR within a time budget, generate examples, evaluate them and write "
                                   "OUT/report.html. Trained runs in OUT/runs are reused on a second call.")
    p.add_argument("--minutes", type=float, default=10.0, help="time budget for the whole demo [10]")
    p.add_argument("--out", default="demo-out", help="output folder [demo-out]")
    p.add_argument("--preset", default="small", choices=("tiny", "small"), help="model sizes [small]")
    p.add_argument("--corpus-minutes", type=float, help="size of the built-in corpus to render [6]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)
