"""Where generation time goes: a torch.profiler breakdown of one generation call by part.

Why: speed work should follow measurement. Each part of a generation loop (backbone step, head,
token sampling, codec decode, the glue between them) is wrapped in a `record_function` label for the
profiled call only (the wrappers are instance/module attributes, removed afterwards: model code carries
no profiling hooks). From the profiler's events:

- part share: the part's labelled wall time / the whole call's wall time; "other" is the remainder
  (the generation loop's own Python between labelled parts);
- op share: time inside ATen operators (their self time summed, so nested ops count once);
- overhead: a part's time outside any ATen operator: Python, module dispatch, argument checks.

The profiler adds a few µs per operator, so shares of tiny-op workloads lean towards "overhead";
wall times without the profiler are reported next to it (`wall_s`, `wall_s_profiled`). Random weights
(speed does not depend on training); one intra-op thread unless told otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile, record_function


@contextlib.contextmanager
def labelled(parts: list[tuple[object, str, str]]):
    """Wrap `getattr(target, attr)` in record_function(label) for each (target, attr, label); undo on exit.
    A module function is patched in its module; a method on one object as an instance attribute."""
    saved = []
    try:
        for target, attr, label in parts:
            had_own = isinstance(target, type(contextlib)) or attr in getattr(target, "__dict__", {})
            fn = getattr(target, attr)

            def wrapper(*a, _fn=fn, _label=label, **kw):
                with record_function(_label):
                    return _fn(*a, **kw)

            functools.update_wrapper(wrapper, fn)
            saved.append((target, attr, fn, had_own))
            setattr(target, attr, wrapper)
        yield
    finally:
        for target, attr, fn, had_own in reversed(saved):
            if had_own:
                setattr(target, attr, fn)
            else:
                delattr(target, attr)


def breakdown(fn: Callable[[], object], labels: list[str], top: int = 8) -> dict:
    """Profile one call of `fn` and split its time over `labels` (see the module docstring)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        with record_function("total"):
            fn()
        wall = time.perf_counter() - t0
    events = [e for e in prof.events() if e.time_range.end > e.time_range.start]
    spans: dict[str, list] = {}
    for e in events:
        spans.setdefault(e.name, []).append(e.time_range)
    total_us = sum(r.end - r.start for r in spans.get("total", [])) or 1.0
    # labelled spans may nest (a decode inside a sampled window): a part is the time inside its label
    # and not inside a later label of the list nested in it
    ops = [e for e in events if e.name.startswith("aten::") or e.name.startswith("quantized::")]

    def inside(r, ranges):
        return any(s.start <= r.start and r.end <= s.end for s in ranges)

    parts = {}
    for i, name in enumerate(labels):
        ranges = spans.get(name, [])
        inner = [s for later in labels[i + 1 :] for s in spans.get(later, []) if inside(s, ranges)]
        t = sum(r.end - r.start for r in ranges) - sum(s.end - s.start for s in inner)
        op = sum(e.self_cpu_time_total for e in ops if inside(e.time_range, ranges) and not inside(e.time_range, inner))
        parts[name] = {
            "ms": round(t / 1e3, 3),
            "share": round(t / total_us, 4),
            "op_share": round(op / max(t, 1e-9), 3),
            "calls": len(ranges),
        }
    covered = sum(p["ms"] for p in parts.values()) * 1e3
    parts["other"] = {"ms": round((total_us - covered) / 1e3, 3), "share": round(1 - covered / total_us, 4)}
    op_total = sum(e.self_cpu_time_total for e in ops if inside(e.time_range, spans.get("total", [])))
    by_op: dict[str, float] = {}
    for e in ops:
        by_op[e.name] = by_op.get(e.name, 0.0) + e.self_cpu_time_total
    top_ops = sorted(by_op.items(), key=lambda kv: -kv[1])[:top]
    return {
        "wall_s_profiled": round(wall, 4),
        "parts": parts,
        "op_share": round(op_total / total_us, 4),
        "overhead_share": round(1 - op_total / total_us, 4),
        "ops_per_call": len(ops),
        "top_ops": [{"op": k, "share": round(v / total_us, 4)} for k, v in top_ops],
    }


def _inference(fn: Callable[[], object]) -> Callable[[], object]:
    def run():
        with torch.inference_mode():
            return fn()

    return run


