"""`arwave eval {recon,gen,fad-over-time,fad,classifier}`: the metrics of docs/metrics.md from the command line.

Each prints a readable summary, and with `--json` one JSON object as its last stdout line.
"""

from __future__ import annotations

import json
from pathlib import Path

from arwave.cli.generate import add_sampling_options
from arwave.errors import ArwaveError
from arwave.generation import check_memory, check_seconds, load_generator, sampling_kwargs
from arwave.paths import check_output_file


def emit(result: dict, as_json: bool, lines: list[str]) -> None:
    for line in lines:
        print(line)
    if as_json:
        print(json.dumps(result, default=float))


def run_recon(args) -> int:
    import arwave
    from arwave.codec.model import Codec
    from arwave.evaluation.recon import evaluate_codec

    codec = arwave.load(args.run)
    if not isinstance(codec, Codec):
        raise ArwaveError(
            f"{args.run}: a {codec.config.kind} run; eval recon measures codec runs (use eval gen for AR models)"
        )
    result = evaluate_codec(codec, args.split, args.seconds, args.data, args.max_items, progress=not args.json)
    result.update(run=str(args.run))
    seconds = result["seconds_per_item"]
    emit(
        result,
        args.json,
        [
            f"{args.run}: {result['bottleneck']} codec, {result['tokens_per_second']:g} tokens/s, "
            f"MEL distance {result['mel_distance']:.4f}, STFT distance {result['stft_distance']:.4f} "
            f"over {result['num_items']} items of {seconds:g} s ({args.split})"
        ],
    )
    return 0


def run_gen(args) -> int:
    from arwave.data.audio import write_audio
    from arwave.evaluation.generated import evaluate_generated, generate_clips, reference_dataset

    if args.num < 1 or args.batch < 1:
        raise ArwaveError(f"--num and --batch must be >= 1, got {args.num} and {args.batch}")
    check_seconds(args.seconds)
    if args.out:
        for i in range(args.num):
            check_output_file(Path(args.out) / f"gen-{i:03d}.wav", args.overwrite)
    model = load_generator(args.run)
    check_memory(args.batch, args.seconds, model, "cpu")
    waves = generate_clips(model, args.num, args.seconds, args.batch, args.seed, **sampling_kwargs(model, args))
    if args.out:
        out = Path(args.out)
        for i, w in enumerate(waves):
            write_audio(out / f"gen-{i:03d}.wav", w, model.sample_rate)
    reference = reference_dataset(model, args.split, args.seconds, args.reference)
    result = evaluate_generated(
        waves,
        reference,
        embedder=args.embedder,
        classifier_run=args.classifier,
        sample_rate=model.sample_rate,
        progress=not args.json,
    )
    result.update(run=str(args.run), seconds=args.seconds, split=args.split)
    lines = [f"{args.run}: {args.num} clips of {args.seconds:g} s vs {result['num_reference']} reference clips"]
    for name in result["embedders"]:
        parts = [f"FAD {result['fad'][name]:.4f}"]
        if name in result.get("isc", {}):
            parts.append(f"ISc {result['isc'][name]:.3f}")
        if name in result.get("kl_marginal", {}):
            parts.append(f"KL(marginal) {result['kl_marginal'][name]:.4f}")
        lines.append(f"  [{name}] " + ", ".join(parts))
    emit(result, args.json, lines)
    return 0


def run_fad_over_time(args) -> int:
    from arwave.evaluation.fad_over_time import fad_over_time, plot_fad_over_time, training_context_seconds
    from arwave.evaluation.generated import reference_dataset

    if args.plot:
        check_output_file(args.plot, args.overwrite, (".png",), "a plot")
    results = {}
    for run in args.runs:
        model = load_generator(run)
        context = training_context_seconds(model)
        seconds = args.seconds or args.context_multiple * context
        check_seconds(seconds)
        check_memory(args.num, seconds, model, "cpu")
        window = args.window or context
        waves = model.generate(seconds, num=args.num, seed=args.seed, **sampling_kwargs(model, args))
        reference = reference_dataset(model, args.split, window, args.reference)
        res = fad_over_time(
            waves, model.sample_rate, reference, embedder=args.embedder, window_seconds=window, progress=not args.json
        )
        res.update(run=str(run), rollout_seconds=seconds, context_seconds=context)
        results[Path(run).name if Path(run).name not in results else str(run)] = res
    if args.plot:
        plot_fad_over_time(results, args.plot)
    lines = [
        f"{name}: FAD per {r['window_seconds']:g} s window [{r['embedder']}] "
        + " ".join(f"{v:.3f}" for v in r["fad"])
        + f"  (FAD_acc {r['fad_acc']:.3f})"
        for name, r in results.items()
    ]
    emit({"runs": results, "plot": args.plot}, args.json, lines)
    return 0


def run_classifier(args) -> int:
    from arwave.evaluation.classifier import evaluate_classifier

    result = evaluate_classifier(args.run, split=args.split, progress=not args.json)
    emit(
        result,
        args.json,
        [f"{args.run}: accuracy {result['accuracy']:.3f} on {result['num_items']} {args.split} items"],
    )
    return 0


