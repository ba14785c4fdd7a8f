"""Audio files, manifests, crop datasets and the built-in rendered corpus (see docs/data.md)."""

from arwave.data.audio import AudioError, audio_info, check_audio, load_audio, write_audio
from arwave.data.corpus import build_corpus, ensure_corpus, render_corpus
from arwave.data.dataset import AudioCropDataset, dataset_for_split, datasets_from_config
from arwave.data.manifest import PrepareReport, assign_splits, prepare_folder, read_manifest, write_manifest

__all__ = [
    "AudioError",
    "audio_info",
    "check_audio",
    "load_audio",
    "write_audio",
    "build_corpus",
    "ensure_corpus",
    "render_corpus",
    "AudioCropDataset",
    "dataset_for_split",
    "datasets_from_config",
    "PrepareReport",
    "assign_splits",
    "prepare_folder",
    "read_manifest",
    "write_manifest",
]
