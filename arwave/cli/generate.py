"""`arwave generate` and `arwave stream`: sample audio from any trained autoregressive run (CAM family,
AAR, next-token). Generic: the run is loaded with `arwave.load`, and the sampling options the user
gave are passed as keyword arguments to the model's `generate` / `stream`. Each model declares the
options it understands in `sampling_options`; any other option is refused with a one-line error.

    generate RUN --seconds S --out FILE.wav [--num N] [--seed S] [sampling options] [--json]
             [--loudness LUFS] [--include-prompt] [--quiet]
        --num N > 1 writes FILE-0.wav … FILE-{N−1}.wav; a progress bar with ETA while it samples
        (arwave.cli.finish), then one line per file: path, length, rate, channels (and loudness)
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
import struct
import sys
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from arwave.config import at_least, between
from arwave.device import pick_device
from arwave.errors import ArwaveError
from arwave.paths import check_output_file, replacing

MAX_SECONDS = 600.0  # default --max-seconds: a longer request is far more often a typo than a wish

# CLI flag -> keyword argument of generate()/stream()
SAMPLING_FLAGS = {
    "prompt": "--prompt",
    "class_label": "--class",
    "embedding": "--embedding",
    "cfg": "--cfg",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "k_inf": "--k-inf",
    "head_steps": "--head-steps",
    "temperature": "--temperature",
}


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


# ---------------------------------------------------------------------------------------------------
# shared


def load_generator(run: str, device: str = "cpu", precision: str | None = None, threads: int | None = None):
    import arwave

    if threads is not None:
        if threads < 1:
            raise ArwaveError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    model = arwave.load(run, device=str(pick_device(device, "--device")))
    kind = getattr(getattr(model, "config", None), "kind", type(model).__name__)
    if not hasattr(model, "generate") or not getattr(model, "sample_rate", None):
        raise ArwaveError(f"{run}: a {kind} run does not generate audio (use a cam, aar or nexttoken run)")
    if precision == "auto":
        from arwave.models.quantize import auto_precision

        precision = auto_precision(model)
    if precision not in (None, "float32"):
        if not hasattr(model, "set_precision"):
            raise ArwaveError(f"{kind} models do not take --precision")
        model.set_precision(precision)
    return model


def _precision(args) -> str | None:
    quantize = getattr(args, "quantize", None)
    if quantize and args.precision not in (None, "auto", quantize):
        raise ArwaveError(f"--quantize {quantize} contradicts --precision {args.precision}")
    return quantize or args.precision


def resolve_class(model, label: str) -> int:
    """A class name from the model's label list, or an integer index."""
    names = list(getattr(model, "label_names", []) or [])
    if label in names:
        return names.index(label)
    try:
        return int(label)
    except ValueError:
        known = ", ".join(names) if names else "none: the model is unconditional"
        raise ArwaveError(f"--class {label}: unknown class (known: {known})") from None


def sampling_kwargs(model, args) -> dict:
    """The sampling options the user gave, checked against the model's `sampling_options`."""
    given = {k: getattr(args, k) for k in SAMPLING_FLAGS if getattr(args, k, None) is not None}
    check_sampling_values(given)
    supported = getattr(model, "sampling_options", None)
    if supported is not None:
        bad = [SAMPLING_FLAGS[k] for k in given if k not in supported]
        if bad:
            kind = getattr(getattr(model, "config", None), "kind", type(model).__name__)
            ok = " ".join(SAMPLING_FLAGS[k] for k in SAMPLING_FLAGS if k in supported) or "none"
            raise ArwaveError(f"{kind} models do not take {', '.join(bad)} (they take: {ok})")
    if "prompt" in given:
        from arwave.data.audio import load_audio

        given["prompt"] = load_audio(given["prompt"], sample_rate=model.sample_rate, channels=model.channels)
    if "class_label" in given:
        given["class_label"] = resolve_class(model, given["class_label"])
    if "embedding" in given:
        given["embedding"] = load_embedding(given["embedding"])
    return given


# numeric sampling option -> the values it allows (the same rules as the config fields they override)
_SAMPLING_RANGES = {
    "cfg": at_least(0),
    "top_k": at_least(0),
    "top_p": between(0, 1),
    "k_inf": between(0, 1, hi_open=True),
    "head_steps": at_least(1),
    "temperature": at_least(0),
}


def check_sampling_values(given: dict) -> None:
    """Numeric sampling options in range (finite; e.g. --temperature >= 0, --head-steps >= 1, --k-inf < 1)."""
    for name, value in given.items():
        rule = _SAMPLING_RANGES.get(name)
        if rule is not None and not rule.allows(value):
            raise ArwaveError(f"{SAMPLING_FLAGS[name]} {value:g}: must be {rule}")