def run_fad(args) -> int:
    from arwave.evaluation.fad_folders import fad_folders, write_per_file_csv

    res = fad_folders(
        args.reference,
        args.eval,
        embedder=args.embedder,
        per_file=bool(args.per_file),
        inf=args.inf,
        cache=not args.no_cache,
        progress=not args.json,
    )
    lines = [
        f"FAD [{res['embedder']}] {args.eval} vs {args.reference}: {res['fad']:.4f} "
        f"({res['num_eval_files']} files, {res['num_eval_frames']} frames vs {res['num_reference_files']} files, "
        f"{res['num_reference_frames']} frames; reference statistics: cache {res['reference_cache']})"
    ]
    if args.inf:
        fit = res["fad_inf_fit"]
        lines.append(
            f"FAD∞ [{res['embedder']}] {res['fad_inf']:.4f} (line through {len(fit['points'])} subsets of "
            f"{fit['points'][0]['frames']}–{fit['points'][-1]['frames']} frames, R² {fit['r2']:.3f})"
        )
    if args.per_file:
        write_per_file_csv(res["per_file"], args.per_file)
        worst = sorted(res["per_file"], key=lambda r: -r["fad"])[:3]
        lines.append(
            f"per-file FAD -> {args.per_file} (highest: "
            + ", ".join(f"{r['file']} {r['fad']:.3f}" for r in worst)
            + ")"
        )
    emit(res, args.json, lines)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "eval", help="evaluate: reconstruction, generation (FAD/ISc/KL), FAD over time, FAD of two folders, classifier"
    )
    ev = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    r = ev.add_parser("recon", help="MEL and STFT distance of a codec's reconstructions over a split")
    r.add_argument("run", help="codec run folder, or a bundled codec's name")
    r.add_argument("--data", metavar="MANIFEST", help="manifest (default: the codec's training data)")
    r.add_argument("--split", default="test")
    r.add_argument("--seconds", type=float, help="length of each evaluated crop [the codec's training window]")
    r.add_argument("--max-items", type=int)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=run_recon)

    g = ev.add_parser("gen", help="FAD / ISc / KL of generated audio against a reference split")
    g.add_argument("run", help="AR model run folder (cam, aar, nexttoken), or a bundled model's name")
    g.add_argument("--seconds", type=float, default=4.0)
    g.add_argument("--num", type=int, default=16)
    g.add_argument("--batch", type=int, default=8, help="clips generated at once")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--embedder", default="aisfx", help="aisfx | classifier:RUN | vggish | clap | panns")
    g.add_argument(
        "--classifier",
        metavar="RUN",
        help="also use this trained classifier run or bundled classifier (FAD + ISc + KL)",
    )
    g.add_argument("--reference", metavar="MANIFEST", help="reference audio (default: the model's training data)")
    g.add_argument("--split", default="test")
    g.add_argument("--out", metavar="DIR", help="also write the generated clips here")
    g.add_argument("--overwrite", action="store_true", help="replace clips already in --out DIR")
    add_sampling_options(g)
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=run_gen)

    f = ev.add_parser("fad-over-time", help="FAD of successive windows of long rollouts (error accumulation)")
    f.add_argument("runs", nargs="+", help="one or more AR model runs (one line each on the plot)")
    f.add_argument("--context-multiple", type=float, default=4.0, help="rollout length in training contexts [4]")
    f.add_argument("--seconds", type=float, help="rollout length in seconds (overrides --context-multiple)")
    f.add_argument("--window", type=float, help="window length in seconds [one training context]")
    f.add_argument("--num", type=int, default=8, help="rollouts per model")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--embedder", default="aisfx")
    f.add_argument("--reference", metavar="MANIFEST")
    f.add_argument("--split", default="test")
    f.add_argument("--plot", metavar="PNG", help="write the FAD-vs-time plot here")
    f.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    add_sampling_options(f)
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=run_fad_over_time)

    d = ev.add_parser(
        "fad",
        help="FAD between two folders of audio (per-file scores, FAD∞)",
        description="FAD of the audio files of EVAL_DIR against those of REFERENCE_DIR. The "
        "reference statistics are cached per embedder and folder contents.",
    )
    d.add_argument("reference", metavar="REFERENCE_DIR")
    d.add_argument("eval", metavar="EVAL_DIR")
    d.add_argument("--embedder", default="aisfx", help="aisfx | classifier:RUN | vggish | clap | panns [aisfx]")
    d.add_argument("--per-file", metavar="CSV", help="also score each eval file against the reference; write a CSV")
    d.add_argument("--inf", action="store_true", help="also FAD∞: FAD extrapolated to infinitely many eval frames")
    d.add_argument("--no-cache", action="store_true", help="recompute the reference statistics")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=run_fad)

    c = ev.add_parser("classifier", help="accuracy of a trained classifier on a split")
    c.add_argument("run")
    c.add_argument("--split", default="test")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=run_classifier)
