"""Codec speed: parameters and encode / decode speed (× real time) per preset and bottleneck.

Random weights (speed does not depend on training); msrq/rvq codebooks are random too. Each number is
the best of `repeats` timed calls after one warm-up call, batch 1, under torch.no_grad and eval mode.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch


def _best_time(fn, repeats: int, sync) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def bench_codec(
    presets: Iterable[str] = ("tiny", "small", "paper"),
    bottlenecks: Iterable[str] = ("continuous", "msrq", "rvq"),
    seconds: float = 10.0,
    threads: int | None = None,
    device: str = "cpu",
    repeats: int = 2,
    seed: int = 0,
) -> list[dict]:
    """One row per (preset size, bottleneck): params, tokens_per_second, encode_xrt / decode_xrt
    (seconds of audio per wall second; > 1 is faster than real time) and the raw timings."""
    from arwave.codec.kind import build_model
    from arwave.registry import preset

    if threads is not None:
        torch.set_num_threads(int(threads))
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    rows = []
    for size in presets:
        for bottleneck in bottlenecks:
            cfg = preset("codec", f"{size}-{bottleneck}")
            torch.manual_seed(seed)
            codec = build_model(cfg).to(dev).eval()
            n = int(round(seconds * codec.sample_rate))
            audio = 0.1 * torch.randn(1, codec.channels, n, device=dev)
            tokens = codec.encode(audio)
            t_enc = _best_time(lambda: codec.encode(audio), repeats, sync)
            t_dec = _best_time(lambda: codec.decode(tokens), repeats, sync)
            rows.append(
                {
                    "preset": cfg.preset,
                    "bottleneck": bottleneck,
                    "params": sum(p.numel() for p in codec.parameters()),
                    "sample_rate": codec.sample_rate,
                    "channels": codec.channels,
                    "hop": codec.hop,
                    "frame_rate": codec.frame_rate,
                    "tokens_per_second": codec.tokens_per_second,
                    "causal": codec.causal,
                    "seconds": seconds,
                    "device": str(dev),
                    "threads": torch.get_num_threads(),
                    "encode_s": t_enc,
                    "decode_s": t_dec,
                    "encode_xrt": seconds / t_enc,
                    "decode_xrt": seconds / t_dec,
                }
            )
    return rows
