"""Write the listening examples of the docs (docs/audio/*.ogg) from the bundled models.

    python scripts/docs-audio.py [--data data/music24k.jsonl]

Reconstructions of held-out clips 0 and 5 (the clips of docs/codec.md, "Listen") by the bundled codecs, and
10-s class-conditioned clips from cam and aar (seed 0), at 1 thread. Ogg Vorbis keeps the repository small.
"""

import argparse
from pathlib import Path

import soundfile as sf
import torch

import arwave
from arwave.bench.codec_quality import held_out_clips

OUT = Path("docs/audio")


def write(name: str, audio: torch.Tensor, rate: int) -> None:
    path = OUT / f"{name}.ogg"
    sf.write(path, audio.clamp(-1, 1).T.numpy(), rate, format="OGG", subtype="VORBIS")
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="data/music24k.jsonl")
    p.add_argument("--codecs", default="codec-latent,codec-sat,codec-rvq", help="comma list of codecs to write")
    args = p.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        for codec_name in args.codecs.split(","):
            codec = arwave.load(codec_name)
            clips = held_out_clips(args.data, codec.sample_rate, codec.channels)
            for i in (0, 5):
                recon = codec.reconstruct(clips[i][None])[0][..., : clips[i].shape[-1]]
                write(f"heldout{i}-{codec_name}", recon, codec.sample_rate)
        examples = (("cam", ("piano", "trumpet", "violin", "church_organ")), ("aar", ("piano", "flute")))
        for model_name, classes in examples:
            model = arwave.load(model_name)
            for label in classes:
                audio = model.generate(seconds=10, seed=0, class_label=label)[0]
                write(f"generated-{model_name}-{label}", audio, model.sample_rate)


if __name__ == "__main__":
    main()
