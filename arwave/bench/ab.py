"""Side-by-side (A/B) speed comparisons: ratios that survive a loaded machine.

Why: on a shared 2-core machine absolute timings move by 2x and more between runs, but two variants
timed in alternation within one process see the same load. Each experiment builds its variants once,
then runs `rounds` rounds; a round times every variant once (`reps` calls each, order rotated every
round). Reported per variant: the median over rounds of (this variant's time / the first variant's time
in the same round), and the median seconds per call (absolute: re-measure on a quiet machine).

    python -m arwave.bench.ab head int8-linear int8-cam aar stream [--rounds 7] [--json]

Random weights (speed does not depend on training), one intra-op thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch


def interleaved(variants: dict[str, Callable[[], object]], rounds: int = 7, reps: int = 1) -> dict:
    """{name: {"ratio": median time ratio to the first variant, "seconds": median s per call}}."""
    names = list(variants)
    for fn in variants.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            t0 = time.perf_counter()
            for _ in range(reps):
                variants[n]()
            times[n].append((time.perf_counter() - t0) / reps)
    base = times[names[0]]
    return {
        n: {
            "ratio": round(statistics.median(t / b for t, b in zip(times[n], base)), 3),
            "seconds": round(statistics.median(times[n]), 6),
        }
        for n in names
    }


def _randomize_zero_layers(model) -> None:
    for p in model.parameters():
        if p.dim() > 1 and p.abs().max() == 0:
            torch.nn.init.normal_(p, std=0.02)


# ---------------------------------------------------------------------------------------------------
# experiments: each returns {label: interleaved(...)} (one or more comparisons)


def exp_head(rounds: int, presets=("small", "paper")) -> dict:
    """rf head, one frame at batch 1: the per-step reference loop (modulations batched per frame, module
    calls per step: the code before StepPlan) vs StepPlan; with and without guidance."""
    from arwave.bench.cam import build_random
    from arwave.models.cam.heads import _guided

    out = {}
    for preset in presets:
        model, _ = build_random(preset, "rf", codec="cpu")
        head = model.head
        z, zu = torch.randn(1, model.cam.width), torch.randn(1, model.cam.width)

        def reference(cfg):
            def run():
                g = torch.Generator().manual_seed(0)
                x = torch.randn(1, head.dim, generator=g)
                sigmas = torch.linspace(1.0, 0.0, head.steps + 1)
                mods = head.net.step_modulations(sigmas[:-1] * 1000, z, zu if cfg else None)
                for i, ds in enumerate((sigmas[1:] - sigmas[:-1]).tolist()):
                    x = x + ds * _guided(head.net, x, mods[i], cfg)
                return x

            return run

        def plan(cfg):
            return lambda: head.sample(z, torch.Generator().manual_seed(0), z_uncond=zu if cfg else None, guidance=cfg)

        with torch.inference_mode():
            for cfg in (0.0, 3.0):
                out[f"{preset} rf head, {head.steps} steps, cfg {cfg:g}"] = interleaved(
                    {"reference loop": reference(cfg), "StepPlan": plan(cfg)}, rounds, reps=3
                )
    return out


def exp_int8_linear(rounds: int) -> dict:
    """One Linear layer, float32 vs dynamic int8 (per-channel), at the shapes the models use."""
    import torch.nn as nn

    from arwave.models.quantize import quantize_int8

    out = {}
    for i, o, rows in [
        (256, 256, 1),
        (256, 768, 1),
        (256, 1024, 1),
        (1024, 256, 1),
        (256, 1024, 150),
        (512, 512, 1),
        (768, 2304, 1),
        (768, 3072, 1),
        (1024, 1024, 1),
        (1024, 3072, 8),
    ]:
        ref = nn.Sequential(nn.Linear(i, o)).eval()
        q = nn.Sequential(nn.Linear(i, o)).eval()
        q.load_state_dict(ref.state_dict())
        quantize_int8(q, min_features=0)
        x = torch.randn(rows, i)
        reps = max(5, int(2e6 / (i * o)))
        with torch.inference_mode():
            out[f"Linear {i}x{o}, {rows} row(s)"] = interleaved(
                {"float32": lambda: ref(x), "int8": lambda: q(x)}, rounds, reps
            )
    return out


def exp_int8_cam(rounds: int, presets=("small", "paper")) -> dict:
    """A whole CAM frame at batch 1 (backbone step + rf head), float32 vs int8 weights."""
    from arwave.bench.cam import build_random
    from arwave.models.generator import make_generator

    out = {}
    for preset in presets:
        runs = {}
        for precision in ("float32", "int8"):
            model, _ = build_random(preset, "rf", codec="cpu")
            model.set_precision(precision)
            frames = 8

            def run(model=model):
                for _ in model.frames(frames, 1, make_generator(0)):
                    pass

            runs[precision] = run
        with torch.inference_mode():
            out[f"cam {preset} rf, 8 frames (backbone + head)"] = interleaved(runs, rounds)
    return out


def exp_aar(rounds: int, preset: str = "small", seconds: float = 2.0) -> dict:
    """AAR vs next-token for the same continuous audio, as `generate` makes it (window continuation with
    overlap 0.5 and codec decode for AAR): AAR's parts (sampling with continuation, with AdaLN computed
    per scale as before this change or per window as now; independent windows), int8, and the
    next-token baseline's `generate` in float32 and int8, all in one interleaved run."""
    from arwave.bench.nextscale import build_pair

    aar, gpt = build_pair(preset, codec="cpu")
    aar8, gpt8 = build_pair(preset, codec="cpu", precision="int8")
    frames = int(seconds * aar.codec.frame_rate)
    opts = dict(class_label=0, cfg=3.0)

    def per_scale_adaln():
        aar.transformer.modulations = lambda cond: None  # blocks recompute AdaLN per scale
        try:
            return aar.sample_tokens(1, frames, seed=0, **opts)
        finally:
            del aar.transformer.modulations

    with torch.inference_mode():
        return {
            f"aar vs nexttoken, {preset}, cpu codecs, {seconds:g} s, batch 1": interleaved(
                {
                    "aar generate (continuation + decode)": lambda: aar.generate(seconds, 1, seed=0, **opts),
                    "aar generate, int8": lambda: aar8.generate(seconds, 1, seed=0, **opts),
                    "aar sample_tokens, continuation": lambda: aar.sample_tokens(1, frames, seed=0, **opts),
                    "aar sample_tokens, continuation, AdaLN per scale": per_scale_adaln,
                    "aar sample_tokens, independent windows": lambda: aar.sample_tokens(
                        1, frames, seed=0, overlap=0.0, **opts
                    ),
                    "nexttoken generate": lambda: gpt.generate(seconds, 1, seed=0, **opts),
                    "nexttoken generate, int8": lambda: gpt8.generate(seconds, 1, seed=0, **opts),
                },
                rounds,
            )
        }