def floors(repeats: int = 5) -> dict:
    """This machine's arithmetic and memory floors on the current thread count: float32 matmul GFLOP/s
    (2048², compute-bound) and copy GB/s (256 MB read + written, past any cache); best of `repeats`."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    t = _wall(lambda: torch.mm(a, b), repeats)
    src = torch.empty(64 * 2**20, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src)
    c = _wall(lambda: dst.copy_(src), repeats)
    return {
        "matmul_gflops": round(2 * 2048**3 / t / 1e9, 1),
        "copy_gbps": round(2 * src.numel() * 4 / c / 1e9, 1),
        "threads": torch.get_num_threads(),
    }


def _wall(fn: Callable[[], object], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def profile_cam(
    preset: str = "small",
    codec: str | None = "cpu",
    head: str = "rf",
    seconds: float = 4.0,
    precision: str = "float32",
    repeats: int = 2,
) -> dict:
    """The batch-1 streaming loop of `arwave stream` (frames generated and decoded one at a time, one
    thread): backbone step, head sample, context re-noising, codec decode."""
    from arwave.bench.cam import build_random
    from arwave.models.cam import model as cam_module
    from arwave.models.generator import make_generator

    model, cdc = build_random(preset, head, precision, codec=codec)
    frames = max(1, math.ceil(seconds * cdc.sample_rate / cdc.hop))
    decoder = cdc.streaming_decoder()
    if hasattr(decoder, "prepare"):
        decoder.prepare()

    @_inference
    def run():
        decoder.reset()
        for x in model.frames(frames, 1, make_generator(0)):
            decoder.step(x[:, :, None])

    run()  # warm-up
    wall = _wall(run, repeats)
    parts = [
        (model, "_step", "backbone"),
        (model.head, "sample", "head"),
        (cam_module, "renoise", "glue"),
        (model.in_proj, "forward", "glue_embed"),
        (decoder, "step", "decode"),
    ]
    with labelled(parts):
        out = breakdown(run, [p[2] for p in parts])
    return {
        "model": "cam",
        "preset": preset,
        "codec": codec,
        "head": head,
        "precision": precision,
        "frames": frames,
        "audio_s": frames * cdc.hop / cdc.sample_rate,
        "wall_s": round(wall, 4),
        **out,
    }


def _token_pair(preset: str, codec: str | None, precision: str):
    from arwave.bench.nextscale import build_pair

    return build_pair(preset, codec=codec, precision=precision)


def profile_aar(
    preset: str = "small",
    codec: str | None = "cpu",
    seconds: float = 4.0,
    overlap: float | None = None,
    precision: str = "float32",
    repeats: int = 1,
    cfg: float = 3.0,
) -> dict:
    """`AAR.generate` (what `arwave generate` runs): windows with continuation, then one batched decode."""
    from arwave.models.aar import model as aar_module

    aar, _ = _token_pair(preset, codec, precision)
    opts = dict(class_label=0, cfg=cfg, overlap=overlap)

    @_inference
    def run():
        aar.generate(seconds, 1, seed=0, **opts)

    run()
    wall = _wall(run, repeats)
    q = aar.quantizer
    parts = [
        (aar.transformer, "forward", "backbone"),
        (aar.head, "forward", "head"),
        (aar_module, "sample", "sampling"),
        (aar_module, "guided_logits", "sampling_cfg"),
        (q, "add_scale", "msrq_glue"),
        (q, "next_input", "msrq_glue_down"),
        (q, "encode", "continuation_encode"),
        (aar_module, "keep_masks", "continuation_mask"),
        (aar_module, "decode_latent", "decode"),
    ]
    with labelled(parts):
        out = breakdown(run, [p[2] for p in parts])
    return {
        "model": "aar",
        "preset": preset,
        "codec": codec,
        "precision": precision,
        "overlap": aar.overlap_frames(overlap),
        "audio_s": seconds,
        "wall_s": round(wall, 4),
        **out,
    }


def profile_nexttoken(
    preset: str = "small",
    codec: str | None = "cpu",
    seconds: float = 1.0,
    precision: str = "float32",
    repeats: int = 1,
    cfg: float = 3.0,
) -> dict:
    """`NextToken.generate`: one token per step over the flattened RVQ levels, then decode."""
    from arwave.models.nexttoken import model as nt_module

    _, gpt = _token_pair(preset, codec, precision)

    @_inference
    def run():
        gpt.generate(seconds, 1, seed=0, class_label=0, cfg=cfg)

    run()
    wall = _wall(run, repeats)
    parts = [
        (gpt.transformer, "forward", "backbone"),
        (gpt, "logits", "head"),
        (nt_module, "sample", "sampling"),
        (nt_module, "guided_logits", "sampling_cfg"),
        (gpt, "embed_steps", "glue_embed"),
        (nt_module, "decode_latent", "decode"),
    ]
    with labelled(parts):
        out = breakdown(run, [p[2] for p in parts])
    return {
        "model": "nexttoken",
        "preset": preset,
        "codec": codec,
        "precision": precision,
        "audio_s": seconds,
        "wall_s": round(wall, 4),
        **out,
    }


def format_breakdown(r: dict) -> str:
    lines = [
        f"{r['model']} {r['preset']} (codec {r['codec']}, {r['precision']}): {r['audio_s']:.2f} s of audio "
        f"in {r['wall_s']:.3f} s ({r['audio_s'] / r['wall_s']:.2f}x real time; profiled {r['wall_s_profiled']:.3f} s)",
        f"  {'part':22} {'ms':>10} {'share':>7} {'in ops':>7} {'calls':>6}",
    ]
    for name, p in r["parts"].items():
        lines.append(
            f"  {name:22} {p['ms']:>10.2f} {100 * p['share']:>6.1f}% "
            f"{(str(round(100 * p['op_share'])) + '%') if 'op_share' in p else '':>7} {p.get('calls', ''):>6}"
        )
    lines.append(
        f"  time in ATen ops {100 * r['op_share']:.1f}%, outside ops (Python, dispatch) "
        f"{100 * r['overhead_share']:.1f}%; {r['ops_per_call']} ops"
    )
    lines.append("  top ops: " + ", ".join(f"{o['op']} {100 * o['share']:.1f}%" for o in r["top_ops"]))
    return "\n".join(lines)
