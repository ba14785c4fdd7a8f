"""Fréchet Audio Distance: the Fréchet distance between Gaussian fits of embeddings of two sets of audio.

    FAD = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2))

mu, S: mean and (unbiased) covariance of the frame embeddings of all clips of a set, pooled (as in
VGGish-FAD). The embedder is part of the definition: every FAD is reported with its embedder's name.

Matrix square root, done stably: S_1 S_2 is not symmetric, but it is similar to the symmetric PSD
matrix M = S_1^(1/2) S_2 S_1^(1/2), so tr((S_1 S_2)^(1/2)) = sum_i sqrt(lambda_i(M)). We take S_1^(1/2)
from an eigendecomposition of S_1 and the eigenvalues of M with `eigh`, in float64, clamping the tiny
negative eigenvalues that rounding produces to 0. No complex parts, no eps*I offset, and it works for
singular covariances (fewer frames than dimensions).

FAD is biased upwards for small sets (it depends on the number of frames): compare models with the
same number of clips and seconds.

Reference statistics of a dataset are cached per (embedder, dataset) in
`$ARWAVE_CACHE/fad_stats/<embedder cache key>-<dataset hash>.safetensors` (mu, sigma, n, and the
clip posteriors when the embedder has a classification head).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from arwave.errors import ArwaveError
from arwave.evaluation.embedders import Embedder, as_clips
from arwave.evaluation.embedders.by_name import get_embedder
from arwave.paths import cache_root

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")


class FADError(ArwaveError):
    pass


# ---------------------------------------------------------------------------------------------------
# Gaussian statistics and the Fréchet distance


@dataclass
class GaussianStats:
    mu: torch.Tensor  # (D,) float64
    sigma: torch.Tensor  # (D, D) float64, unbiased covariance
    n: int  # number of embeddings it was fitted to

    @classmethod
    def from_embeddings(cls, x: torch.Tensor) -> GaussianStats:
        acc = StatsAccumulator(x.shape[1])
        acc.add(x)
        return acc.stats()


class StatsAccumulator:
    """Running sums (n, sum x, sum x x^T) in float64, so that embeddings need not be kept in memory.
    Uses centred increments per batch (Chan et al.) to avoid cancellation in sum x x^T - n mu mu^T."""

    def __init__(self, dim: int):
        self.n = 0
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.m2 = torch.zeros(dim, dim, dtype=torch.float64)  # sum of (x - mean)(x - mean)^T

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().to(torch.float64).cpu()
        if x.numel() == 0:
            return
        nb = x.shape[0]
        mb = x.mean(0)
        xc = x - mb
        delta = mb - self.mean
        n = self.n + nb
        self.m2 += xc.T @ xc + torch.outer(delta, delta) * (self.n * nb / n)
        self.mean += delta * (nb / n)
        self.n = n

    def stats(self) -> GaussianStats:
        if self.n < 2:
            raise FADError(f"FAD needs at least 2 embeddings, got {self.n} (use more or longer clips)")
        return GaussianStats(self.mean.clone(), self.m2 / (self.n - 1), self.n)


def sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric PSD matrix via eigh (negative rounding eigenvalues clamped to 0)."""
    s = (s + s.T) / 2
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def trace_sqrt_product(s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """tr((S_1 S_2)^(1/2)) = sum sqrt(eig(S_1^(1/2) S_2 S_1^(1/2)))."""
    r = sqrtm_psd(s1.to(torch.float64))
    m = r @ s2.to(torch.float64) @ r
    return torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    mu1, mu2 = torch.as_tensor(mu1, dtype=torch.float64), torch.as_tensor(mu2, dtype=torch.float64)
    sigma1, sigma2 = torch.as_tensor(sigma1, dtype=torch.float64), torch.as_tensor(sigma2, dtype=torch.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise FADError(
            f"FAD of embeddings of different sizes ({tuple(mu1.shape)} vs {tuple(mu2.shape)}): "
            "were they made by the same embedder?"
        )
    d = ((mu1 - mu2) ** 2).sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt_product(sigma1, sigma2)
    return float(d.clamp_min(0))


def fad_from_stats(a: GaussianStats, b: GaussianStats) -> float:
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def fad_from_embeddings(x: torch.Tensor, y: torch.Tensor) -> float:
    """FAD between two (n, D) embedding sets."""
    return fad_from_stats(GaussianStats.from_embeddings(x), GaussianStats.from_embeddings(y))


# ---------------------------------------------------------------------------------------------------
# audio sources: tensors, lists of clips, folders, manifests, datasets


def list_audio_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
    )
    if not files:
        raise FADError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
    return files


@dataclass
class AudioSource:
    """Clips to embed, in a fixed order, yielded in batches of (list of (C, N) tensors, sample rate)."""

    batches: Callable[[], Iterator[tuple[list[torch.Tensor], int]]]
    num_clips: int
    key: str | None  # content hash for the stats cache (None = do not cache)
    description: str


def _hash(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def audio_source(src, sample_rate: int | None = None, split: str = "test", batch_clips: int = 16) -> AudioSource:
    """Wrap any of: a (B, C, N) tensor or list of (C, N) tensors (needs `sample_rate`), a folder of audio
    files (sorted by path), a manifest.jsonl (the whole files of its `split`), one audio file, or a
    Dataset whose items are {"audio": (C, N)} and that has a `sample_rate` attribute."""
    if torch.is_tensor(src) or isinstance(src, (list, tuple)):
        clips = as_clips(src)
        if sample_rate is None:
            raise FADError("audio given as tensors needs its sample_rate")
        key = _hash(
            "tensors",
            sample_rate,
            *[hashlib.sha256(c.detach().cpu().contiguous().numpy().tobytes()).hexdigest() for c in clips],
        )

        def batches():
            for i in range(0, len(clips), batch_clips):
                yield clips[i : i + batch_clips], int(sample_rate)

        return AudioSource(batches, len(clips), key, f"{len(clips)} clips")
    if isinstance(src, (str, Path)):
        path = Path(src)
        if path.is_dir():
            return _folder_source(path, batch_clips)
        if path.is_file() and path.suffix == ".jsonl":
            return _manifest_source(path, split, batch_clips)
        if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
            return _files_source([path], path.parent, batch_clips)
        raise FADError(f"{path}: not a folder of audio, a manifest.jsonl or an audio file")
    if hasattr(src, "__getitem__") and hasattr(src, "__len__"):
        return _dataset_source(src, batch_clips)
    raise FADError(f"cannot read audio from {type(src).__name__}")


def _files_source(files: list[Path], root: Path | None, batch_clips: int) -> AudioSource:
    import soundfile

    from arwave.data.audio import load_audio

    name = (lambda f: str(f.relative_to(root))) if root else (lambda f: str(f.resolve()))
    stats = [(name(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    key = _hash("files", *stats)

    def batches():
        for i in range(0, len(files), batch_clips):
            # each file at its own rate; clips of one batch may have different rates: group by rate
            by_rate: dict[int, list] = {}
            for f in files[i : i + batch_clips]:
                rate = int(soundfile.info(str(f)).samplerate)
                by_rate.setdefault(rate, []).append(load_audio(f, sample_rate=rate))
            for rate, waves in by_rate.items():
                yield waves, rate

    return AudioSource(batches, len(files), key, f"{root or 'files'} ({len(files)} files)")


def _folder_source(folder: Path, batch_clips: int) -> AudioSource:
    return _files_source(list_audio_files(folder), folder, batch_clips)


def _manifest_source(manifest: Path, split: str, batch_clips: int) -> AudioSource:
    """The whole files of one split of a manifest, each at its own rate."""
    from arwave.data.dataset import AudioCropDataset

    ds = AudioCropDataset(manifest, split, 48000, 1, 1, random_crop=False)
    if len(ds) == 0:
        raise FADError(f"{manifest}: no files in split {split!r}")
    src = _files_source([Path(p) for p in ds.file_paths], None, batch_clips)
    src.description = f"{manifest} [{split}] ({len(ds)} files)"
    return src


def _dataset_source(ds, batch_clips: int) -> AudioSource:
    """Items ds[(i, 0)]["audio"] (fixed crops), at ds.sample_rate."""
    rate = getattr(ds, "sample_rate", None)
    if rate is None:
        raise FADError(f"{type(ds).__name__}: a dataset used for FAD needs a sample_rate attribute")
    key = None
    source = getattr(ds, "source", None)  # AudioCropDataset: the manifest and how it is cropped
    if isinstance(source, str) and Path(source).is_file():
        key = _hash(
            "dataset",
            Path(source).read_bytes(),
            ds.split,
            ds.sample_rate,
            ds.channels,
            ds.segment_samples,
            ds.crop_mode,
        )

    def batches():
        for i in range(0, len(ds), batch_clips):
            yield [ds[(j, 0)]["audio"] for j in range(i, min(i + batch_clips, len(ds)))], int(rate)

    return AudioSource(batches, len(ds), key, f"{type(ds).__name__} ({len(ds)} clips)")


# ---------------------------------------------------------------------------------------------------
# embedding a source: Gaussian stats + clip posteriors


@dataclass
class Summary:
    stats: GaussianStats
    posteriors: torch.Tensor | None  # (num_clips, K) or None when the embedder has no head
    num_clips: int
    embedder: str


def summarize(
    embedder: Embedder | str,
    src,
    sample_rate: int | None = None,
    progress: bool = True,
    desc: str = "embedding",
    **source_kw,
) -> Summary:
    """Embed every clip of `src` (see `audio_source`) and fit the Gaussian (with a tqdm bar)."""
    from tqdm.auto import tqdm

    emb = get_embedder(embedder)
    source = src if isinstance(src, AudioSource) else audio_source(src, sample_rate, **source_kw)
    acc = StatsAccumulator(emb.dim)
    posts = []
    with tqdm(
        total=source.num_clips, desc=f"{desc} [{emb.name}]", unit="clip", disable=not progress, leave=False
    ) as bar:
        for clips, rate in source.batches():
            feats = emb.features(clips, rate)
            acc.add(feats.frames)
            if feats.posteriors is not None:
                posts.append(feats.posteriors)
            bar.update(len(clips))
    return Summary(acc.stats(), torch.cat(posts) if posts else None, source.num_clips, emb.name)


def stats_cache_path(embedder: Embedder, key: str) -> Path:
    return cache_root() / "fad_stats" / f"{embedder.cache_key}-{key}.safetensors"


def reference_summary(
    embedder: Embedder | str,
    src,
    sample_rate: int | None = None,
    cache: bool = True,
    progress: bool = True,
    **source_kw,
) -> Summary:
    """`summarize` for a reference set, read from / written to the stats cache when the source has a key."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from arwave.checkpoint import save_tensors

    emb = get_embedder(embedder)
    source = src if isinstance(src, AudioSource) else audio_source(src, sample_rate, **source_kw)
    path = stats_cache_path(emb, source.key) if (cache and source.key) else None
    if path is not None and path.is_file():
        t = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return Summary(
            GaussianStats(t["mu"], t["sigma"], int(t["n"])),
            t.get("posteriors"),
            int(meta.get("num_clips", 0)),
            emb.name,
        )
    summary = summarize(emb, source, progress=progress, desc="reference")
    if path is not None:
        tensors = {"mu": summary.stats.mu, "sigma": summary.stats.sigma, "n": torch.tensor(summary.stats.n)}
        if summary.posteriors is not None:
            tensors["posteriors"] = summary.posteriors
        save_tensors(
            path,
            tensors,
            metadata={"embedder": emb.name, "source": source.description, "num_clips": str(summary.num_clips)},
        )
    return summary


def reference_stats(
    embedder: Embedder | str,
    src,
    sample_rate: int | None = None,
    cache: bool = True,
    progress: bool = True,
    **source_kw,
) -> GaussianStats:
    return reference_summary(embedder, src, sample_rate, cache, progress, **source_kw).stats


def fad(
    generated,
    reference,
    embedder: Embedder | str = "aisfx",
    sample_rate: int | None = None,
    reference_sample_rate: int | None = None,
    cache: bool = True,
    progress: bool = True,
) -> dict:
    """FAD between generated audio and a reference set (each: tensors / folder / manifest / dataset;
    `reference` may also be precomputed GaussianStats). Returns {"fad", "embedder", "num_frames", ...}."""
    emb = get_embedder(embedder)
    gen = summarize(emb, generated, sample_rate, progress=progress, desc="generated")
    ref = (
        reference
        if isinstance(reference, GaussianStats)
        else reference_stats(emb, reference, reference_sample_rate or sample_rate, cache=cache, progress=progress)
    )
    return {
        "fad": fad_from_stats(gen.stats, ref),
        "embedder": emb.name,
        "num_frames": gen.stats.n,
        "num_reference_frames": ref.n,
    }
