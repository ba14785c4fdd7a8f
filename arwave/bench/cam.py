"""Speed of CAM-family sampling: where the time per frame goes, real-time factor, latency, memory.

For each preset (its `{preset}-continuous` codec, random weights: speed does not depend on training)
and each head, generate `frames` frames at each batch size through the real sampling loop
(`CAM.frames`: KV-cached backbone step, head sampling) and decode every frame as it arrives with the
codec's streaming decoder, exactly what `arwave stream` does.

Reported per (preset, head, batch):
- ms_per_frame: backbone / head / decode / total (wall time of one step of the loop, for all rows);
- frame_ms: audio per frame (hop / sample_rate; 85.3 ms for the paper codec, 48 kHz hop 4096);
- rtf: audio seconds produced per wall second, all rows together (batch · frames · frame_ms / wall);
  rtf_per_stream = rtf / batch: ≥ 1 means every stream runs faster than real time; rtf_median uses
  the median step time instead of the mean (robust to other processes stealing the CPU);
  min_frame_ms is the fastest step (closest to the cost on an idle machine);
- first_audio_ms: from the start of sampling to the first decoded chunk (start-token step + first
  head sample + first decoder step);
- stream_rtf, stream_first_audio_ms (batch 1): the same through `CAM.stream` with its decoding thread,
  which decodes while the next frames are generated (needs two free cores to gain), in blocks that
  grow from one frame to `stream_block_max`;
- generate_rtf (batch 1): `CAM.generate`, what `arwave generate` does: every frame first, then one
  batched decode of the whole clip (no first-audio figure: nothing plays until the end);
  stream_inline_rtf, stream_inline_first_audio_ms: `CAM.stream(pipeline=False)`, decoding on the
  calling thread (what the thread buys on this machine right now);
- peak_rss_delta_mb: growth of the process's peak resident memory (getrusage ru_maxrss) during the
  measurement — 0 when an earlier, larger run already set the peak, so run one configuration per
  process for absolute numbers; weights_mb and kv_cache_mb (the attention window) are computed exactly
  instead; kv_buffer_mb is what the caches allocate (the window plus room to append in place).

The decoder's one-time weight preparation (`StreamingDecoder.prepare`) and two frames of every path
run before timing, like any warm-up; `stream` measures a fresh call, which prepares nothing again
once the codec's weights are folded.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from collections.abc import Iterable

import torch

from arwave.models.transformer import KVCache


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _quantized_weights(module) -> list[torch.Tensor]:
    """The int8 weights of dynamically quantized Linear layers (not `parameters()`)."""
    return [m.weight() for m in module.modules() if callable(getattr(m, "weight", None))]


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters()) + sum(w.numel() for w in _quantized_weights(module))


def _bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters()) + sum(
        w.numel() for w in _quantized_weights(module)
    )


def build_random(preset_name: str, head: str, precision: str = "float32", seed: int = 0, codec: str | None = None):
    """(CAM, codec) of a preset with random weights. `codec`: the codec preset size (`cpu`: the spectral
    `cpu-continuous` codec the bundled CAM uses); default the preset's own `{preset}-continuous`."""
    from arwave.models.cam.model import CAM
    from arwave.registry import get_kind, preset

    torch.manual_seed(seed)
    codec = get_kind("codec").build_model(preset("codec", f"{codec or preset_name}-continuous"), None).eval()
    config = dataclasses.replace(preset("cam", preset_name).model, head=head).with_codec(codec.facts())
    model = CAM(config, codec, sample_rate=codec.sample_rate, channels=codec.channels).eval()
    for p in model.parameters():  # zero-initialised layers get random values too
        if p.dim() > 1 and p.abs().max() == 0:
            torch.nn.init.normal_(p, std=0.02)
    return model.set_precision(precision), codec


