"""`arwave demo` (default): what the bundled pretrained models do, in a few minutes on a CPU.

bundled generators (cam, aar, nexttoken) → class-conditioned clips, measured by a small
generation-quality run (`arwave.bench.generation_quality`) → CAM rollouts and FAD over time →
reconstructions of held-out clips by the bundled codecs → OUT/report.html, which says how each model
was trained (its card: command, data, steps, measured quality).

Nothing is trained. A model that is not bundled (or whose codec is not) is named and skipped. The
train-everything demo is `arwave demo --from-scratch` (arwave.experiments.demo).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from arwave.errors import ArwaveError
from arwave.experiments.common import log, write_examples
from arwave.experiments.report import Section, finish_report

GENERATORS = ("cam", "aar", "nexttoken")
CODECS = ("codec-latent", "codec-sat", "codec-rvq")
CLASSIFIER = "instrument-classifier"
EMBEDDERS = (f"classifier:{CLASSIFIER}",)  # aisfx on the whole corpus would take minutes more (--embedder aisfx)
FALLBACK_MINUTES, FALLBACK_DIR = 40.0, "corpus-demo"
TITLES = {
    "cam": "CAM (continuous latents, rf head + noise augmentation)",
    "aar": "AAR (next-scale tokens of SAT)",
    "nexttoken": "next-token baseline (RVQ tokens)",
}


def _load_bundles(names, skipped: dict, progress: bool) -> dict:
    """name -> loaded model for the bundles that load; the others go into `skipped` with the reason."""
    import arwave
    from arwave import pretrained

    out = {}
    for name in names:
        if not pretrained.is_bundle(pretrained.root() / name):
            skipped[name] = pretrained.not_bundled_message(name)
        else:
            try:
                out[name] = arwave.load(name)
                continue
            except ArwaveError as err:  # e.g. its codec is not bundled
                skipped[name] = f"{name} cannot be loaded: {err}"
        if progress:
            log(f"skipping {name}: {skipped[name]}")
    return out


def training_rows(names) -> list[dict]:
    """One row per bundled model from its card: how it was trained and what was measured."""
    from arwave import pretrained
    from arwave.console import count_text, quality_text

    rows = []
    for name in names:
        card = pretrained.read_card(pretrained.root() / name)
        rows.append(
            {
                "model": name,
                "kind": card.get("kind", "?"),
                "codec": card.get("parent") or "",
                "parameters": count_text(int(card.get("parameters", 0))),
                "steps": card.get("steps", 0),
                "weights": f"{card.get('weights', '?')}, {card.get('format', '?')}",
                "training data": card.get("training_data", "?"),
                "training command": card.get("training_command", "?"),
                "measured quality (card)": quality_text(card.get("quality") or {}),
            }
        )
    return rows


def choose_manifest(data, models: dict, progress: bool) -> Path:
    """--data; else the bundles' training manifest when it is on this machine; else the built-in corpus,
    rendered at the size of the bundles' training corpus (FALLBACK_MINUTES, about 17 test files) into its
    own cache folder."""
    from arwave.bench.generation_quality import default_manifest

    if data:
        if not Path(data).is_file():
            raise ArwaveError(f"{data}: no such manifest")
        return Path(data)
    try:
        return Path(default_manifest(list(models.values())))
    except ArwaveError:
        from arwave.config import DataConfig
        from arwave.data.corpus import ensure_corpus
        from arwave.paths import cache_root

        cfg = DataConfig(corpus_minutes=FALLBACK_MINUTES, corpus_dir=str(cache_root() / FALLBACK_DIR))
        if progress:
            log(
                "the bundles' training manifest is not on this machine: using the built-in corpus "
                f"({FALLBACK_MINUTES:g} "
                "min, the default SoundFont; the figures of record use the bundles' own data)"
            )
        return Path(ensure_corpus(cfg))


def _codec_section(
    codecs: dict, manifest: Path, media: Path, clips: int, seconds: float, spectrograms: bool = True
) -> tuple[Section, list[dict]]:
    """MEL distance of `clips` held-out clips per codec; the first clip and its reconstruction as audio."""
    from arwave.bench.codec_quality import held_out_clips
    from arwave.evaluation.recon import clip_mel_distance

    rows, audio = [], []
    for name, codec in codecs.items():
        codec.eval()
        refs = held_out_clips(
            manifest, codec.sample_rate, codec.channels, clips=clips, seconds=seconds, splits=("test",)
        )
        with torch.no_grad():
            recons = [codec.reconstruct(x[None])[0] for x in refs]
        mels = [clip_mel_distance(r, x, codec.sample_rate) for r, x in zip(refs, recons)]
        rows.append(
            {
                "codec": name,
                "bottleneck": codec.kind,
                "tokens/s": codec.tokens_per_second,
                "sample rate": codec.sample_rate,
                "channels": codec.channels,
                "clips": len(refs),
                "MEL distance": sum(mels) / len(mels),
            }
        )
        audio += write_examples(
            torch.stack([refs[0], recons[0]]),
            codec.sample_rate,
            media,
            name,
            [f"{name}: original", f"{name}: reconstruction"],
            spectrograms,
        )
    return Section(
        "Codecs: reconstructions of held-out clips",
        text=(
            f"Clips of {seconds:g} s from the test split (never trained on), encoded and decoded by each bundled "
            "codec; "
            "MEL distance as in <code>arwave bench codec-quality</code> (mean over the clips; docs/metrics.md; lower "
            "is "
            "better). One clip per codec to listen to."
        ),
        tables=[("reconstruction", rows)],
        audio=audio,
    ), rows


def _generate_only(models: dict, classes, seeds: int, seconds: float, seed: int) -> dict:
    """Clips without measurements (when the classifier is not bundled): name -> [(class, k, wave)]."""
    out = {}
    for name, model in models.items():
        labels = classes or list(model.label_names)
        out[name] = [
            (c, k, w)
            for c in labels
            for k, w in enumerate(model.generate(seconds, num=seeds, seed=seed, class_label=c))
        ]
    return out


def _models_section(bundled: list[str], skipped: dict[str, str]) -> Section:
    """How each model was trained (from the cards), and what is missing."""
    skipped_text = "".join(f"<li><b>{n}</b>: {m}</li>" for n, m in skipped.items())
    return Section(
        "The bundled models and how they were trained",
        text=(
            "Every model below was trained by the command shown (reproducible with "
            "<code>scripts/train-pretrained.sh NAME</code>) on the data shown, for the number of steps shown; the "
            "quality column is what was measured when it was exported (its model card, <code>arwave models</code>)."
            + (
                f"</p><p>Not in this report (not bundled in this install, or not loadable):<ul>{skipped_text}</ul>"
                if skipped
                else ""
            )
        ),
        tables=[("bundled models", training_rows(bundled))],
    )


def _generator_section(
    name: str,
    model,
    made: dict,
    row: dict | None,
    media: Path,
    seconds: float,
    seeds: int,
    seed: int,
    rollout_seconds: float,
    window_seconds: float,
    spectrograms: bool,
) -> Section:
    """A generator's clips (`made`: "clips" [(class, k, wave)], "rollouts") and, when measured (`row` of
    the generation-quality bench), its FAD over a rollout."""
    from arwave.bench.generation_quality import short_embedder
    from arwave.evaluation.fad_over_time import plot_fad_over_time

    got = made["clips"]
    first = got[0][0]
    # one clip per class, then the other seeds of the first class (same class, different seeds)
    pick = [x for x in got if x[1] == 0] + [x for x in got if x[0] == first and x[1] > 0]
    audio = write_examples(
        torch.stack([w for _, _, w in pick]),
        model.sample_rate,
        media,
        name,
        [f"{name}: {c} (clip {k})" for c, k, _ in pick],
        spectrograms,
    )
    text = (
        f"Class-conditioned clips of {seconds:g} s, made with <code>arwave generate {name} --class CLASS "
        f"--seconds {seconds:g} --num {seeds} --seed {seed}</code>: one per class, then the other clips of "
        f"<i>{first}</i> (same class, different samples)."
    )
    images = []
    rolls = made.get("rollouts")
    if rolls:
        audio += write_examples(
            torch.stack(rolls[:1]),
            model.sample_rate,
            media,
            f"{name}-rollout",
            [f"{name}: {rollout_seconds:g}-s rollout ({got[0][0]})"],
            spectrograms,
        )
        curves = {
            short_embedder(e): {
                "times": r["times"],
                "fad": [f / r["first"] for f in r["fad"]],
                "window_seconds": r["window_seconds"],
                "embedder": "relative to the first window",
            }
            for e, r in row["rollout"].items()
        }
        plot_fad_over_time(
            curves,
            media / f"{name}-fad-over-time.png",
            title=f"{name}: FAD over a {rollout_seconds:g}-s rollout, relative to the first window",
        )
        images.append((f"{name}: FAD over time", f"media/{name}-fad-over-time.png"))
        text += (
            f" The rollout: {rollout_seconds:g} s, FAD of each {window_seconds:g}-s window against the test "
            "split, divided by that of the first window (flat = no drift)."
        )
    return Section(TITLES.get(name, name), text=text, audio=audio, images=images)


def _quality_section(gq: dict, manifest: Path, seeds: int, seconds: float) -> Section:
    """The generation-quality measurement: a row per model and each target's result."""
    from arwave.bench.generation_quality import short_embedder

    summary = []
    for row in gq["models"]:
        line = {
            "model": row["model"],
            "clips": row["clips"],
            "recognised": row["recognition"],
            "distinct (min class)": row["distinct"]["min"] if row["distinct"]["min"] is not None else "-",
            "silent": len(row["silent"]),
            "constant": len(row["constant"]),
        }
        for e in gq["embedders"]:
            line[f"FAD {short_embedder(e)} / floor"] = (
                row["fad_vs_floor"][e] if row["fad_vs_floor"][e] is not None else "-"
            )
            m = row["fad_vs_floor_matched"][e]
            line[f"FAD {short_embedder(e)} / matched floor"] = m if m is not None else "-"
        for e in gq["embedders"]:
            r = (row["rollout"] or {}).get(e)
            line[f"rollout {short_embedder(e)} last / first"] = r["ratio"] if r else "-"
        line["targets met"] = "yes" if row["pass"] else "no"
        summary.append(line)
    checks = [
        {
            "model": row["model"],
            "target": ch["target"],
            "value": ch["value"],
            "result": ("pass" if ch["pass"] else "FAIL") + ("" if ch["required"] else " (reported only)"),
        }
        for row in gq["models"]
        for ch in row["checks"]
    ]
    floor = ", ".join(f"{short_embedder(e)} {v:.4g}" for e, v in gq["floor"].items())
    return Section(
        "Generation quality (a small measurement)",
        text=(
            f"{seeds} clips x {seconds:g} s per class and model, measured against the test split of "
            f'<code>{manifest}</code> with the targets of issue 11 (definitions: docs/metrics.md, "Generation '
            f'quality"). Real-vs-real floor FAD(train, test): {floor}; the matched floor is the FAD of as '
            "many real "
            f"train clips of the same length in the model's format (small sets bias FAD upwards, real audio "
            f"included). These few clips make FAD noisy; the figures "
            f"of record come from <code>arwave bench generation-quality</code> (10-s clips, 4 per class, 60-s "
            f"rollouts) and are in docs/benchmarks.md."
        ),
        tables=[("per model", summary), ("targets", checks)],
    )