def exp_stream(rounds: int, preset: str = "small", seconds: float = 10.0) -> dict:
    """`CAM.stream` (decoding thread) with blocks of frames per decoder step (a quarter of the frames
    handed out so far, up to `stream_block_max`) against the one-frame-per-step decoder it replaced (the
    same code with `batched` forced off), and `generate` (all frames, then one batched decode)."""
    from arwave.bench.cam import build_random

    model, _ = build_random(preset, "rf", codec="cpu")
    blocks = model._frame_decoder

    def one_frame_per_step(prompt=None):
        prepare, step, _ = blocks(prompt)
        return prepare, step, False

    def stream(per_frame: bool, most: int = 1):
        def run():
            model._frame_decoder = one_frame_per_step if per_frame else blocks
            model.stream_block_max = most
            try:
                for _ in model.stream(seconds, seed=0):
                    pass
            finally:
                model._frame_decoder = blocks
                del model.stream_block_max

        return run

    runs = {
        "stream, one frame per decoder step (before)": stream(True),
        **{f"stream, blocks of up to {k} frames": stream(False, k) for k in (4, 8)},
        "generate (frames, then one decode)": lambda: model.generate(seconds, seed=0),
    }
    with torch.inference_mode():
        return {f"cam {preset} rf, {seconds:g} s of audio": interleaved(runs, rounds)}


EXPERIMENTS = {
    "head": exp_head,
    "int8-linear": exp_int8_linear,
    "int8-cam": exp_int8_cam,
    "aar": exp_aar,
    "stream": exp_stream,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiments", nargs="+", choices=sorted(EXPERIMENTS))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    for name in args.experiments:
        for label, rows in EXPERIMENTS[name](args.rounds).items():
            results[label] = rows
            print(label)
            for variant, r in rows.items():
                print(f"  {variant:40} ratio {r['ratio']:>6.3f}   median {1000 * r['seconds']:>10.3f} ms")
            print(flush=True)
    if args.json:
        print(json.dumps({"bench": "ab", "threads": args.threads, "rounds": args.rounds, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
