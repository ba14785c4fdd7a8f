"""`arwave data corpus` (render/reuse the built-in corpus) and `arwave data prepare DIR` (index a folder)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    data = subparsers.add_parser(
        "data",
        help="build the built-in corpus or index a folder of audio",
        description="Datasets: the built-in rendered corpus, or a manifest of your own audio.",
    )
    verbs = data.add_subparsers(dest="data_command", metavar="{corpus,prepare}")
    data.set_defaults(func=lambda args: data.print_help())

    corpus = verbs.add_parser(
        "corpus",
        help="render (or reuse) the built-in corpus",
        description="Render music21's Bach chorales and folk tunes through a General MIDI SoundFont into "
        "single-instrument 48 kHz stereo FLAC files labelled by instrument, with a manifest and a "
        "train/val/test split by piece. Cached: a second call reuses the files.",
    )
    corpus.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="corpus folder (default: $ARWAVE_CACHE/corpus or ~/.cache/arwave/corpus)",
    )
    corpus.add_argument("--minutes", type=float, default=6.0, help="minutes of audio (at least; default 6)")
    corpus.add_argument(
        "--instruments",
        metavar="A,B,...",
        default=None,
        help="comma-separated instrument names (default: piano,vibraphone,church_organ,"
        "nylon_guitar,violin,trumpet,clarinet,flute)",
    )
    corpus.add_argument(
        "--soundfont",
        metavar="FILE",
        default=None,
        help="any .sf2/.sf3 General MIDI SoundFont (default: TimGM6mb.sf2 from pretty_midi)",
    )
    corpus.add_argument("--clip-seconds", type=float, default=15.0, help="longest excerpt of one piece (default 15)")
    corpus.add_argument("--seed", type=int, default=0, help="order of pieces (default 0)")
    corpus.add_argument("--list-instruments", action="store_true", help="print the known instrument names and exit")
    corpus.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
    corpus.set_defaults(func=run_corpus)

    prepare = verbs.add_parser(
        "prepare",
        help="index a folder of audio into a manifest",
        description="Index every audio file under DIR (wav, flac, ogg, opus, mp3, aiff) into a JSONL manifest "
        "with a deterministic train/val/test split. Labels come from DIR/labels.csv (path,label), "
        "else from the top-level sub-folder names. Unusable files are skipped and listed with the "
        "reason; the command still succeeds.",
    )
    prepare.add_argument("dir", metavar="DIR", help="folder of audio files (searched recursively)")
    prepare.add_argument(
        "--out", metavar="MANIFEST", default=None, help="manifest to write (default: DIR/manifest.jsonl)"
    )
    prepare.add_argument(
        "--labels", metavar="CSV", default=None, help="labels file path,label (default: DIR/labels.csv if present)"
    )
    prepare.add_argument("--min-seconds", type=float, default=0.1, help="shorter files are skipped (default 0.1)")
    prepare.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
    prepare.add_argument("--overwrite", action="store_true", help="replace an existing manifest")
    prepare.set_defaults(func=run_prepare)


def run_corpus(args: argparse.Namespace) -> int:
    from arwave.data.corpus import render_corpus
    from arwave.data.synth import INSTRUMENTS

    if args.list_instruments:
        for name, (program, low, high) in INSTRUMENTS.items():
            print(f"{name:16s} GM program {program:3d}  notes {low}-{high}")
        return 0
    report = render_corpus(
        args.out,
        minutes=args.minutes,
        instruments=args.instruments,
        soundfont=args.soundfont,
        seed=args.seed,
        clip_seconds=args.clip_seconds,
    )
    s = report.splits
    print(
        f"corpus: {report.files} files, {report.seconds / 60:.2f} min, {len(report.instruments)} instruments "
        f"({', '.join(report.instruments)})"
    )
    print(f"split by piece: train {s['train']}, val {s['val']}, test {s['test']}")
    if report.rendered:
        print(
            f"rendered {report.rendered} files ({report.rendered_seconds / 60:.2f} min) in {report.render_wall:.1f} s "
            f"= {report.realtime_factor:.0f}x real time ({report.render_cpu:.1f} s CPU); "
            f"reused {report.reused} cached files"
        )
    else:
        print(f"reused {report.reused} cached files (nothing rendered)")
    if report.skipped_pieces:
        print(
            f"skipped {len(report.skipped_pieces)} pieces music21 could not use: {', '.join(report.skipped_pieces[:5])}"
            + (" ..." if len(report.skipped_pieces) > 5 else "")
        )
    print(f"manifest: {report.manifest}")
    if args.json:
        print(json.dumps(report.to_dict()))
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from arwave.data.manifest import MANIFEST_NAME, prepare_folder
    from arwave.paths import check_output_file

    # before indexing (which decodes every file): never replace a manifest the user has without --overwrite
    check_output_file(
        args.out or Path(args.dir).expanduser() / MANIFEST_NAME, args.overwrite, (".jsonl",), "a manifest"
    )
    report = prepare_folder(args.dir, out=args.out, labels=args.labels, min_seconds=args.min_seconds)
    s = report.splits
    print(f"indexed {report.indexed} files ({report.seconds / 60:.2f} min), skipped {len(report.skipped)}")
    for path, reason in report.skipped:
        print(f"  skipped {path}: {reason}")
    if report.labels:
        print(f"labels ({len(report.labels)}): {', '.join(report.labels)}")
    print(f"split: train {s['train']}, val {s['val']}, test {s['test']}")
    print(f"manifest: {report.manifest}")
    if args.json:
        print(json.dumps(report.to_dict()))
    return 0
