"""Codec quality on held-out music: MEL distance, input specificity, loudness and speed, next to Opus.

`arwave bench codec-quality CODEC... --data MANIFEST` cuts `clips` clips of `seconds` from the test and
validation splits of MANIFEST (whole tracks never trained on), spread evenly over its files and over each
file, at each codec's own rate and channels, reconstructs them and reports per codec (definitions in docs/metrics.md):

    mel          mean over clips of MEL(recon_i, x_i)                    (`clip_mel_distance`)
    ratio        mean / max over clips of MEL(recon_i, x_i) / mean_{j≠i} MEL(recon_i, x_j)
    rms_db       mean / max over clips of |20·log10(RMS(recon_i) / RMS(x_i))|
    xrt          seconds of audio per wall second for encode + decode (batch 1, this machine)
    cpu_xrt      seconds of audio per CPU second of this process (all its threads): with 1 thread, the
                 speed of one core, robust to other work on the machine (wall time is not)

With `labelled` (a manifest with instrument labels, e.g. the corpus) and `classifier`, also:

    recognised   per class: the share of the labelled test split's clips (the middle `seconds` of each
                 file) that `classifier` puts in their own class, for the originals (`real`) and for
                 their reconstructions (`recon`). A generator over this codec is heard through its
                 decoder: a class the decoder does not keep is hard to generate recognisably.

and the same figures for Opus at `opus_kbps` (opusenc/opusdec of Debian's opus-tools, used here only,
not a dependency of arwave; the row is left out when they are missing).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from arwave.errors import ArwaveError
from arwave.evaluation.recon import clip_mel_distance, input_specificity, rms_db


def held_out_clips(
    manifest: str | Path,
    sample_rate: int,
    channels: int,
    clips: int = 12,
    seconds: float = 10.0,
    splits: tuple[str, ...] = ("test", "val"),
) -> list[torch.Tensor]:
    """`clips` clips (C, seconds·rate) of the files of `splits` (never trained on), round-robin over
    files, evenly spaced within each (deterministic)."""
    from arwave.data.dataset import AudioCropDataset

    n = int(round(seconds * sample_rate))
    files = []
    for split in splits:
        ds = AudioCropDataset(manifest, split, sample_rate, channels, n, random_crop=False)
        files += [(ds, i) for i in range(len(ds))]
    if not files:
        raise ArwaveError(f"{manifest}: no files in splits {', '.join(splits)}")
    per_file = [clips // len(files) + (1 if i < clips % len(files) else 0) for i in range(len(files))]
    out = []
    for (ds, i), k in zip(files, per_file):
        if k == 0:
            continue
        wave = ds.load_file(i)
        span = max(0, wave.shape[-1] - n)
        for j in range(k):
            start = span * (j + 1) // (k + 1)
            clip = wave[:, start : start + n]
            if clip.shape[-1] == n:
                out.append(clip.clone())
    if len(out) < 2:
        raise ArwaveError(f"{manifest}: fewer than two {seconds:g}-s clips in splits {', '.join(splits)}")
    return out


def _figures(name: str, refs: list[torch.Tensor], recons: list[torch.Tensor], sample_rate: int) -> dict:
    mels = [clip_mel_distance(r, x, sample_rate) for r, x in zip(refs, recons)]
    ratios = input_specificity(refs, recons, sample_rate)
    loud = [abs(rms_db(x) - rms_db(r)) for r, x in zip(refs, recons)]
    return {
        "codec": name,
        "sample_rate": sample_rate,
        "clips": len(refs),
        "mel": sum(mels) / len(mels),
        "ratio": sum(ratios) / len(ratios),
        "ratio_max": max(ratios),
        "rms_db": sum(loud) / len(loud),
        "rms_db_max": max(loud),
        "mel_per_clip": mels,
    }


def opus_roundtrip(clip: torch.Tensor, sample_rate: int, kbps: float) -> torch.Tensor:
    """clip (C, N) -> the same clip through Opus at `kbps` (opusenc / opusdec), (C, N)."""
    from arwave.data.audio import load_audio, write_audio

    with tempfile.TemporaryDirectory() as tmp:
        src, enc, dec = Path(tmp, "in.wav"), Path(tmp, "x.opus"), Path(tmp, "out.wav")
        write_audio(src, clip, sample_rate)
        subprocess.run(["opusenc", "--quiet", "--bitrate", f"{kbps:g}", str(src), str(enc)], check=True)
        subprocess.run(["opusdec", "--quiet", "--rate", str(sample_rate), str(enc), str(dec)], check=True)
        y = load_audio(dec, sample_rate, clip.shape[0])
    n = clip.shape[-1]
    return torch.nn.functional.pad(y, (0, max(0, n - y.shape[-1])))[..., :n]


def recognised_after_reconstruction(codec, classifier, labelled: str | Path, seconds: float) -> dict:
    """{class: {"clips", "real", "recon"}}: how often `classifier` recognises the labelled test clips'
    own class, before and after `codec` reconstructs them (see the module docstring)."""
    from arwave.bench.generation_quality import real_clips_by_class

    by_class = real_clips_by_class(labelled, codec.sample_rate, codec.channels, seconds)
    names = list(classifier.label_names)
    out = {}
    for label, clips in sorted(by_class.items()):
        if label not in names or not clips:
            continue
        recons = [codec.reconstruct(x[None])[0] for x in clips]
        hits = {}
        for what, waves in (("real", clips), ("recon", recons)):
            post = torch.as_tensor(classifier.posteriors(waves, codec.sample_rate))
            hits[what] = float((post.argmax(-1) == names.index(label)).float().mean())
        out[label] = {"clips": len(clips), **hits}
    if not out:
        raise ArwaveError(f"{labelled}: no test clips labelled with a class of the classifier ({', '.join(names)})")
    return out


@torch.no_grad()
def bench_codec_quality(
    codecs: list[str],
    manifest: str | Path,
    clips: int = 12,
    seconds: float = 10.0,
    opus_kbps: float = 6.0,
    progress: bool = True,
    labelled: str | Path | None = None,
    classifier: str = "instrument-classifier",
) -> dict:
    from arwave import load

    rows, clip_cache = [], {}
    judge = load(classifier) if labelled else None
    for name in codecs:
        codec = load(name)
        codec.eval()
        if not hasattr(codec, "reconstruct"):
            raise ArwaveError(f"{name}: not a codec (codec-quality measures codecs)")
        key = (codec.sample_rate, codec.channels)
        if key not in clip_cache:
            clip_cache[key] = held_out_clips(manifest, *key, clips=clips, seconds=seconds)
        refs = clip_cache[key]
        t0, c0 = time.perf_counter(), time.process_time()
        recons = [codec.reconstruct(x[None])[0] for x in refs]
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        row = _figures(str(name), refs, recons, codec.sample_rate)
        row.update(
            bottleneck=codec.kind,
            tokens_per_second=codec.tokens_per_second,
            xrt=len(refs) * seconds / elapsed,
            cpu_xrt=len(refs) * seconds / cpu,
            threads=torch.get_num_threads(),
        )
        if judge is not None:
            per_class = recognised_after_reconstruction(codec, judge, labelled, seconds)
            row["recognised"] = per_class
            row["recognised_recon"] = sum(v["recon"] * v["clips"] for v in per_class.values()) / sum(
                v["clips"] for v in per_class.values()
            )
        rows.append(row)
        if progress:
            kept = f", recognised after reconstruction {row['recognised_recon']:.2f}" if judge is not None else ""
            print(
                f"[codec-quality] {name}: mel {row['mel']:.3f}, ratio {row['ratio']:.3f}, "
                f"rms ±{row['rms_db']:.2f} dB, {row['xrt']:.0f}x real time{kept}",
                flush=True,
            )
    if opus_kbps and shutil.which("opusenc") and shutil.which("opusdec"):
        for (rate, _channels), refs in clip_cache.items():
            recons = [opus_roundtrip(x, rate, opus_kbps) for x in refs]
            row = _figures(f"opus-{opus_kbps:g}kbps", refs, recons, rate)
            row.update(bottleneck="opus", tokens_per_second=None, xrt=None)
            rows.append(row)
    out = {"bench": "codec-quality", "manifest": str(manifest), "clips": clips, "seconds": seconds, "rows": rows}
    return out | ({"labelled": str(labelled), "classifier": classifier} if labelled else {})