def load_embedding(path: str) -> torch.Tensor:
    """A float vector (E,) or matrix (num, E) from .npy (no pickles) or a one-tensor .safetensors."""
    p = Path(path)
    if not p.is_file():
        raise ArwaveError(f"{p}: no such embedding file")
    try:
        if p.suffix == ".npy":
            return torch.from_numpy(np.load(p, allow_pickle=False)).float()
        if p.suffix == ".safetensors":
            from arwave.checkpoint import load_tensors

            tensors = load_tensors(p)
            if len(tensors) != 1:
                raise ArwaveError(f"{p}: expected one tensor, found {len(tensors)}")
            return next(iter(tensors.values())).float()
    except ValueError as err:
        raise ArwaveError(f"{p}: unreadable embedding ({err})") from None
    raise ArwaveError(f"{p}: embeddings are read from .npy or .safetensors files")


def check_seconds(seconds: float, max_seconds: float = MAX_SECONDS) -> None:
    """A finite, positive length no longer than `max_seconds` (which the user can raise)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ArwaveError(f"--seconds {seconds:g}: must be a finite number > 0")
    if not (max_seconds > 0):
        raise ArwaveError(f"--max-seconds {max_seconds:g}: must be > 0")
    if seconds > max_seconds:
        raise ArwaveError(
            f"--seconds {seconds:g} is over the limit of {max_seconds:g} s; "
            f"pass --max-seconds {seconds:g} if you mean it"
        )


def _available_bytes(device: str) -> int | None:
    """Free memory on `device` (MemAvailable on Linux CPUs), or None when it cannot be told."""
    if str(device).startswith("cuda"):
        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(num: int, seconds: float, model, device: str) -> None:
    """Refuse a batch whose audio alone would not fit: num × samples × channels × 4 bytes, times 8 for the
    decoder's work buffers (a floor, not an estimate of the whole model's needs)."""
    need = 8 * 4 * num * round(seconds * model.sample_rate) * model.channels
    free = _available_bytes(device)
    if free is not None and need > free:
        raise ArwaveError(
            f"--num {num} × {seconds:g} s needs at least {need / 1e9:.3g} GB of memory, more than the "
            f"{free / 1e9:.3g} GB free: generate fewer or shorter clips per call"
        )


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

    from arwave.cli import finish
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


class WavStreamWriter:
    """16-bit PCM WAV written chunk by chunk. Sizes are 0xFFFFFFFF until `close`, which patches them
    when the output is seekable (a file) and leaves them "unknown" otherwise (a pipe)."""

    UNKNOWN = 0xFFFFFFFF

    def __init__(self, f: BinaryIO, sample_rate: int, channels: int):
        self.f, self.sample_rate, self.channels = f, int(sample_rate), int(channels)
        self.data_bytes = 0
        self.f.write(self._header(self.UNKNOWN))
        self.f.flush()

    def _header(self, data_bytes: int) -> bytes:
        riff = self.UNKNOWN if data_bytes == self.UNKNOWN else 36 + data_bytes
        block = 2 * self.channels
        return (
            b"RIFF"
            + struct.pack("<I", riff)
            + b"WAVE"
            + b"fmt "
            + struct.pack("<IHHIIHH", 16, 1, self.channels, self.sample_rate, self.sample_rate * block, block, 16)
            + b"data"
            + struct.pack("<I", data_bytes)
        )

    def write(self, chunk: torch.Tensor) -> None:
        """chunk (channels, n) float in [-1, 1]."""
        data = np.clip(chunk.detach().cpu().float().numpy(), -1.0, 1.0)
        pcm = np.round(data.T * 32767.0).astype("<i2").tobytes()  # interleaved frames
        self.f.write(pcm)
        self.f.flush()
        self.data_bytes += len(pcm)

    def close(self) -> None:
        try:
            seekable = self.f.seekable()
        except (AttributeError, OSError):
            seekable = False
        if seekable:
            self.f.seek(0)
            self.f.write(self._header(self.data_bytes))
            self.f.seek(0, 2)
        self.f.flush()


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
        samples, wall = _stream_to(sys.stdout.buffer, model, chunks, t0)
    else:
        with replacing(args.out) as tmp, open(tmp, "wb") as f:
            samples, wall = _stream_to(f, model, chunks, t0)
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


def _stream_to(f: BinaryIO, model, chunks, t0: float) -> tuple[int, float]:
    """Write the WAV header, then each chunk as it comes; (samples, wall seconds since t0)."""
    writer = WavStreamWriter(f, model.sample_rate, model.channels)
    samples = 0
    for chunk in chunks:
        writer.write(chunk)
        samples += chunk.shape[-1]
    wall = time.perf_counter() - t0
    writer.close()
    return samples, wall
