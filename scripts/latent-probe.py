"""Do a codec's latents carry the instrument? A linear probe on 1-s windows of codec latents.

    python scripts/latent-probe.py [--codec codec-latent] [--data data/corpus-fluid-big/manifest.jsonl]

Encodes `--files` train and test recordings per class, summarises each 1-s window of latent frames by
the mean and standard deviation of every latent dimension, fits a multinomial logistic regression on
the train windows (standardised features, small L2) and prints its accuracy on the test windows per
class. High accuracy with poor recognition of the codec's reconstructions (`arwave bench codec-quality
--labelled`) means the decoder, not the latent, loses the class (docs/benchmarks.md).
"""

import argparse
import json

import numpy as np
import soundfile as sf
import soxr
import torch

import arwave


def window_features(codec, path: str) -> torch.Tensor:
    """(windows, 2·D): mean and std over each second of latent frames of the file's mono mix."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = soxr.resample(audio.mean(1), rate, codec.sample_rate).astype(np.float32)
    with torch.no_grad():
        z = codec.encode_latents(torch.from_numpy(mono)[None, None].expand(-1, codec.channels, -1).contiguous())[0]
    per = max(1, round(codec.sample_rate / codec.hop))
    frames = z.shape[-1] // per * per
    w = z[:, :frames].reshape(z.shape[0], -1, per)
    return torch.cat([w.mean(-1), w.std(-1)], 0).T


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", default="codec-latent")
    p.add_argument("--data", default="data/corpus-fluid-big/manifest.jsonl")
    p.add_argument("--classes", default="church_organ,trumpet,violin,clarinet")
    p.add_argument("--files", type=int, default=25, help="train files per class (test: half as many)")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    codec = arwave.load(args.codec)
    rows = [json.loads(line) for line in open(args.data)]
    classes = args.classes.split(",")

    def split(label, name, n):
        paths = [r["path"] for r in rows if r.get("label") == label and r["split"] == name][:n]
        return torch.cat([window_features(codec, q) for q in paths])

    train = [split(c, "train", args.files) for c in classes]
    test = [split(c, "test", max(1, args.files // 2)) for c in classes]
    x = torch.cat(train)
    y = torch.cat([torch.full((len(t),), i) for i, t in enumerate(train)])
    mean, std = x.mean(0), x.std(0) + 1e-6
    w = torch.zeros(x.shape[1], len(classes), requires_grad=True)
    b = torch.zeros(len(classes), requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=1e-2)
    for _ in range(500):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy((x - mean) / std @ w + b, y) + 1e-3 * w.square().sum()
        loss.backward()
        opt.step()
    for i, c in enumerate(classes):
        hits = (((test[i] - mean) / std @ w + b).argmax(-1) == i).float()
        print(f"{c}: {len(hits)} test windows, linear probe accuracy {float(hits.mean()):.3f}")


if __name__ == "__main__":
    main()
