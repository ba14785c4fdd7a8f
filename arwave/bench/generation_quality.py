"""Generation quality of class-conditioned models, measured against the targets of issue 11.

`arwave bench generation-quality [MODELS...] --data MANIFEST` generates, for every model (default: the
bundled cam, aar and nexttoken that this install holds) and every class it knows (or `--classes`),
`seeds` clips of `seconds` (one batch per class: the clips of class C are those of
`arwave generate MODEL --class C --num SEEDS --seed SEED`), and reports (definitions in docs/metrics.md,
"Generation quality"):

    recognition   share of clips the classifier (default the bundled instrument-classifier) labels as
                  the requested class (argmax of its clip posterior)
    distinct      per class: mean MEL distance (`clip_mel_distance`) between clips of different seeds,
                  divided by the mean MEL distance between different real recordings of that class (the
                  middle `seconds` of each test-split file); the check takes the smallest class ratio
    silent        clips with RMS < -50 dBFS
    constant      clips whose spectrum hardly changes over time (`temporal_variation` < 0.05)
    fad           FAD of all clips of the model vs the whole test split, per embedder (default
                  classifier:<classifier> and aisfx), next to the real-vs-real floor FAD(train, test) and
                  a matched floor: the FAD of as many train-split clips of the same classes and length,
                  at the model's rate and channels (the same small-set bias and band limit)
    rollout       CAM models only: `rollouts` rollouts of `rollout_seconds` (one per class, cycling),
                  FAD of each successive `window_seconds` window vs the test split (`fad_over_time`);
                  the check compares the last window with the first

Targets (issue 11, item 4): recognition >= 0.9 for cam and aar (reported for the others), distinct >= 0.5
for every class, no silent or constant clip, FAD <= 2 x floor for every embedder, rollout last <= 1.2 x
first for every embedder.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from arwave.errors import ArwaveError

DEFAULT_MODELS = ("cam", "aar", "nexttoken")
SILENT_DB = -50.0
CONSTANT_VARIATION = 0.05


@dataclass(frozen=True)
class Targets:
    recognition: float = 0.9  # share of clips recognised as the requested class (cam, aar)
    distinct: float = 0.5  # generated / real MEL distance between clips of one class
    fad_vs_floor: float = 2.0  # FAD(generated, test) / FAD(train, test)
    rollout: float = 1.2  # FAD of the last window / FAD of the first (cam)
    recognition_required: tuple[str, ...] = ("cam", "aar")  # kinds for which recognition must pass


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(f"[generation-quality] {msg}", file=sys.stderr, flush=True)


def temporal_variation(clip: torch.Tensor, sample_rate: int, segment_seconds: float = 1.0) -> float | None:
    """How much a clip's spectrum changes over time: the clip's `clip_log_mel` (floored 60 dB below its
    peak, so that inaudible bands do not count), averaged over segments of `segment_seconds` (at most a
    quarter of the clip); returns the mean |segment spectrum − mean spectrum| in log10 units. A stationary
    sound (noise, a held hum) gives ~0.01, the corpus' recordings 0.14–0.30; None for a clip too short
    for two segments."""
    from arwave.evaluation.recon import CLIP_HOP, clip_log_mel

    mel = clip_log_mel(clip, sample_rate)
    mel = mel.clamp_min(float(mel.max()) - 3.0)
    seconds = clip.shape[-1] / sample_rate
    per = max(1, int(min(segment_seconds, seconds / 4) * sample_rate / CLIP_HOP))
    count = mel.shape[1] // per
    if count < 2:
        return None
    seg = mel[:, : count * per].reshape(mel.shape[0], count, per).mean(-1)
    return float((seg - seg.mean(1, keepdim=True)).abs().mean())


def _pairwise_mean(clips: list[torch.Tensor], sample_rate: int) -> float | None:
    from arwave.evaluation.recon import clip_mel_distance

    d = [
        clip_mel_distance(clips[i], clips[j], sample_rate) for i in range(len(clips)) for j in range(i + 1, len(clips))
    ]
    return sum(d) / len(d) if d else None


def real_clips_by_class(
    manifest: str | Path, sample_rate: int, channels: int, seconds: float, split: str = "test", limit: int | None = None
) -> dict[str, list[torch.Tensor]]:
    """The middle `seconds` of every file of `split` (at most `limit` per label, in manifest order), at the
    given rate and channels, grouped by label."""
    from arwave.data.dataset import AudioCropDataset

    n = int(round(seconds * sample_rate))
    ds = AudioCropDataset(manifest, split, sample_rate, channels, n, random_crop=False)
    out: dict[str, list[torch.Tensor]] = {}
    for i in range(len(ds)):
        if ds.labels[i] < 0 or (limit is not None and len(out.get(ds.label_names[ds.labels[i]], [])) >= limit):
            continue
        wave = ds.load_file(i)
        start = max(0, (wave.shape[-1] - n) // 2)
        out.setdefault(ds.label_names[ds.labels[i]], []).append(wave[:, start : start + n].clone())
    return out


def display_name(ref) -> str:
    """How a model is called in the results: the name or folder given, or a loaded model's folder name."""
    return Path(str(getattr(ref, "run_dir", "model"))).name if isinstance(ref, torch.nn.Module) else str(ref)