@torch.inference_mode()
def measure(
    model, codec, frames: int, batch: int = 1, head_steps: int | None = None, warmup: int = 2, seed: int = 0
) -> dict:
    from arwave.models.generator import make_generator

    opts = {} if head_steps is None else {"head_steps": head_steps}
    decoder = codec.streaming_decoder()
    if hasattr(decoder, "prepare"):
        decoder.prepare()  # one-time weight preparation (stream overlaps it)
    for x in model.frames(warmup, batch, make_generator(seed), **opts):  # warm caches and allocators
        decoder.step(x[:, :, None])
    decoder.reset()
    timings = {"backbone": 0.0, "head": 0.0, "decode": 0.0}
    rss0 = _rss_mb()
    first = None
    steps = []  # wall time of each loop step (frame + its decode)
    t0 = last = time.perf_counter()
    for x in model.frames(frames, batch, make_generator(seed), timings=timings, **opts):
        td = time.perf_counter()
        decoder.step(x[:, :, None])
        now = time.perf_counter()
        timings["decode"] += now - td
        steps.append(now - last)
        last = now
        if first is None:
            first = now - t0
    wall = time.perf_counter() - t0
    median = sorted(steps[1:] or steps)[len(steps[1:] or steps) // 2]
    frame_s = codec.hop / codec.sample_rate
    rtf = batch * frames * frame_s / wall
    c = model.cam
    bytes_per = model.start.element_size()
    kv = 2 * c.depth * batch * (c.context - 1) * c.width * bytes_per
    kv_buffer = kv * KVCache.window_capacity(c.context - 1) / (c.context - 1)
    stream = {}
    if batch == 1:  # the real `stream` path, with and without the decoding thread
        for name, pipeline in (("stream", True), ("stream_inline", False)):
            seconds = frames * frame_s
            t0, first_chunk, n = time.perf_counter(), None, 0
            for chunk in model.stream(seconds, seed=seed, pipeline=pipeline, **opts):
                first_chunk = first_chunk if first_chunk is not None else time.perf_counter() - t0
                n += chunk.shape[-1]
            stream_wall = time.perf_counter() - t0
            stream |= {
                f"{name}_rtf": round(n / codec.sample_rate / stream_wall, 3),
                f"{name}_first_audio_ms": round(1000 * first_chunk, 3),
            }
        t0 = time.perf_counter()
        audio = model.generate(frames * frame_s, seed=seed, **opts)
        stream["generate_rtf"] = round(audio.shape[-1] / codec.sample_rate / (time.perf_counter() - t0), 3)
    return {
        **stream,
        "batch": batch,
        "frames": frames,
        "head_steps": head_steps or model.head.steps if c.head != "gmm" else None,
        "ms_per_frame": {k: round(1000 * v / frames, 3) for k, v in timings.items()}
        | {"total": round(1000 * wall / frames, 3)},
        "median_frame_ms": round(1000 * median, 3),
        "min_frame_ms": round(1000 * min(steps[1:] or steps), 3),
        "frame_ms": round(1000 * frame_s, 3),
        "rtf": round(rtf, 3),
        "rtf_per_stream": round(rtf / batch, 3),
        "realtime": rtf / batch >= 1.0,
        "rtf_median": round(batch * frame_s / median, 3),
        "first_audio_ms": round(1000 * first, 3),
        "peak_rss_delta_mb": round(_rss_mb() - rss0, 1),
        "kv_cache_mb": round(kv / 2**20, 2),
        "kv_buffer_mb": round(kv_buffer / 2**20, 2),
    }


def bench_cam(
    presets: Iterable[str] = ("tiny", "small", "paper"),
    heads: Iterable[str] = ("rf", "gmm", "ddpm"),
    batch_sizes: Iterable[int] = (1, 16),
    frames: int | None = None,
    head_steps: int | None = None,
    threads: int | None = None,
    precision: str = "float32",
    warmup: int = 2,
    codec: str | None = None,
) -> list[dict]:
    """One dict per (preset, head, batch size); see the module docstring. `frames` defaults to the
    preset's context (capped at 64); `threads` sets torch's intra-op threads for the run (default 1,
    what `arwave stream` uses: on a shared 2-core machine a second OpenMP thread makes every small op
    wait for a descheduled thread)."""
    torch.set_num_threads(int(threads or 1))
    results = []
    for name in presets:
        for head in heads:
            rss0 = _rss_mb()
            model, cdc = build_random(name, head, precision, codec=codec)
            n = frames or min(model.cam.context, 64)
            info = {
                "preset": name,
                "head": head,
                "precision": precision,
                "threads": torch.get_num_threads(),
                "codec": f"{codec or name}-continuous",
                "params": _count(model),
                "params_backbone": _count(model) - _count(model.head),
                "params_head": _count(model.head),
                "codec_params": _count(cdc),
                "weights_mb": round((_bytes(model) + _count(cdc) * 4) / 2**20, 1),
                "sample_rate": cdc.sample_rate,
                "hop": cdc.hop,
            }
            for b in batch_sizes:
                results.append({**info, **measure(model, cdc, n, b, head_steps, warmup)})
            results[-1]["load_rss_delta_mb"] = round(_rss_mb() - rss0, 1)
            del model, cdc
    return results


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'preset':7} {'head':5} {'B':>3} {'params':>8} {'backbone':>9} {'head':>8} {'decode':>8} {'total':>8} "
        f"{'median':>8} {'frame':>7} {'RTF':>7} {'RTF/str':>7} {'1st ms':>7} {'streamRTF':>9} {'str 1st':>7} "
        f"{'inlineRTF':>9} {'genRTF':>7}"
    )
    lines = [head, "-" * len(head)]
    nan = float("nan")
    for r in rows:
        m = r["ms_per_frame"]
        lines.append(
            f"{r['preset']:7} {r['head']:5} {r['batch']:>3} {r['params'] / 1e6:>7.1f}M {m['backbone']:>9.2f} "
            f"{m['head']:>8.2f} {m['decode']:>8.2f} {m['total']:>8.2f} {r['median_frame_ms']:>8.2f} "
            f"{r['frame_ms']:>7.1f} {r['rtf']:>7.2f} "
            f"{r['rtf_per_stream']:>7.2f} {r['first_audio_ms']:>7.1f} {r.get('stream_rtf', nan):>9.2f} "
            f"{r.get('stream_first_audio_ms', nan):>7.1f} {r.get('stream_inline_rtf', nan):>9.2f} "
            f"{r.get('generate_rtf', nan):>7.2f}"
        )
    return "\n".join(lines) + (
        "\n(ms per frame; RTF = audio seconds per wall second; stream = CAM.stream with its "
        "decoding thread, inline = pipeline=False, gen = CAM.generate: frames, then one batched decode)"
    )
