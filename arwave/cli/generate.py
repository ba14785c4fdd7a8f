"""`arwave generate` and `arwave stream`: sample audio from any trained autoregressive run (CAM family,
AAR, next-token). Generic: the run is loaded with `arwave.load`, and the sampling options the user
gave are passed as keyword arguments to the model's `generate` / `stream`. Each model declares the
options it understands in `sampling_options`; any other option is refused with a one-line error.

    generate RUN --seconds S --out FILE.wav [--num N] [--seed S] [sampling options] [--json]
             [--loudness LUFS] [--include-prompt] [--quiet]
        --num N > 1 writes FILE-0.wav … FILE-{N−1}.wav; a progress bar with ETA while it samples
        (arwave.finish), then one line per file: path, length, rate, channels (and loudness)
    stream RUN [--seconds S] [--out FILE|-] [--seed S] [sampling options] [--json]
        writes a 16-bit PCM WAV while it is generated. To stdout (`-`) the header's RIFF and data sizes
        are 0xFFFFFFFF ("unknown length", read by ffmpeg/sox/aplay/soundfile); to a file they are
        patched at the end. RTF and latency to first audio go to stderr.

Before any work, both check every option and the output path (extension, folder, an existing file
needs --overwrite), and that --seconds is at most --max-seconds (default 600) and --num × --seconds
fits in memory. A file output is written beside the target and renamed over it at the end, so a
failure or Ctrl-C never truncates a file the user had. To stdout, the first chunk is generated before
any byte is written, so a bad sampling option fails with an error rather than half a WAV header.

Sampling options -> keyword arguments: --prompt FILE -> prompt (waveform (C, N) at the model's rate),
--class LABEL -> class_label (index into the model's label_names, or an int), --embedding FILE ->
embedding (float tensor from .npy / .safetensors), --cfg -> cfg,
--top-k -> top_k, --top-p -> top_p, --k-inf -> k_inf, --head-steps -> head_steps,
--temperature -> temperature.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path

import torch

from arwave.data.audio import write_wav_stream
from arwave.device import pick_device
from arwave.errors import ArwaveError
from arwave.generation import (
    MAX_SECONDS,
    check_memory,
    check_seconds,
    load_generator,
    sampling_kwargs,
)
from arwave.paths import check_output_file, replacing


def _add_sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed, same audio)")
    add_sampling_options(p)
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "float32", "bfloat16", "int8"),
        help="weights of the AR model: auto (default) = int8 on CPU where the model's layers are large "
        "enough to gain (paper-size CAM, AAR), else float32; int8 = dynamically quantized Linear "
        "layers (CPU); bfloat16 halves the memory read per frame (CPU with AVX512-BF16 or GPU)",
    )
    p.add_argument("--quantize", default=None, choices=("int8",), help="same as --precision int8")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch intra-op threads [1: batch-1 generation gains nothing from more, and loses 10-60x "
        "when another process holds a core; stream decodes on its own thread]",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors and warnings (and --json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--max-seconds",
        dest="max_seconds",
        type=float,
        default=MAX_SECONDS,
        metavar="S",
        help=f"refuse --seconds above S (default {MAX_SECONDS:g}; raise it for longer audio)",
    )


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    """The sampling flags every AR model kind may take (each model declares which it supports)."""
    p.add_argument("--prompt", default=None, metavar="FILE", help="audio file to continue")
    p.add_argument(
        "--class", dest="class_label", default=None, metavar="LABEL", help="class name (or index) to condition on"
    )
    p.add_argument(
        "--embedding",
        default=None,
        metavar="FILE",
        help="condition embedding (E,) or (num, E) in a .npy or single-tensor .safetensors file",
    )
    p.add_argument("--cfg", type=float, default=None, metavar="W", help="classifier-free guidance weight")
    p.add_argument(
        "--top-k", dest="top_k", type=int, default=None, metavar="K", help="token models: keep the K most likely"
    )
    p.add_argument("--top-p", dest="top_p", type=float, default=None, metavar="P", help="token models: nucleus mass")
    p.add_argument(
        "--k-inf",
        dest="k_inf",
        type=float,
        default=None,
        metavar="K",
        help="CAM: noise level put on generated context frames",
    )
    p.add_argument(
        "--head-steps",
        dest="head_steps",
        type=int,
        default=None,
        metavar="S",
        help="CAM: sampling steps of the per-frame head",
    )
    p.add_argument("--temperature", type=float, default=None, metavar="T", help="sampling temperature")


def register(sub) -> None:
    g = sub.add_parser(
        "generate",
        help="generate audio files from a trained AR model run",
        description="Generate audio clips from a trained autoregressive run (CAM, AAR, next-token).",
    )
    g.add_argument(
        "run", help="run folder (or a checkpoint folder inside it), or a bundled model's name (arwave models)"
    )
    g.add_argument("--seconds", type=float, required=True, help="length of each clip")
    g.add_argument(
        "--out", required=True, metavar="FILE", help="output file (.wav/.flac/...); N>1: FILE-0 … FILE-{N-1}"
    )
    g.add_argument("--num", type=int, default=1, help="number of clips (sampled as one batch)")
    g.add_argument(
        "--loudness",
        type=float,
        default=None,
        metavar="LUFS",
        help="normalise each clip to this integrated loudness (ITU-R BS.1770, e.g. -14), never clipping",
    )
    g.add_argument(
        "--include-prompt",
        dest="include_prompt",
        action="store_true",
        help="with --prompt: write the prompt followed by its continuation",
    )
    _add_sampling(g)
    g.set_defaults(func=cmd_generate)

    s = sub.add_parser(
        "stream",
        help="stream audio while it is generated (WAV to a file or stdout)",
        description="Generate one clip and write it as it is generated (16-bit WAV). '-' = stdout.",
    )
    s.add_argument(
        "run", help="run folder (or a checkpoint folder inside it), or a bundled model's name (arwave models)"
    )
    s.add_argument("--seconds", type=float, default=10.0, help="length to generate (default 10)")
    s.add_argument("--out", default="-", metavar="FILE|-", help="WAV file, or - for stdout (default)")
    _add_sampling(s)
    s.set_defaults(func=cmd_stream)


def _precision(args) -> str | None:
    quantize = getattr(args, "quantize", None)
    if quantize and args.precision not in (None, "auto", quantize):
        raise ArwaveError(f"--quantize {quantize} contradicts --precision {args.precision}")
    return quantize or args.precision


# ---------------------------------------------------------------------------------------------------
# generate


def output_path(out: str, num: int, i: int) -> Path:
    """Clip i of num: OUT itself for one clip, else OUT-i (before the extension)."""
    path = Path(out)
    return path if num == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")


def output_paths(out: str, num: int) -> list[Path]:
    return [output_path(out, num, i) for i in range(num)]


def cmd_generate(args) -> int:
    import warnings

    from arwave import finish
    from arwave.console import bars, quiet
    from arwave.data.audio import WRITE_EXTENSIONS, write_audio
    from arwave.errors import ArwaveWarning

    check_seconds(args.seconds, args.max_seconds)
    if args.num < 1:
        raise ArwaveError(f"--num must be >= 1, got {args.num}")
    include_prompt, loudness, silent = (
        getattr(args, "include_prompt", False),
        getattr(args, "loudness", None),
        getattr(args, "quiet", False),
    )
    if include_prompt and args.prompt is None:
        raise ArwaveError("--include-prompt needs --prompt FILE (the audio the clip continues)")
    if loudness is not None:
        finish.check_loudness_target(loudness, args.seconds if not include_prompt else math.inf)
    # before any work (a bad path found after generating would waste it all): the first path fully (the
    # others share its folder and extension), then, once --num is known to fit, whether the others exist
    check_output_file(output_path(args.out, args.num, 0), args.overwrite, WRITE_EXTENSIONS, "audio")
    model = load_generator(args.run, args.device, _precision(args), 1 if args.threads is None else args.threads)
    kwargs = sampling_kwargs(model, args)
    check_memory(args.num, args.seconds, model, str(pick_device(args.device, "--device")))
    paths = output_paths(args.out, args.num)
    for path in paths[1:]:
        check_output_file(path, args.overwrite)
    prompt = kwargs.get("prompt")
    t0 = time.perf_counter()
    with quiet(silent), finish.progress_bar(model, args.seconds, kwargs, enabled=bars(not silent)):
        audio = model.generate(seconds=args.seconds, num=args.num, seed=args.seed, **kwargs)
    wall = time.perf_counter() - t0
    lufs = []
    for path, clip in zip(paths, audio):
        if include_prompt:
            clip = torch.cat([prompt.to(clip), clip], dim=-1)
        level = None
        if loudness is not None:
            if clip.shape[-1] < finish.LOUDNESS_BLOCK_S * model.sample_rate:
                raise ArwaveError(f"--loudness needs clips of at least {finish.LOUDNESS_BLOCK_S:g} s")
            clip, level, problem = finish.normalize_loudness(clip, model.sample_rate, loudness)
            if problem:
                warnings.warn(f"{path}: {problem}", ArwaveWarning, stacklevel=2)
        lufs.append(level)
        write_audio(path, clip, model.sample_rate)
        if not silent:
            print(finish.describe(path, clip, model.sample_rate, level))
    rtf = args.num * args.seconds / max(wall, 1e-9)
    if not silent:
        print(f"generated {args.num} × {args.seconds:g} s in {wall:.2f} s ({rtf:.2f}× real time)", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "files": [str(p) for p in paths],
                    "num": args.num,
                    "seconds": args.seconds,
                    "sample_rate": model.sample_rate,
                    "channels": model.channels,
                    "seed": args.seed,
                    "wall_s": round(wall, 4),
                    "rtf": round(rtf, 4),
                    "include_prompt": include_prompt,
                    "seconds_written": round(clip.shape[-1] / model.sample_rate, 6),
                    "loudness_lufs": [None if v is None else round(v, 2) for v in lufs],
                }
            )
        )
    return 0


# ---------------------------------------------------------------------------------------------------
# stream


def cmd_stream(args) -> int:
    check_seconds(args.seconds, args.max_seconds)
    to_stdout = args.out == "-"
    if to_stdout and args.json:
        raise ArwaveError("--json needs --out FILE (stdout carries the audio)")
    if to_stdout and sys.stdout.isatty():
        raise ArwaveError("refusing to write binary audio to a terminal: pipe it (| aplay) or give --out FILE")
    if not to_stdout:
        check_output_file(args.out, args.overwrite, (".wav",), "a stream (16-bit WAV)")
    model = load_generator(args.run, args.device, _precision(args), 1 if args.threads is None else args.threads)
    kwargs = sampling_kwargs(model, args)
    check_memory(1, args.seconds, model, str(pick_device(args.device, "--device")))
    t0 = time.perf_counter()
    chunks = iter(model.stream(seconds=args.seconds, seed=args.seed, **kwargs))
    chunks = itertools.chain([next(chunks)], chunks)  # the model checks its options here: nothing written yet
    first = time.perf_counter() - t0
    if to_stdout:
        samples = write_wav_stream(sys.stdout.buffer, chunks, model.sample_rate, model.channels)
        wall = time.perf_counter() - t0
    else:
        with replacing(args.out) as tmp, open(tmp, "wb") as f:
            samples = write_wav_stream(f, chunks, model.sample_rate, model.channels)
            wall = time.perf_counter() - t0
    audio_s = samples / model.sample_rate
    rtf = audio_s / max(wall, 1e-9)
    if not getattr(args, "quiet", False):
        print(
            f"streamed {audio_s:.2f} s of audio in {wall:.2f} s: {rtf:.2f}× real time, "
            f"first audio after {1000 * (first or 0):.0f} ms",
            file=sys.stderr,
        )
    if args.json:
        print(
            json.dumps(
                {
                    "file": args.out,
                    "audio_s": round(audio_s, 4),
                    "wall_s": round(wall, 4),
                    "rtf": round(rtf, 4),
                    "first_audio_ms": round(1000 * (first or 0), 2),
                    "sample_rate": model.sample_rate,
                    "channels": model.channels,
                    "seed": args.seed,
                }
            )
        )
    return 0
