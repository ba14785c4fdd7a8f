"""What `arwave generate` does around the model: a progress bar with an ETA, loudness normalisation to
a LUFS target, and the one line per written file (path, length, rate, channels, loudness).

The progress bar counts the AR model's forward passes (one per CAM frame, per AAR scale, per
next-token step) with a hook on its transformer, so no model needs a progress argument; the total is
worked out from the request the way each model schedules its steps. Should a model's schedule change,
the bar still ends full when generation ends (only its ETA is off on the way).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch

from arwave.errors import ArwaveError

LOUDNESS_BLOCK_S = 0.4  # pyloudnorm's (ITU-R BS.1770) gating block: shorter clips have no loudness


def _frames(model, seconds: float) -> tuple[int, int]:
    """(codec frames of `seconds`, hop) of an AR model (CAM knows its hop; token models ask their codec)."""
    hop = int(getattr(model, "hop", 0) or 0) or int(model.codec.hop)
    return math.ceil(round(seconds * model.sample_rate) / hop), hop


def ar_steps(model, seconds: float, sampling: dict) -> tuple[torch.nn.Module, int] | None:
    """(the module called once per AR step, how many steps this request takes), or None if unknown."""
    try:
        frames, hop = _frames(model, seconds)
        prompt = sampling.get("prompt")
        prompt_frames = prompt.shape[-1] // hop if prompt is not None else 0  # whole frames, as encoded
        if hasattr(model, "backbone") and hasattr(model, "cam"):  # CAM: one pass per frame
            return model.backbone, frames
        if hasattr(model, "iter_windows"):  # AAR: K passes per window
            T, ov = int(model.T), model.overlap_frames(sampling.get("overlap"))
            known = min(ov if ov > 0 else T // 2, prompt_frames, T - 1) if prompt is not None else 0
            produced = windows = 0
            while produced < frames:
                produced, windows, known = produced + T - known, windows + 1, ov
            return model.transformer, windows * len(model.scales)
        if hasattr(model, "steps_for"):  # next-token: one pass per step
            given = min(prompt_frames, int(model.cfg.context_frames) - 1) if prompt is not None else 0
            return model.transformer, int(model.steps_for(frames + given))
    except (AttributeError, TypeError, ArwaveError):
        return None
    return None


@contextmanager
def progress_bar(model, seconds: float, sampling: dict, enabled: bool = True, desc: str = "generating"):
    """A tqdm bar (stderr) over the AR steps of one `generate` call, with rate and ETA."""
    from tqdm import tqdm

    found = ar_steps(model, seconds, sampling) if enabled else None
    bar = tqdm(
        total=found[1] if found else None, desc=desc, unit="step", disable=not enabled, leave=False, dynamic_ncols=True
    )

    def count(*_) -> None:  # a forward hook that returns something replaces the output
        bar.update(1)

    hook = found[0].register_forward_hook(count) if found else None
    try:
        yield bar
        if bar.total is not None and bar.n < bar.total:
            bar.update(bar.total - bar.n)
    finally:
        if hook is not None:
            hook.remove()
        bar.close()


def check_loudness_target(lufs: float, seconds: float) -> None:
    if not math.isfinite(lufs) or not -70.0 <= lufs <= 0.0:
        raise ArwaveError(f"--loudness {lufs:g}: must be a loudness in LUFS between -70 and 0 (e.g. -14, -23)")
    if seconds < LOUDNESS_BLOCK_S:
        raise ArwaveError(
            f"--loudness needs clips of at least {LOUDNESS_BLOCK_S:g} s (the loudness meter's block); "
            f"these are {seconds:g} s"
        )


def normalize_loudness(
    audio: torch.Tensor, sample_rate: int, target: float
) -> tuple[torch.Tensor, float | None, str | None]:
    """(audio scaled to `target` LUFS, its loudness after, a warning or None) for one (channels, n) clip.

    Integrated loudness per ITU-R BS.1770-4 (pyloudnorm). The gain never clips: when the target would
    push a sample past full scale, the gain stops at a peak of -0.1 dBFS and the warning says the
    loudness reached. Silence has no loudness and is left as it is."""
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    data = audio.detach().cpu().double().numpy().T  # (n, channels)
    measured = meter.integrated_loudness(data)
    if not math.isfinite(measured):
        return audio, None, "the clip is silent: loudness left as it is"
    gain = 10.0 ** ((target - measured) / 20.0)
    peak = float(np.abs(data).max())
    ceiling = 10.0 ** (-0.1 / 20.0)
    warning = None
    if peak * gain > ceiling:
        gain = ceiling / peak
        reached = measured + 20.0 * math.log10(gain)
        warning = (
            f"{target:g} LUFS would clip (peak {20 * math.log10(peak * 10 ** ((target - measured) / 20)):+.1f} "
            f"dBFS): normalised to {reached:.1f} LUFS, peak -0.1 dBFS"
        )
    out = (audio.double() * gain).to(audio.dtype)
    return out, float(meter.integrated_loudness(out.cpu().double().numpy().T)), warning


def describe(path, audio: torch.Tensor, sample_rate: int, lufs: float | None = None) -> str:
    """`wrote PATH (10.00 s, 48000 Hz, 2 channels[, -14.0 LUFS])`."""
    channels = audio.shape[0]
    extra = f", {lufs:.1f} LUFS" if lufs is not None else ""
    return (
        f"wrote {path} ({audio.shape[-1] / sample_rate:.2f} s, {sample_rate} Hz, "
        f"{channels} channel{'s' if channels != 1 else ''}{extra})"
    )
