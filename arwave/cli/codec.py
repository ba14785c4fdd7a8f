"""`arwave encode RUN IN.wav OUT.safetensors` and `arwave decode RUN IN.safetensors OUT.wav`.

The encoded file holds the codec's tokens (msrq: `codes.<k>` (1, W, s_k); rvq: `codes` (1, N, T)) or
latents (continuous: `latents` (1, D, T)) plus metadata (bottleneck, rates, original length), so
`decode` restores exactly the original number of samples. Both check the output path before any work
and never replace an existing file without --overwrite.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def _load_codec(run: str, device: str):
    from arwave import load
    from arwave.codec.model import Codec
    from arwave.errors import ArwaveError

    model = load(run, device=device)
    if not isinstance(model, Codec):
        raise ArwaveError(f"{run}: a {model.config.kind!r} run, not a codec run")
    return model


def encode(args) -> int:
    from arwave.codec.model import save_encoded
    from arwave.data.audio import load_audio
    from arwave.paths import check_output_file

    check_output_file(args.output, args.overwrite, (".safetensors",), "encoded tokens")
    codec = _load_codec(args.run, args.device)
    audio = load_audio(args.input, sample_rate=codec.sample_rate, channels=codec.channels)
    t0 = time.time()
    tokens = codec.encode(audio[None].to(args.device))
    elapsed = time.time() - t0
    save_encoded(args.output, codec, tokens, audio.shape[-1], extra={"source": Path(args.input).name})
    seconds = audio.shape[-1] / codec.sample_rate
    what = "latent frames" if codec.kind == "continuous" else "tokens"
    count = (
        tokens.shape[-1]
        if codec.kind == "continuous"
        else sum(c[0].numel() for c in tokens)
        if codec.kind == "msrq"
        else tokens[0].numel()
    )
    print(f"{args.input}: {seconds:.2f} s -> {count} {what} ({codec.kind}) in {args.output}")
    if args.json:
        print(
            json.dumps(
                {
                    "output": str(args.output),
                    "bottleneck": codec.kind,
                    "seconds": seconds,
                    "count": int(count),
                    "tokens_per_second": codec.tokens_per_second,
                    "encode_seconds": elapsed,
                }
            )
        )
    return 0


def decode(args) -> int:
    from arwave.codec.model import load_encoded
    from arwave.data.audio import WRITE_EXTENSIONS, write_audio
    from arwave.errors import ArwaveError
    from arwave.paths import check_output_file

    check_output_file(args.output, args.overwrite, WRITE_EXTENSIONS, "audio")
    codec = _load_codec(args.run, args.device)
    tokens, meta = load_encoded(args.input)
    facts = {
        "bottleneck": codec.kind,
        "sample_rate": codec.sample_rate,
        "channels": codec.channels,
        "hop": codec.hop,
        "latent_dim": codec.latent_dim,
    }
    if codec.kind == "msrq":
        facts["window_frames"] = codec.window_frames
    for key, value in facts.items():
        if meta.get(key) != value:
            raise ArwaveError(f"{args.input}: encoded with {key}={meta.get(key)!r}, but codec {args.run} has {value!r}")
    if isinstance(tokens, list):
        tokens = [t.to(args.device) for t in tokens]
    else:
        tokens = tokens.to(args.device)
    _check_tokens(args.input, codec, tokens)
    t0 = time.time()
    try:
        audio = codec.decode(tokens)[0, :, : meta["num_samples"]].cpu()
    except (RuntimeError, IndexError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArwaveError(f"{args.input}: its tokens do not fit codec {args.run} ({reason})") from None
    elapsed = time.time() - t0
    write_audio(args.output, audio, codec.sample_rate)
    seconds = audio.shape[-1] / codec.sample_rate
    print(f"{args.input} -> {args.output}: {seconds:.2f} s at {codec.sample_rate} Hz, {codec.channels} channel(s)")
    if args.json:
        print(
            json.dumps(
                {
                    "output": str(args.output),
                    "seconds": seconds,
                    "sample_rate": codec.sample_rate,
                    "channels": codec.channels,
                    "decode_seconds": elapsed,
                }
            )
        )
    return 0


def _check_tokens(path, codec, tokens) -> None:
    """Shapes and value ranges a crafted or damaged file could get wrong (found here, not deep in the decoder)."""
    import torch

    from arwave.errors import ArwaveError

    for t in tokens if isinstance(tokens, list) else [tokens]:
        if t.ndim != 3 or t.shape[0] != 1 or t.shape[-1] == 0:
            raise ArwaveError(f"{path}: expected tensors of shape (1, rows, frames), found {tuple(t.shape)}")
        if codec.kind == "continuous":
            if not t.is_floating_point() or t.shape[1] != codec.latent_dim or not bool(t.isfinite().all()):
                raise ArwaveError(
                    f"{path}: latents must be finite floats of shape (1, {codec.latent_dim}, frames), "
                    f"found {t.dtype} {tuple(t.shape)}"
                )
        else:
            size = codec.cfg.codebook_size
            if t.is_floating_point() or t.dtype == torch.bool:
                raise ArwaveError(f"{path}: codes must be integers, found {t.dtype}")
            if int(t.min()) < 0 or int(t.max()) >= size:
                raise ArwaveError(f"{path}: codes must lie in [0, {size}), found {int(t.min())}..{int(t.max())}")


def register(sub) -> None:
    p = sub.add_parser("encode", help="encode audio with a trained codec run into codes or latents (.safetensors)")
    p.add_argument("run", metavar="RUN", help="codec run folder, or a bundled codec's name (arwave models)")
    p.add_argument("input", metavar="IN", help="audio file (any rate/channels; converted to the codec's)")
    p.add_argument("output", metavar="OUT", help="output .safetensors")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=encode)

    p = sub.add_parser("decode", help="decode codes or latents written by `arwave encode` back to audio")
    p.add_argument("run", metavar="RUN", help="codec run folder or bundled codec name (the one that encoded the file)")
    p.add_argument("input", metavar="IN", help=".safetensors from `arwave encode`")
    p.add_argument("output", metavar="OUT", help="output audio file (.wav, .flac, ...)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=decode)
