"""Encoded files: audio -> a codec's tokens or latents on disk (`arwave encode`) and back (`arwave decode`).

The file (codec.model.save_encoded) holds the tokens (msrq: `codes.<k>` (1, W, s_k); rvq: `codes`
(1, N, T)) or latents (continuous: `latents` (1, D, T)) plus metadata (bottleneck, rates, original
length), so decoding restores exactly the original number of samples. A file is checked against the
codec (the facts it was encoded with, shapes, value ranges) before the decoder sees it.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from arwave.errors import ArwaveError


def load_codec(run: str, device: str = "cpu"):
    """A codec run or bundled codec; any other kind of run is refused."""
    from arwave import load
    from arwave.codec.model import Codec

    model = load(run, device=device)
    if not isinstance(model, Codec):
        raise ArwaveError(f"{run}: a {model.config.kind!r} run, not a codec run")
    return model


def encode_file(codec, source: str | Path, output: str | Path, device: str = "cpu") -> dict:
    """Encode an audio file (any rate and channels) into `output`; returns what was written."""
    from arwave.codec.model import save_encoded
    from arwave.data.audio import load_audio

    audio = load_audio(source, sample_rate=codec.sample_rate, channels=codec.channels)
    t0 = time.time()
    tokens = codec.encode(audio[None].to(device))
    elapsed = time.time() - t0
    save_encoded(output, codec, tokens, audio.shape[-1], extra={"source": Path(source).name})
    count = codec.bottleneck.count(tokens)
    return {
        "output": str(output),
        "bottleneck": codec.kind,
        "seconds": audio.shape[-1] / codec.sample_rate,
        "count": int(count),
        "tokens_per_second": codec.tokens_per_second,
        "encode_seconds": elapsed,
    }


def decode_file(codec, source: str | Path, output: str | Path, codec_name: str, device: str = "cpu") -> dict:
    """Decode a file written by `encode_file` with the same codec (named `codec_name` in errors) into audio."""
    from arwave.codec.model import load_encoded
    from arwave.data.audio import write_audio

    tokens, meta = load_encoded(source)
    check_encoded(source, codec, codec_name, tokens, meta)
    tokens = [t.to(device) for t in tokens] if isinstance(tokens, list) else tokens.to(device)
    t0 = time.time()
    try:
        audio = codec.decode(tokens)[0, :, : meta["num_samples"]].cpu()
    except (RuntimeError, IndexError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArwaveError(f"{source}: its tokens do not fit codec {codec_name} ({reason})") from None
    elapsed = time.time() - t0
    write_audio(output, audio, codec.sample_rate)
    return {
        "output": str(output),
        "seconds": audio.shape[-1] / codec.sample_rate,
        "sample_rate": codec.sample_rate,
        "channels": codec.channels,
        "decode_seconds": elapsed,
    }


def check_encoded(path, codec, codec_name: str, tokens, meta: dict) -> None:
    """The facts the file was encoded with match the codec; shapes and value ranges a crafted or damaged
    file could get wrong are found here, not deep in the decoder."""
    facts = {
        "bottleneck": codec.kind,
        "sample_rate": codec.sample_rate,
        "channels": codec.channels,
        "hop": codec.hop,
        "latent_dim": codec.latent_dim,
    }
    if codec.bottleneck.unit_frames > 1:  # encoded in windows (msrq)
        facts["window_frames"] = codec.window_frames
    for key, value in facts.items():
        if meta.get(key) != value:
            raise ArwaveError(f"{path}: encoded with {key}={meta.get(key)!r}, but codec {codec_name} has {value!r}")
    for t in tokens if isinstance(tokens, list) else [tokens]:
        if t.ndim != 3 or t.shape[0] != 1 or t.shape[-1] == 0:
            raise ArwaveError(f"{path}: expected tensors of shape (1, rows, frames), found {tuple(t.shape)}")
        if not codec.bottleneck.codebook_size:  # latents, not codes
            if not t.is_floating_point() or t.shape[1] != codec.latent_dim or not bool(t.isfinite().all()):
                raise ArwaveError(
                    f"{path}: latents must be finite floats of shape (1, {codec.latent_dim}, frames), "
                    f"found {t.dtype} {tuple(t.shape)}"
                )
        else:
            size = codec.bottleneck.codebook_size
            if t.is_floating_point() or t.dtype == torch.bool:
                raise ArwaveError(f"{path}: codes must be integers, found {t.dtype}")
            if int(t.min()) < 0 or int(t.max()) >= size:
                raise ArwaveError(f"{path}: codes must lie in [0, {size}), found {int(t.min())}..{int(t.max())}")
