"""The papers' three claims, one command each (`arwave experiment ...`), at whatever scale you give them.

(a) noise-aug        CAM: noise augmentation stops quality from decaying over long generations
                     (CAM vs MAR-RF, GIVT vs GIVT+noise, and CAM without inference noise): FAD over time.
(b) sat-vs-rvq       SAT: fewer tokens than plain RVQ (455 vs 750 per second) at equal or better
                     reconstruction: MEL / STFT distance after the same wall-clock training budget.
(c) aar-vs-nexttoken AAR: far fewer AR steps than next-token prediction: FAD / ISc / KL and speed.

Every model trains for the same wall-clock budget (`--minutes` each) on the built-in corpus (or `--data`).
Runs are reused when present, so an experiment can be resumed or extended with more models.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from arwave.experiments.common import final_metrics, train_or_reuse, write_examples
from arwave.experiments.report import Section, write_json, write_report
from arwave.pretrained import run_ref

CAM_VARIANTS = {  # SPEC §3: model names are switch settings
    "CAM": ["head=rf", "noise_aug=true"],
    "MAR-RF": ["head=rf", "noise_aug=false"],
    "GIVT": ["head=gmm", "noise_aug=false"],
    "GIVT+noise": ["head=gmm", "noise_aug=true"],
    "MAR": ["head=ddpm", "noise_aug=false"],
}


def _data_overrides(data: str | None) -> list[str]:
    return [f"data.manifest={Path(data).resolve()}"] if data else []


def _trained_steps(run: str | Path) -> int:
    """Optimiser steps behind a run (its metrics.csv) or a bundle (its card's `steps`)."""
    from arwave import pretrained

    bundle = pretrained.find(run)
    if bundle is not None:
        return int(pretrained.read_card(bundle).get("steps") or 0)
    return int(final_metrics(Path(run)).get("steps", 0))


def _plot_runs(runs: dict[str, Path], png: Path, title: str) -> Path:
    """Training loss of several runs on one plot (train split, smoothed by the log interval)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from arwave.training.logger import read_metrics

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, run in runs.items():
        pts = [
            (r["step"], r["value"])
            for r in read_metrics(run / "metrics.csv")
            if r["split"] == "train" and r["name"] == "loss"
        ]
        if pts:
            ax.plot(*zip(*pts), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png


def test_split_latents(model, progress: bool = True) -> torch.Tensor:
    """(D, M): every latent frame of the test split through the model's codec (cached beside its codec)."""
    from arwave.data.dataset import dataset_for_split
    from arwave.data.encoded import encode_files

    files = dataset_for_split(model.config.data, "test", segment_samples=1).file_paths
    codec = model.codec
    lat = encode_files(
        files,
        lambda a: codec.encode(a[None])[0].float(),
        Path(model.run_dir) / model.config.parent / "cache",
        "latents-test",
        model.sample_rate,
        model.channels,
        progress=progress,
    )
    return torch.cat(lat, dim=-1)


def noise_aug(
    out: Path,
    minutes: float,
    preset: str = "small",
    codec_run: str | None = None,
    variants=None,
    context_multiple: float = 4.0,
    num: int = 8,
    seed: int = 0,
    data: str | None = None,
    progress: bool = True,
) -> dict:
    import arwave
    from arwave.data.dataset import dataset_for_split
    from arwave.evaluation.fad_over_time import fad_over_time, latent_fad_over_time, plot_fad_over_time

    out = Path(out)
    variants = list(variants or ["CAM", "MAR-RF", "GIVT", "GIVT+noise"])
    codec = (
        Path(codec_run)
        if codec_run
        else train_or_reuse(
            "codec",
            f"{preset}-continuous",
            out / "runs" / "codec-continuous",
            minutes,
            data_overrides=_data_overrides(data),
            progress=progress,
        )
    )
    runs = {
        v: train_or_reuse(
            "cam",
            preset,
            out / "runs" / v.lower().replace("+", "-"),
            minutes,
            [*CAM_VARIANTS[v], f"codec_run={run_ref(codec)}"],
            _data_overrides(data),
            progress,
        )
        for v in variants
    }
    results, curves, latent_curves, audio = {}, {}, {}, []
    for name, run in runs.items():
        model = arwave.load(run)
        context_s = model.config.model.context * model.hop / model.sample_rate
        ref = dataset_for_split(
            model.config.data,
            "test",
            segment_samples=round(context_s * model.sample_rate),
            random_crop=False,
            tiled=True,
        )
        ref_latents = test_split_latents(model, progress)
        settings = [(name, {})]
        if model.config.model.noise_aug:
            settings.append((f"{name} (k_inf=0)", {"k_inf": 0.0}))  # the inference-noise ablation, same weights
        for label, sampling in settings:
            frames = int(round(context_multiple * model.config.model.context))
            t0 = time.time()
            latents = model.sample_latents(frames, num=num, seed=seed, **sampling)
            with torch.inference_mode():
                waves = model.codec.decode(latents)
            gen_s = time.time() - t0
            res = fad_over_time(
                waves, model.sample_rate, ref, embedder="aisfx", window_seconds=context_s, progress=progress
            )
            lat = latent_fad_over_time(latents, ref_latents, model.config.model.context)
            res.update(generation_seconds=gen_s, steps=final_metrics(run).get("steps", 0))
            curves[label] = res
            latent_curves[label] = {
                **lat,
                "times": [t * context_s / model.config.model.context for t in lat["times"]],
                "window_seconds": context_s,
            }
            results[label] = {
                "fad_first": res["fad"][0],
                "fad_acc": res["fad_acc"],
                "fad": res["fad"],
                "latent_fad": lat["fad"],
                "latent_fad_first": lat["fad"][0],
                "latent_fad_acc": lat["fad_acc"],
                "steps": res["steps"],
                "rtf": waves.shape[0] * waves.shape[-1] / model.sample_rate / gen_s,
            }
            audio += write_examples(
                waves[:1],
                model.sample_rate,
                out / "media",
                label.replace(" ", "_").replace("(", "").replace(")", "").replace("=", ""),
                [f"{label}: {context_multiple * context_s:.1f} s rollout"],
            )
    plot_fad_over_time(
        latent_curves,
        out / "media" / "latent_fad_over_time.png",
        title=f"FAD over time in latent space, {minutes:g} min of training each",
    )
    png = out / "media" / "fad_over_time.png"
    plot_fad_over_time(curves, png, title=f"FAD over time (aisfx), {minutes:g} min of training each")
    _plot_runs(runs, out / "media" / "loss.png", "CAM family training loss")
    rows = [
        {
            "model": k,
            "latent FAD first window": v["latent_fad_first"],
            "latent FAD_acc": v["latent_fad_acc"],
            "FAD aisfx first window": v["fad_first"],
            "FAD_acc aisfx": v["fad_acc"],
            "training steps": v["steps"],
        }
        for k, v in results.items()
    ]
    summary = {
        "experiment": "noise-aug",
        "minutes_per_model": minutes,
        "preset": preset,
        "codec": str(codec),
        "context_multiple": context_multiple,
        "num_rollouts": num,
        "results": results,
    }
    write_json(out / "results.json", summary)
    write_report(
        out / "report.html",
        "Claim (a): noise augmentation vs error accumulation",
        [
            Section(
                "FAD over time",
                tables=[("per model", rows)],
                images=[
                    ("FAD over time in latent space", "media/latent_fad_over_time.png"),
                    ("FAD over time (aisfx)", "media/fad_over_time.png"),
                    ("training loss", "media/loss.png"),
                ],
                audio=audio,
            )
        ],
    )
    return summary


def sat_vs_rvq(
    out: Path,
    minutes: float,
    preset: str = "small",
    data: str | None = None,
    max_items: int = 256,
    progress: bool = True,
) -> dict:
    import arwave
    from arwave.data.dataset import dataset_for_split
    from arwave.evaluation.recon import evaluate_recon

    out = Path(out)
    runs = {
        b: train_or_reuse(
            "codec",
            f"{preset}-{b}",
            out / "runs" / f"codec-{b}",
            minutes,
            data_overrides=_data_overrides(data),
            progress=progress,
        )
        for b in ("msrq", "rvq")
    }
    rows, audio, results = [], [], {}
    for b, run in runs.items():
        codec = arwave.load(run)
        ds = dataset_for_split(
            codec.config.data,
            "test",
            segment_samples=round(codec.config.model.window_seconds * codec.sample_rate),
            random_crop=False,
            tiled=True,
        )
        rec = evaluate_recon(codec, ds, max_items=max_items, progress=progress)
        results[b] = {**rec, "steps": final_metrics(run).get("steps", 0)}
        rows.append(
            {
                "bottleneck": "SAT (msrq)" if b == "msrq" else "RVQ",
                "tokens/s": rec["tokens_per_second"],
                "MEL distance": rec["mel_distance"],
                "STFT distance": rec["stft_distance"],
                "steps": results[b]["steps"],
                "items": rec["num_items"],
            }
        )
        clip = torch.stack([ds[(0, 0)]["audio"]])
        with torch.no_grad():
            audio += write_examples(
                torch.cat([clip, codec.reconstruct(clip)]),
                codec.sample_rate,
                out / "media",
                f"codec-{b}",
                [f"{b}: original", f"{b}: reconstruction"],
            )
    (out / "media").mkdir(parents=True, exist_ok=True)
    _plot_runs(
        {f"codec-{b}": r for b, r in runs.items()}, out / "media" / "loss.png", "codec training loss (generator total)"
    )
    summary = {"experiment": "sat-vs-rvq", "minutes_per_model": minutes, "preset": preset, "results": results}
    write_json(out / "results.json", summary)
    write_report(
        out / "report.html",
        "Claim (b): SAT (multi-scale RVQ) vs plain RVQ",
        [
            Section(
                "Reconstruction on the test split",
                tables=[("equal wall-clock training budget", rows)],
                images=[("training loss", "media/loss.png")],
                audio=audio,
            )
        ],
    )
    return summary


def aar_vs_nexttoken(
    out: Path,
    minutes: float,
    preset: str = "small",
    msrq_run: str | None = None,
    rvq_run: str | None = None,
    classifier_run: str | None = None,
    num_per_class: int = 2,
    seconds: float | None = None,
    data: str | None = None,
    seed: int = 0,
    progress: bool = True,
    aar: str | None = None,
    nexttoken: str | None = None,
) -> dict:
    """Train AAR and next-token for `minutes` each (on codecs trained here unless given), or compare the
    given ones (`aar` / `nexttoken`: bundled names or runs, e.g. the bundled models), then generate
    `num_per_class` clips per class with CFG 2 and score them against the test split."""
    import dataclasses

    import arwave
    from arwave.data.dataset import dataset_for_split
    from arwave.evaluation.generated import evaluate_generated

    out = Path(out)
    d = _data_overrides(data)

    def codec(given, bottleneck):
        if given:
            return Path(given)
        folder = out / "runs" / f"codec-{bottleneck}"
        return train_or_reuse("codec", f"{preset}-{bottleneck}", folder, minutes, data_overrides=d, progress=progress)

    classifier = (
        Path(classifier_run)
        if classifier_run
        else train_or_reuse(
            "classifier",
            preset,
            out / "runs" / "classifier",
            max(0.5, minutes / 3),
            data_overrides=d,
            progress=progress,
        )
    )
    runs = {
        "AAR": aar
        or train_or_reuse(
            "aar", preset, out / "runs" / "aar", minutes, [f"codec_run={run_ref(codec(msrq_run, 'msrq'))}"], d, progress
        ),
        "next-token": nexttoken
        or train_or_reuse(
            "nexttoken",
            preset,
            out / "runs" / "nexttoken",
            minutes,
            [f"codec_run={run_ref(codec(rvq_run, 'rvq'))}"],
            d,
            progress,
        ),
    }
    rows, audio, results = [], [], {}
    for name, run in runs.items():
        model = arwave.load(run)
        labels = list(model.config.model.label_names)
        test_data = model.config.data if not data else dataclasses.replace(model.config.data, manifest=str(data))
        secs = seconds or getattr(model, "window_seconds", 1.0)
        t0 = time.time()
        waves = torch.cat(
            [
                model.generate(secs, num=num_per_class, seed=seed + i, class_label=l, cfg=2.0)
                for i, l in enumerate(labels)
            ]
        )
        gen_s = time.time() - t0
        ref = dataset_for_split(test_data, "test", segment_samples=waves.shape[-1], random_crop=False, tiled=True)
        ev = evaluate_generated(
            waves,
            ref,
            embedder=["aisfx", f"classifier:{run_ref(classifier)}"],
            sample_rate=model.sample_rate,
            progress=progress,
        )
        results[name] = {
            "eval": ev,
            "generation_seconds": gen_s,
            "audio_seconds": waves.shape[0] * secs,
            "steps": _trained_steps(run),
        }
        for emb in ev["embedders"]:
            rows.append(
                {
                    "model": name,
                    "embedder": "classifier" if emb.startswith("classifier") else emb,
                    "FAD": ev["fad"][emb],
                    "ISc": ev.get("isc", {}).get(emb, ""),
                    "KL (marginal)": ev.get("kl_marginal", {}).get(emb, ""),
                    "gen s per audio s": gen_s / results[name]["audio_seconds"],
                }
            )
        audio += write_examples(
            waves[::num_per_class][:4],
            model.sample_rate,
            out / "media",
            name.lower(),
            [f"{name}: {l}" for l in labels[:4]],
        )
    (out / "media").mkdir(parents=True, exist_ok=True)
    logged = {name: Path(run) for name, run in runs.items() if (Path(run) / "metrics.csv").is_file()}
    if logged:  # bundles keep no training log
        _plot_runs(logged, out / "media" / "loss.png", "AAR vs next-token training loss (cross-entropy)")
    summary = {"experiment": "aar-vs-nexttoken", "minutes_per_model": minutes, "preset": preset, "results": results}
    write_json(out / "results.json", summary)
    write_report(
        out / "report.html",
        "Claim (c): next-scale (AAR) vs next-token",
        [
            Section(
                "Generation quality and speed",
                tables=[("class-conditioned, cfg 2", rows)],
                images=[("training loss", "media/loss.png")] if logged else [],
                audio=audio,
            )
        ],
    )
    return summary