def run_bundled_demo(
    out: str | Path = "demo-out",
    data=None,
    seconds: float = 4.0,
    seeds: int = 2,
    classes=None,
    rollout_seconds: float = 20.0,
    window_seconds: float = 5.0,
    rollouts: int = 2,
    embedders=None,
    recon_clips: int = 4,
    seed: int = 0,
    spectrograms: bool = True,
    progress: bool = True,
) -> dict:
    """Generate with the bundled models, measure a little, write OUT/report.html and OUT/metrics.json.
    `spectrograms=False` leaves the spectrogram pictures out (faster)."""
    from arwave import pretrained
    from arwave.bench.generation_quality import bench_generation_quality, format_table

    say = log if progress else (lambda msg: None)
    t_start = time.time()
    out = Path(out)
    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    skipped: dict[str, str] = {}
    log(f"bundled models in {pretrained.root()}")
    generators = _load_bundles(GENERATORS, skipped, progress)
    codecs = _load_bundles(CODECS, skipped, progress)
    has_classifier = bool(_load_bundles([CLASSIFIER], skipped, progress))
    bundled = [
        n
        for n in (*GENERATORS, *CODECS, CLASSIFIER)
        if n in generators or n in codecs or (n == CLASSIFIER and has_classifier)
    ]
    results: dict = {"bundled": bundled, "skipped": skipped}
    sections: list[Section] = []
    if not generators and not codecs:
        say(
            "no bundled generator or codec in this install: the report lists what is missing; "
            "`arwave demo --from-scratch` trains everything instead"
        )
    manifest = choose_manifest(data, {**generators, **codecs}, progress) if (generators or codecs) else None
    results["data"] = str(manifest) if manifest else None

    sections.append(_models_section(bundled, skipped))

    # generated clips + the small generation-quality measurement
    gq, clips = None, {}
    if generators and has_classifier:
        say(f"generation quality: {', '.join(generators)} ({seeds} clips x {seconds:g} s per class)")
        gq = bench_generation_quality(
            list(generators.values()),
            manifest,
            classes=classes,
            seeds=seeds,
            seconds=seconds,
            rollout_seconds=rollout_seconds,
            window_seconds=window_seconds,
            rollouts=rollouts,
            classifier=CLASSIFIER,
            embedders=embedders or list(EMBEDDERS),
            seed=seed,
            keep_audio=True,
            progress=progress,
        )
        for row in gq["models"]:
            clips[row["model"]] = row.pop("_audio")
    elif generators:
        say(f"{CLASSIFIER} is not bundled: generating without measurements")
        clips = {
            n: {"clips": c, "rollouts": None}
            for n, c in _generate_only(generators, classes, seeds, seconds, seed).items()
        }

    for name, model in generators.items():
        row = next((r for r in gq["models"] if r["model"] == name), None) if gq else None
        sections.append(
            _generator_section(
                name,
                model,
                clips[name],
                row,
                media,
                seconds,
                seeds,
                seed,
                rollout_seconds,
                window_seconds,
                spectrograms,
            )
        )

    if codecs:
        say(f"reconstructions: {', '.join(codecs)}")
        section, rows = _codec_section(codecs, manifest, media, recon_clips, seconds, spectrograms)
        sections.append(section)
        results["codecs"] = rows

    if gq is not None:
        results["generation_quality"] = gq
        sections.insert(1, _quality_section(gq, manifest, seeds, seconds))
        if progress:
            print(format_table(gq), flush=True)
    elif generators:
        sections.insert(
            1,
            Section(
                "Generation quality", text=(f"Not measured: {skipped.get(CLASSIFIER, CLASSIFIER + ' is not bundled')}.")
            ),
        )

    meta = {"bundles": str(pretrained.root()), "data": str(manifest) if manifest else "-"}
    return finish_report(out, "arwave demo: the bundled pretrained models", sections, results, t_start, meta, say)
