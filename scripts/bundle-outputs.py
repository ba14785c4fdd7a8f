"""Fingerprint what the bundled models output, to prove a refactor changed no model output (issue 14).

    python scripts/bundle-outputs.py save before.npz     # on the old code
    python scripts/bundle-outputs.py compare before.npz  # on the new code: exit 1 when any output moved

Each bundled codec reconstructs the same 2-s test signal (a chord plus noise, seed 0), each bundled
generator makes 2 s of piano with seed 0 at 1 thread, and the classifier scores the test signal.
Bundles that are not installed are skipped (and named).
"""

import sys

import numpy as np
import torch

import arwave
from arwave.pretrained import KNOWN

TOLERANCE = 1e-5  # max |a − b|: a reordered float sum may move the last bits, nothing more


def test_signal(sample_rate: int, channels: int, seconds: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    chord = sum(0.2 * torch.sin(2 * torch.pi * f * t) for f in (220.0, 277.2, 329.6))
    x = chord + 0.01 * torch.randn(t.shape, generator=g)
    return x.expand(1, channels, -1).contiguous()


def outputs() -> dict[str, np.ndarray]:
    torch.set_num_threads(1)
    out = {}
    for name in KNOWN:
        try:
            model = arwave.load(name)
        except Exception as e:  # noqa: BLE001 - a bundle missing from this install is reported, not fatal
            print(f"skip {name}: {e}")
            continue
        with torch.no_grad():
            if name.startswith("codec"):
                x = test_signal(model.sample_rate, model.channels)
                out[name] = model.reconstruct(x).numpy()
            elif name == "instrument-classifier":
                cfg = model.config.data
                out[name] = model(test_signal(cfg.sample_rate, cfg.channels)).numpy()
            else:
                out[name] = model.generate(seconds=2, seed=0, class_label="piano").numpy()
        print(f"{name}: {out[name].shape}")
    return out


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("save", "compare"):
        print(__doc__)
        return 2
    mode, path = sys.argv[1:]
    now = outputs()
    if mode == "save":
        np.savez(path, **now)
        print(f"saved {len(now)} outputs to {path}")
        return 0
    before = dict(np.load(path))
    moved = 0
    for name in sorted(set(before) | set(now)):
        if name not in now or name not in before:
            print(f"{name}: only in {'before' if name in before else 'now'}")
            moved += 1
            continue
        a, b = before[name], now[name]
        diff = float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
        ok = diff <= TOLERANCE
        moved += not ok
        print(f"{name}: max |diff| {diff:.3g} {'ok' if ok else 'MOVED'}")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