def default_models() -> list[str]:
    """The bundled class-conditioned generators this install holds (cam, aar, nexttoken)."""
    from arwave import pretrained

    return [name for name in DEFAULT_MODELS if pretrained.is_bundle(pretrained.root() / name)]


def default_manifest(models: list) -> str:
    """The training manifest of the first model whose config names one that exists on this machine."""
    from arwave import pretrained
    from arwave.checkpoint import read_config, resolve_run

    for ref in models:
        if isinstance(ref, torch.nn.Module):
            manifest = ref.config.data.manifest
        else:
            run_dir, _ = resolve_run(pretrained.locate(ref))
            manifest = read_config(run_dir).data.manifest
        if manifest and Path(manifest).expanduser().is_file():
            return str(Path(manifest).expanduser())
    raise ArwaveError(
        "no --data given and the models' training manifest is not on this machine: give --data "
        "MANIFEST (a manifest with train and test splits, e.g. data/corpus-fluid/manifest.jsonl from "
        "`bash scripts/pretrained-data.sh`)"
    )


def _model_classes(model, classes: list[str] | None, name: str) -> list[str]:
    names = list(getattr(model, "label_names", []) or [])
    if not names:
        raise ArwaveError(f"{name}: an unconditional model; generation quality is measured per class")
    if classes is None:
        return names
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise ArwaveError(f"{name}: unknown class(es) {', '.join(unknown)} (known: {', '.join(names)})")
    return list(classes)


def reference_and_floor(embedders, manifest, progress) -> tuple[dict, dict[str, float]]:
    """Per embedder: the Gaussian statistics of the whole test split (the reference of every FAD here),
    and the real-vs-real floor FAD(train split, test split). Both cached (`reference_stats`)."""
    from arwave.evaluation.fad import fad_from_stats, reference_stats

    tests, floor = {}, {}
    for emb in embedders:
        train = reference_stats(emb, manifest, split="train", progress=progress)
        tests[emb.name] = reference_stats(emb, manifest, split="test", progress=progress)
        floor[emb.name] = fad_from_stats(train, tests[emb.name])
    return tests, floor


def _checks(row: dict, targets: Targets) -> list[dict]:
    kind = row["kind"]
    checks = [
        {
            "target": f"recognised >= {targets.recognition:g}",
            "value": row["recognition"],
            "pass": row["recognition"] >= targets.recognition,
            "required": kind in targets.recognition_required,
        }
    ]
    dmin = row["distinct"]["min"]
    checks.append(
        {
            "target": f"distinct >= {targets.distinct:g} (every class)",
            "value": dmin,
            "pass": dmin is not None and dmin >= targets.distinct,
            "required": True,
        }
    )
    flagged = len(row["silent"]) + len(row["constant"])
    checks.append({"target": "no silent or constant clip", "value": flagged, "pass": flagged == 0, "required": True})
    for emb, value in row["fad_vs_floor"].items():
        checks.append(
            {
                "target": f"FAD {short_embedder(emb)} <= {targets.fad_vs_floor:g} x floor",
                "embedder": emb,
                "value": value,
                "pass": value is not None and value <= targets.fad_vs_floor,
                "required": True,
            }
        )
    for emb, r in (row.get("rollout") or {}).items():
        checks.append(
            {
                "target": f"rollout FAD {short_embedder(emb)}: last <= {targets.rollout:g} x first",
                "embedder": emb,
                "value": r["ratio"],
                "pass": r["ratio"] <= targets.rollout,
                "required": True,
            }
        )
    return checks


