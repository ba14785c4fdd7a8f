"""`arwave demo --from-scratch`: the whole chain on the built-in corpus, inside a time budget, with a report.

corpus → classifier (for FAD/ISc/KL) → continuous codec → CAM → SAT (msrq) codec → AAR →
examples → metrics (reconstruction, FAD/ISc/KL, FAD over time) → OUT/report.html.

Runs land in OUT/runs/ and are reused when the demo is run again (delete a run folder to retrain it).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from arwave.experiments.common import final_metrics, log, train_or_reuse, write_examples
from arwave.experiments.report import Section, finish_report

# share of the training budget per model (the rest of --minutes goes to data, sampling and metrics)
TRAIN_SHARE = 0.72
SHARES = {"classifier": 0.08, "codec-continuous": 0.22, "cam": 0.24, "codec-msrq": 0.22, "aar": 0.24}
AAR_CLIP_SECONDS = 2.0  # one clip per instrument


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def run_demo(
    out: str | Path = "demo-out",
    minutes: float = 10.0,
    preset: str = "small",
    seed: int = 0,
    progress: bool = True,
    corpus_minutes: float | None = None,
) -> dict:
    """Train every model within `minutes`, evaluate them, and write OUT/report.html + OUT/metrics.json."""
    from arwave.config import DataConfig
    from arwave.data.corpus import ensure_corpus

    t_start = time.time()
    out = Path(out)
    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    results: dict = {"minutes_budget": minutes, "preset": preset, "runs": {}}

    data = DataConfig()
    if corpus_minutes:
        data.corpus_minutes = corpus_minutes
    sections = [corpus_section(data, ensure_corpus(data), media)]
    budget = {k: max(0.1, minutes * TRAIN_SHARE * s) for k, s in SHARES.items()}
    data_over = [f"data.corpus_minutes={corpus_minutes}"] if corpus_minutes else []
    runs = train_all(out / "runs", preset, budget, data_over, progress)

    log("evaluating")
    from arwave.evaluation.classifier import evaluate_classifier

    acc = evaluate_classifier(runs["classifier"], split="test", progress=progress)
    results["classifier"] = {k: acc[k] for k in ("accuracy", "num_items") if k in acc}
    embedders = ["aisfx", f"classifier:{runs['classifier'].resolve()}"]
    codec_rows, section = codec_section(runs, media, out, results, progress)
    sections.append(section)
    cam_eval, section = cam_section(runs["cam"], media, out, embedders, seed, results, progress)
    sections.append(section)
    aar_eval, section = aar_section(runs["aar"], media, out, embedders, seed, results, progress)
    sections.append(section)
    results["runs"]["classifier"] = final_metrics(runs["classifier"])
    sections.append(
        Section(
            "Classifier (the FAD/ISc/KL embedder trained on the corpus)",
            text=(f"Test accuracy {acc['accuracy']:.3f} over {acc['num_items']} test files."),
            images=[("classifier training curves", str((runs["classifier"] / "loss.png").relative_to(out)))],
        )
    )
    sections.insert(0, metrics_section(cam_eval, aar_eval, codec_rows, runs, budget, results))

    meta = {"preset": preset, "budget": f"{minutes:g} min"}
    return finish_report(out, "arwave demo", sections, results, t_start, meta, log)


def corpus_section(data, manifest: Path, media: Path) -> Section:
    """Three real test recordings of the built-in corpus, to hear what the models learn from."""
    from arwave.data.dataset import dataset_for_split

    test_full = dataset_for_split(data, "test", segment_samples=round(4 * data.sample_rate), random_crop=False)
    log(f"corpus: {manifest} ({len(test_full)} test files, labels {', '.join(test_full.label_names)})")
    real = torch.stack([test_full[(i, 0)]["audio"] for i in range(min(3, len(test_full)))])
    real_labels = [test_full.label_names[test_full[(i, 0)]["label"]] for i in range(len(real))]
    return Section(
        "Built-in corpus",
        text=(
            f"Bach chorales and folk tunes from music21's bundled corpus, rendered through a General MIDI "
            f"SoundFont to 48 kHz stereo, one instrument per recording. Instruments: "
            f"{', '.join(test_full.label_names)}. Manifest: <code>{manifest}</code>."
        ),
        audio=write_examples(real, data.sample_rate, media, "real", [f"real: {l}" for l in real_labels]),
    )


def train_all(runs: Path, preset: str, budget: dict, data_over: list[str], progress: bool) -> dict[str, Path]:
    """The five runs in order (each AR model on the codec trained just before it), or reused when done."""
    r_cls = train_or_reuse(
        "classifier", preset, runs / "classifier", budget["classifier"], data_overrides=data_over, progress=progress
    )
    r_cc = train_or_reuse(
        "codec",
        f"{preset}-continuous",
        runs / "codec-continuous",
        budget["codec-continuous"],
        data_overrides=data_over,
        progress=progress,
    )
    r_cam = train_or_reuse(
        "cam", preset, runs / "cam", budget["cam"], [f"codec_run={r_cc.resolve()}"], data_over, progress
    )
    r_cm = train_or_reuse(
        "codec",
        f"{preset}-msrq",
        runs / "codec-msrq",
        budget["codec-msrq"],
        data_overrides=data_over,
        progress=progress,
    )
    r_aar = train_or_reuse(
        "aar", preset, runs / "aar", budget["aar"], [f"codec_run={r_cm.resolve()}"], data_over, progress
    )
    return {"classifier": r_cls, "codec-continuous": r_cc, "cam": r_cam, "codec-msrq": r_cm, "aar": r_aar}


def codec_section(runs: dict, media: Path, out: Path, results: dict, progress: bool) -> tuple[list[dict], Section]:
    """Reconstruction figures and one original/reconstruction pair per codec."""
    import arwave
    from arwave.data.dataset import dataset_for_split
    from arwave.evaluation.recon import evaluate_recon

    codec_rows, codec_audio = [], []
    for name in ("codec-continuous", "codec-msrq"):
        run = runs[name]
        codec = arwave.load(run)
        ds = dataset_for_split(
            codec.config.data,
            "test",
            segment_samples=round(codec.config.model.window_seconds * codec.sample_rate * 2),
            random_crop=False,
            tiled=True,
        )
        rec = evaluate_recon(codec, ds, max_items=24, progress=progress)
        codec_rows.append(
            {
                "codec": name,
                "bottleneck": rec["bottleneck"],
                "tokens/s": rec["tokens_per_second"],
                "sample rate": codec.sample_rate,
                "channels": codec.channels,
                "params": _params(codec),
                "MEL distance": rec["mel_distance"],
                "STFT distance": rec["stft_distance"],
                "items": rec["num_items"],
            }
        )
        test = dataset_for_split(codec.config.data, "test", segment_samples=4 * codec.sample_rate, random_crop=False)
        clip = test[(0, 0)]["audio"][None]
        with torch.no_grad():
            recon = codec.reconstruct(clip)
        codec_audio += write_examples(
            torch.cat([clip, recon]), codec.sample_rate, media, name, [f"{name}: original", f"{name}: reconstruction"]
        )
        results["runs"][name] = {**final_metrics(run), **rec}
    section = Section(
        "Codecs (reconstruction)",
        text=(
            "One SEANet encoder/decoder with two of its three bottlenecks: <b>continuous</b> (VAE latents for "
            "CAM) and <b>msrq</b> (SAT's multi-scale residual VQ, for AAR). MEL and STFT distance as defined in "
            "docs/metrics.md, on the test split (lower is better)."
        ),
        tables=[("reconstruction on the test split", codec_rows)],
        audio=codec_audio,
        images=[
            (f"{n} training curves", str((runs[n] / "loss.png").relative_to(out)))
            for n in ("codec-continuous", "codec-msrq")
        ],
    )
    return codec_rows, section


def cam_section(
    r_cam: Path, media: Path, out: Path, embedders: list[str], seed: int, results: dict, progress: bool
) -> tuple[dict, Section]:
    """CAM: long rollouts (4× its training context), FAD over time on audio and latents, FAD/ISc/KL."""
    import arwave
    from arwave.data.dataset import dataset_for_split
    from arwave.evaluation.fad_over_time import fad_over_time, latent_fad_over_time, plot_fad_over_time
    from arwave.evaluation.generated import evaluate_generated
    from arwave.experiments.claims import test_split_latents

    cam = arwave.load(r_cam)
    context = cam.config.model.context
    context_s = context * cam.hop / cam.sample_rate
    rollout_s = 4 * context_s
    latents = cam.sample_latents(4 * context, num=6, seed=seed)
    with torch.inference_mode():
        waves = cam.codec.decode(latents)
    cam_audio = write_examples(
        waves[:3], cam.sample_rate, media, "cam", [f"CAM rollout {i} ({rollout_s:.1f} s)" for i in range(3)]
    )
    ref_ctx = dataset_for_split(
        cam.config.data, "test", segment_samples=round(context_s * cam.sample_rate), random_crop=False, tiled=True
    )
    fot = fad_over_time(waves, cam.sample_rate, ref_ctx, embedder="aisfx", window_seconds=context_s, progress=progress)
    lat = latent_fad_over_time(latents, test_split_latents(cam, progress), context)
    lat.update(times=[t * context_s / context for t in lat["times"]], window_seconds=context_s)
    plot_fad_over_time({"CAM (rf + noise aug)": fot}, media / "fad_over_time.png", title="FAD over time (aisfx)")
    plot_fad_over_time(
        {"CAM (rf + noise aug)": lat}, media / "latent_fad_over_time.png", title="FAD over time (codec latent space)"
    )
    cam_eval = evaluate_generated(waves, ref_ctx, embedder=embedders, sample_rate=cam.sample_rate, progress=progress)
    results["runs"]["cam"] = {
        **final_metrics(r_cam),
        "fad_over_time": fot,
        "latent_fad_over_time": lat,
        "eval": cam_eval,
        "params": _params(cam),
    }
    section = Section(
        "CAM: continuous autoregressive generation",
        text=(
            f"Rectified-flow head, noise augmentation on (k_max={cam.config.model.k_max}), inference noise "
            f"k_inf={cam.config.model.k_inf}. Rollouts of {rollout_s:.1f} s = 4× the training context of "
            f"{context_s:.2f} s; FAD of successive {context_s:.2f} s windows against the test split, on audio "
            f"(aisfx embedder, FAD_acc = {fot['fad_acc']:.3f}) and on the codec latents (FAD_acc = "
            f"{lat['fad_acc']:.3f}; the AR model's own drift, independent of how well the codec decodes)."
        ),
        audio=cam_audio,
        images=[
            ("FAD over time (aisfx)", "media/fad_over_time.png"),
            ("FAD over time (latent space)", "media/latent_fad_over_time.png"),
            ("CAM training curves", str((r_cam / "loss.png").relative_to(out))),
        ],
    )
    return cam_eval, section


def aar_section(
    r_aar: Path, media: Path, out: Path, embedders: list[str], seed: int, results: dict, progress: bool
) -> tuple[dict, Section]:
    """AAR: one clip per instrument (class-conditioned, CFG), longer than one window, and FAD/ISc/KL."""
    import arwave
    from arwave.data.dataset import dataset_for_split
    from arwave.evaluation.generated import evaluate_generated

    aar = arwave.load(r_aar)
    labels = list(aar.config.model.label_names) or [None]
    aar_clips = [
        aar.generate(
            AAR_CLIP_SECONDS, num=1, seed=seed + i, **({"class_label": l, "cfg": 2.0} if l is not None else {})
        )
        for i, l in enumerate(labels)
    ]
    aar_waves = torch.cat(aar_clips)
    aar_audio = write_examples(aar_waves, aar.sample_rate, media, "aar", [f"AAR: {l}" for l in labels])
    ref_aar = dataset_for_split(
        aar.config.data, "test", segment_samples=aar_waves.shape[-1], random_crop=False, tiled=True
    )
    aar_eval = evaluate_generated(
        aar_waves, ref_aar, embedder=embedders, sample_rate=aar.sample_rate, progress=progress
    )
    results["runs"]["aar"] = {**final_metrics(r_aar), "eval": aar_eval, "params": _params(aar)}
    section = Section(
        "AAR: next-scale generation",
        text=(
            "Class-conditioned (instrument) with classifier-free guidance ramping over scales; clips of two "
            "windows, the second continuing the first."
        ),
        audio=aar_audio,
        images=[("AAR training curves", str((r_aar / "loss.png").relative_to(out)))],
    )
    return aar_eval, section


def metrics_section(
    cam_eval: dict, aar_eval: dict, codec_rows: list[dict], runs: dict, budget: dict, results: dict
) -> Section:
    """The report's first section: every figure of this run in tables."""
    gen_rows = []
    for name, ev in (("CAM", cam_eval), ("AAR", aar_eval)):
        for emb in ev["embedders"]:
            gen_rows.append(
                {
                    "model": name,
                    "embedder": "classifier" if emb.startswith("classifier") else emb,
                    "FAD": ev["fad"][emb],
                    "ISc": ev.get("isc", {}).get(emb, ""),
                    "KL (marginal)": ev.get("kl_marginal", {}).get(emb, ""),
                    "clips": ev["num_generated"],
                }
            )
    run_rows = []
    for name, run in runs.items():
        fm = final_metrics(run)
        run_rows.append(
            {
                "run": name,
                "steps": fm.get("steps", 0),
                "train loss": fm.get("train_loss", ""),
                "val loss": fm.get("val_loss", ""),
                "minutes budget": budget[name],
            }
        )
    return Section(
        "Metrics",
        text="All numbers come from this run of the demo; definitions in docs/metrics.md.",
        tables=[
            ("generation (lower FAD is better; ISc higher is better)", gen_rows),
            ("reconstruction", codec_rows),
            ("training runs", run_rows),
            ("classifier", [results["classifier"]]),
        ],
    )
