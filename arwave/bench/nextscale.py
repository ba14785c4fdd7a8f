"""Benchmark: next-scale (AAR) vs next-token sampling speed for the same audio, side by side.

Both models get the SAME transformer width, depth and heads (from the AAR preset; random weights —
speed does not depend on what the weights learned), the same condition and sampling settings
(class-conditional with CFG, i.e. a doubled batch, top-k/top-p, seeded). AAR runs over the msrq codec
preset's scales (K steps per window); the next-token GPT over the rvq variant of the same codec preset
(same frame rate, N levels, flat: N steps per frame). Timings are the median of `repeats` runs with the
two models interleaved, so machine load hits both alike. Codec decoding is timed separately.

AAR is timed twice: with independent windows (overlap 0: the paper's setting, 10 s = ten 1-s windows)
and with the default continuation (each window shares `overlap` of itself with the previous one, so
more windows are needed for the same audio).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable

import torch


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def build_pair(preset: str = "small", device: str = "cpu", codec: str | None = None, precision: str = "float32"):
    """(AAR, NextToken) with random weights and random codecs of the codec presets `preset` / `preset-rvq`
    (`codec`: another codec size, e.g. `cpu`: the spectral `cpu-msrq` / `cpu-rvq` of the bundled models),
    both at the AAR preset's width/depth/heads, weights in `precision`."""
    from arwave.models.aar.model import AAR
    from arwave.models.nexttoken.model import NextToken
    from arwave.registry import get_kind
    from arwave.registry import preset as get_preset

    torch.manual_seed(0)
    size = codec or preset
    msrq = get_kind("codec").build_model(get_preset("codec", f"{size}-msrq"), None).eval()
    rvq = get_kind("codec").build_model(get_preset("codec", f"{size}-rvq"), None).eval()
    a_cfg = dataclasses.replace(get_preset("aar", preset).model, num_classes=1, label_names=["x"])
    n_cfg = dataclasses.replace(
        get_preset("nexttoken", preset).model,
        num_classes=1,
        label_names=["x"],
        width=a_cfg.width,
        depth=a_cfg.depth,
        heads=a_cfg.heads,
        mlp_ratio=a_cfg.mlp_ratio,
        context_frames=rvq.window_frames,
        pattern="flat",
    )
    aar = AAR(a_cfg, codec=msrq).to(device).eval()
    gpt = NextToken(n_cfg, codec=rvq).to(device).eval()
    return aar.set_precision(precision), gpt.set_precision(precision)


@torch.no_grad()
def bench_nextscale_vs_nexttoken(
    preset: str = "small",
    seconds: float = 10.0,
    batch_sizes=(1, 16),
    repeats: int = 2,
    device: str = "cpu",
    threads: int | None = None,
    cfg: float = 3.0,
    top_k: int = 0,
    top_p: float = 0.95,
    overlap: float = 0.5,
    progress: bool = False,
    codec: str | None = None,
    precision: str = "float32",
) -> dict:
    """AR steps and wall time to sample `seconds` of audio tokens at each batch size, for AAR and the
    next-token baseline, plus their ratio; codec decode times separately. Returns a JSON-able dict."""
    if threads:
        torch.set_num_threads(int(threads))
    aar, gpt = build_pair(preset, device, codec=codec, precision=precision)
    msrq, rvq = aar.codec, gpt.codec
    frames = math.ceil(seconds * msrq.frame_rate)
    gpt_frames = math.ceil(seconds * rvq.frame_rate)
    opts = dict(class_label=0, cfg=cfg, top_k=top_k, top_p=top_p, temperature=1.0)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)

    def run_aar(batch, ov):
        def go():
            out = aar.sample_tokens(batch, frames=frames, seed=0, overlap=ov, **opts)
            sync()
            return out

        return go

    def run_gpt(batch):
        def go():
            out = gpt.sample_tokens(batch, frames=gpt_frames, seed=0, **opts)
            sync()
            return out

        return go

    result = {
        "preset": preset,
        "codec": codec or preset,
        "precision": precision,
        "seconds": seconds,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "sampling": {**opts, "class_label": 0},
        "transformer": {"width": aar.cfg.width, "depth": aar.cfg.depth, "heads": aar.cfg.heads},
        "aar": {
            "scales": aar.scales,
            "tokens_per_window": aar.L,
            "window_frames": aar.T,
            "frame_rate": msrq.frame_rate,
            "parameters": sum(p.numel() for p in aar.parameters()),
        },
        "nexttoken": {
            "levels": gpt.N,
            "pattern": "flat",
            "frame_rate": rvq.frame_rate,
            "frames": gpt_frames,
            "context_frames": gpt.cfg.context_frames,
            "ar_steps": gpt_frames * gpt.N,
            "parameters": sum(p.numel() for p in gpt.parameters()),
        },
        "batches": {},
    }
    for batch in batch_sizes:
        times = {"aar": [], "aar_continuation": [], "nexttoken": []}
        for rep in range(repeats):  # interleaved repetitions
            for name, fn in (
                ("aar", run_aar(batch, 0.0)),
                ("aar_continuation", run_aar(batch, overlap)),
                ("nexttoken", run_gpt(batch)),
            ):
                t, out = _timed(fn)
                times[name].append(t)
                if name == "aar":
                    windows = out
                elif name == "aar_continuation":
                    windows_cont = out
                else:
                    codes = out
                if progress:
                    print(f"batch {batch} rep {rep}: {name} {t:.2f} s", flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        t_dec_aar, _ = _timed(lambda: (aar.decode_windows(windows), sync()))
        t_dec_gpt, _ = _timed(lambda: (rvq.decode_latents(gpt.quantizer.decode(codes)), sync()))
        steps_aar, steps_cont = len(windows) * aar.K, len(windows_cont) * aar.K
        result["batches"][str(batch)] = {
            "aar": {"windows": len(windows), "ar_steps": steps_aar, "seconds": med["aar"], "runs": times["aar"]},
            "aar_continuation": {
                "overlap": overlap,
                "windows": len(windows_cont),
                "ar_steps": steps_cont,
                "seconds": med["aar_continuation"],
                "runs": times["aar_continuation"],
            },
            "nexttoken": {"ar_steps": gpt_frames * gpt.N, "seconds": med["nexttoken"], "runs": times["nexttoken"]},
            # the headline: continuous audio as `generate` makes it (continuation), not independent windows
            "speedup_continuation": med["nexttoken"] / med["aar_continuation"],
            "speedup_independent_windows": med["nexttoken"] / med["aar"],
            "speedup": med["nexttoken"] / med["aar"],
            "step_ratio": gpt_frames * gpt.N / steps_aar,
            "ms_per_step": {
                "aar": 1e3 * med["aar"] / steps_aar,
                "nexttoken": 1e3 * med["nexttoken"] / (gpt_frames * gpt.N),
            },
            "decode_seconds": {"aar": t_dec_aar, "nexttoken": t_dec_gpt},
        }
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    out = bench_nextscale_vs_nexttoken(
        args.preset,
        args.seconds,
        tuple(int(b) for b in args.batch_sizes.split(",")),
        args.repeats,
        args.device,
        args.threads,
        progress=True,
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