@torch.no_grad()
def measure_model(
    ref,
    manifest,
    classifier_emb,
    embedders,
    ref_stats,
    floor,
    *,
    classes=None,
    seeds=4,
    seconds=10.0,
    seed=0,
    rollout_seconds=60.0,
    window_seconds=10.0,
    rollouts=None,
    targets: Targets = Targets(),
    keep_audio=False,
    progress=True,
    name: str | None = None,
) -> dict:
    """The figures of one model (see the module docstring); `ref` is a name, a run folder or a loaded model
    (`name`: how the report calls it; default the name or folder given, or the loaded model's folder name)."""
    import arwave
    from arwave.evaluation.fad import fad_from_stats, summarize
    from arwave.evaluation.fad_over_time import fad_over_time
    from arwave.evaluation.recon import rms_db

    model = ref if isinstance(ref, torch.nn.Module) else arwave.load(ref)
    name = name or display_name(ref)
    kind = model.config.kind
    model.eval()
    labels = _model_classes(model, classes, name)
    missing = [c for c in labels if c not in classifier_emb.class_names]
    if missing:
        raise ArwaveError(
            f"{name}: the classifier {classifier_emb.name} does not know class(es) {', '.join(missing)} "
            f"(it knows {', '.join(classifier_emb.class_names)})"
        )
    sr = model.sample_rate
    t0 = time.perf_counter()
    clips: list[tuple[str, int, torch.Tensor]] = []  # (class, index in its batch, (C, N))
    for c in labels:
        _log(f"{name}: {seeds} clip(s) of {seconds:g} s, class {c}", progress)
        batch = model.generate(seconds, num=seeds, seed=seed, class_label=c)
        clips += [(c, k, w.float()) for k, w in enumerate(batch)]
    gen_seconds = time.perf_counter() - t0
    waves = [w for _, _, w in clips]

    # recognition (the classifier's clip posteriors) and the FAD of every embedder
    fads, posts = {}, None
    for emb in embedders:
        s = summarize(emb, waves, sr, progress=progress, desc=f"{name} clips")
        fads[emb.name] = fad_from_stats(s.stats, ref_stats[emb.name])
        if emb is classifier_emb:
            posts = s.posteriors
    if posts is None:
        posts = classifier_emb.features(waves, sr).posteriors
    predicted = [classifier_emb.class_names[int(i)] for i in posts.argmax(-1)]
    hits = [p == c for p, (c, _, _) in zip(predicted, clips)]
    per_class_rec = {c: sum(h for h, (cc, _, _) in zip(hits, clips) if cc == c) / seeds for c in labels}

    # the matched floor: real train-split clips in the model's format, as many and as long as the clips
    train = real_clips_by_class(manifest, sr, model.channels, seconds, split="train", limit=seeds)
    matched = [w for c in labels for w in train.get(c, [])]
    floor_matched = {}
    for emb in embedders:
        try:
            floor_matched[emb.name] = fad_from_stats(
                summarize(emb, matched, sr, progress=False).stats, ref_stats[emb.name]
            )
        except ArwaveError:  # too few train clips for a Gaussian fit
            floor_matched[emb.name] = None

    # distinctness: generated seeds vs real recordings, per class
    real = real_clips_by_class(manifest, sr, model.channels, seconds)
    per_class, gen_d, real_d = {}, {}, {}
    for c in labels:
        g = _pairwise_mean([w for cc, _, w in clips if cc == c], sr)
        r = _pairwise_mean(real.get(c, []), sr)
        gen_d[c], real_d[c] = g, r
        per_class[c] = g / r if g is not None and r else None
    ratios = [v for v in per_class.values() if v is not None]

    silent = [f"{c}/{k}" for c, k, w in clips if rms_db(w) < SILENT_DB]
    constant = []
    for c, k, w in clips:
        v = temporal_variation(w, sr)
        if v is not None and v < CONSTANT_VARIATION and f"{c}/{k}" not in silent:
            constant.append(f"{c}/{k}")

    row = {
        "model": name,
        "kind": kind,
        "sample_rate": sr,
        "classes": labels,
        "clips": len(clips),
        "generation_seconds": gen_seconds,
        "audio_seconds": len(clips) * seconds,
        "recognition": sum(hits) / len(hits),
        "recognition_per_class": per_class_rec,
        "predicted": {f"{c}/{k}": p for (c, k, _), p in zip(clips, predicted)},
        "distinct": {
            "min": min(ratios) if ratios else None,
            "mean": sum(ratios) / len(ratios) if ratios else None,
            "per_class": per_class,
            "generated_mel": gen_d,
            "real_mel": real_d,
        },
        "silent": silent,
        "constant": constant,
        "fad": fads,
        "fad_vs_floor": {e: (v / floor[e] if floor[e] > 0 else None) for e, v in fads.items()},
        "floor_matched": floor_matched,
        "matched_clips": len(matched),
        "fad_vs_floor_matched": {e: (v / floor_matched[e] if floor_matched[e] else None) for e, v in fads.items()},
        "rollout": None,
    }

    # long rollouts: FAD over time (CAM)
    rolls = None
    if kind == "cam" and rollout_seconds > 0:
        n = rollouts if rollouts is not None else len(labels)
        _log(f"{name}: {n} rollout(s) of {rollout_seconds:g} s", progress)
        rolls = [
            model.generate(rollout_seconds, num=1, seed=seed + i // len(labels), class_label=labels[i % len(labels)])[0]
            for i in range(n)
        ]
        row["rollout"] = {}
        for emb in embedders:
            fot = fad_over_time(
                rolls, sr, ref_stats[emb.name], embedder=emb, window_seconds=window_seconds, progress=progress
            )
            first, last = fot["fad"][0], fot["fad"][-1]
            row["rollout"][emb.name] = {
                "times": fot["times"],
                "fad": fot["fad"],
                "first": first,
                "last": last,
                "ratio": last / first if first > 0 else float("inf"),
                "rollouts": n,
                "window_seconds": window_seconds,
            }
    row["checks"] = _checks(row, targets)
    row["pass"] = all(ch["pass"] for ch in row["checks"] if ch["required"])
    if keep_audio:
        row["_audio"] = {"clips": clips, "rollouts": rolls}
    return row


def bench_generation_quality(
    models=None,
    data=None,
    classes=None,
    seeds: int = 4,
    seconds: float = 10.0,
    rollout_seconds: float = 60.0,
    window_seconds: float = 10.0,
    rollouts: int | None = None,
    classifier: str = "instrument-classifier",
    embedders=None,
    seed: int = 0,
    targets: Targets = Targets(),
    keep_audio: bool = False,
    progress: bool = True,
) -> dict:
    """The generation-quality figures of `models` (names, run folders or loaded models; default the
    bundled cam, aar, nexttoken) on `data` (a manifest with train and test splits; default the models'
    training manifest). `embedders`: FAD embedders (default classifier:<classifier> and aisfx).
    With keep_audio, each model row holds its clips and rollouts under "_audio" (not JSON)."""
    import arwave
    from arwave.evaluation.embedders.by_name import get_embedder

    models = list(models) if models else default_models()
    if not models:
        raise ArwaveError(
            "none of cam, aar, nexttoken is bundled in this install: give model names or run folders "
            "(train them with scripts/train-pretrained.sh NAME)"
        )
    if seeds < 2:
        raise ArwaveError(f"--seeds must be >= 2 (distinctness compares clips of different seeds), got {seeds}")
    if seconds <= 0:
        raise ArwaveError(f"--seconds must be > 0, got {seconds}")
    # load every model and check the options first, so that mistakes fail before the long parts
    named = [(m if isinstance(m, torch.nn.Module) else arwave.load(m), display_name(m)) for m in models]
    if any(m.config.kind == "cam" for m, _ in named) and rollout_seconds and rollout_seconds < 2 * window_seconds:
        raise ArwaveError(
            f"--rollout-seconds {rollout_seconds:g} must hold at least two {window_seconds:g}-s windows "
            "(or be 0: no rollouts)"
        )
    cls_name = f"classifier:{classifier}"
    names = list(embedders) if embedders else [cls_name, "aisfx"]
    embs = [get_embedder(e) for e in names]
    classifier_emb = next((e for e, n in zip(embs, names) if n == cls_name), None) or get_embedder(cls_name)
    if not classifier_emb.class_names:
        raise ArwaveError(f"{classifier}: not a classifier")
    for model, name in named:
        missing = [c for c in _model_classes(model, classes, name) if c not in classifier_emb.class_names]
        if missing:
            raise ArwaveError(
                f"{name}: the classifier {classifier} does not know class(es) {', '.join(missing)} "
                f"(it knows {', '.join(classifier_emb.class_names)})"
            )
    manifest = str(data) if data else default_manifest([m for m, _ in named])
    if not Path(manifest).is_file():
        raise ArwaveError(f"{manifest}: no such manifest")
    _log(f"real-vs-real floor FAD(train, test) of {manifest}", progress)
    ref_stats, floor = reference_and_floor(embs, manifest, progress)
    rows = [
        measure_model(
            m,
            manifest,
            classifier_emb,
            embs,
            ref_stats,
            floor,
            classes=classes,
            seeds=seeds,
            seconds=seconds,
            seed=seed,
            rollout_seconds=rollout_seconds,
            window_seconds=window_seconds,
            rollouts=rollouts,
            targets=targets,
            keep_audio=keep_audio,
            progress=progress,
            name=name,
        )
        for m, name in named
    ]
    return {
        "bench": "generation-quality",
        "data": manifest,
        "classifier": classifier,
        "embedders": [e.name for e in embs],
        "seeds": seeds,
        "seconds": seconds,
        "seed": seed,
        "rollout_seconds": rollout_seconds,
        "window_seconds": window_seconds,
        "targets": asdict(targets),
        "floor": floor,
        "models": rows,
        "pass": all(r["pass"] for r in rows),
    }


# ---------------------------------------------------------------------------------------------------
# the table


def _num(v, fmt="{:.3g}") -> str:
    return "-" if v is None else fmt.format(v)


def short_embedder(name: str) -> str:
    return "classifier" if name.startswith("classifier:") else name


def format_table(out: dict) -> str:
    lines = [
        f"generation quality: {out['seeds']} clips x {out['seconds']:g} s per class and model; "
        f"data {out['data']} (test split); classifier {out['classifier']}",
        "real-vs-real floor FAD(train, test): " + ", ".join(f"{e} {v:.4g}" for e, v in out["floor"].items()),
        "matched floor: FAD(as many train-split clips as generated ones, same length, in the model's format, test)",
    ]
    head = ["MODEL", "KIND", "CLIPS", "RECOGNISED", "DISTINCT min", "SILENT", "CONSTANT"]
    head += [f"FAD {short_embedder(e)} (x floor, x matched)" for e in out["embedders"]]
    head += [f"ROLLOUT {short_embedder(e)} last/first" for e in out["embedders"]]
    table = [head]
    for r in out["models"]:
        row = [
            r["model"],
            r["kind"],
            str(r["clips"]),
            _num(r["recognition"], "{:.3f}"),
            _num(r["distinct"]["min"]),
            str(len(r["silent"])),
            str(len(r["constant"])),
        ]
        row += [
            f"{r['fad'][e]:.4g} ({_num(r['fad_vs_floor'][e], '{:.2f}')}x, "
            f"{_num(r['fad_vs_floor_matched'][e], '{:.2f}')}x)"
            for e in out["embedders"]
        ]
        row += [_num((r["rollout"] or {}).get(e, {}).get("ratio"), "{:.2f}") for e in out["embedders"]]
        table.append(row)
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    lines.append("")
    lines += ["  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(t, widths))) for t in table]
    lines += ["", "targets of issue 11:"]
    width = max((len(ch["target"]) for r in out["models"] for ch in r["checks"]), default=0)
    for r in out["models"]:
        for ch in r["checks"]:
            verdict = ("PASS" if ch["pass"] else "FAIL") + ("" if ch["required"] else " (reported only)")
            value = str(ch["value"]) if isinstance(ch["value"], int) else _num(ch["value"], "{:.3f}")
            lines.append(f"  {r['model']:<12} {ch['target']:<{width}} {value:>8}  {verdict}")
    lines.append(f"overall: {'PASS' if out['pass'] else 'FAIL'}")
    return "\n".join(lines)
