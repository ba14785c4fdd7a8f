"""What a faster precision costs in output: the same model, seeds and noise in float32 and in `precision`.

Why: a speed-up is only worth having if the output stays what float32 would give. Measured with random
weights (what the weights learned does not change how much rounding the matmuls add; run it on a
trained run for its own figure), each figure next to a yardstick that says what "large" means:

CAM (rf head):
- frame_rel_mse: one head sample with the SAME context (teacher-forced on the float32 rollout) and
  the same noise, ||x_q − x_32||² / ||x_32||²: the error one step adds;
- rollout_rel_mse: the whole rollout from the same seed (errors compound through the context);
- seed_rel_mse: the yardstick, float32 rollouts of two different seeds (what "unrelated" looks like);
- mel: MEL distance of the decoded rollouts (float32 codec), vs `mel_seed` between two seeds.
AAR / next-token:
- kl: mean KL(p_32 || p_q) of the next-token distributions, teacher-forced on a float32 sample;
- top1: fraction of positions whose most likely token is the same;
- logit_rel_err: ||l_q − l_32|| / ||l_32|| (centred logits), scale-free;
- latent_rel_mse / mel (AAR): of the decoded rollouts from the same seed, vs two float32 seeds.

    python -m arwave.bench.precision_quality cam aar nexttoken --precision int8 [--json]
"""

from __future__ import annotations

import argparse
import json

import torch


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean() / (a**2).mean().clamp_min(1e-12))


def cam_quality(
    preset: str = "small",
    codec: str = "cpu",
    precision: str = "int8",
    frames: int = 24,
    seeds=(0, 1, 2),
    model_pair=None,
) -> dict:
    """See the module docstring. `model_pair` (float32 CAM, CAM in `precision`) replaces the random preset."""
    from arwave.evaluation.recon import mel_distance
    from arwave.models.generator import make_generator

    if model_pair is None:
        from arwave.bench.cam import build_random

        ref, cdc = build_random(preset, "rf", codec=codec)
        test, _ = build_random(preset, "rf", codec=codec)
        test.set_precision(precision)
    else:
        ref, test = model_pair
        cdc = ref._attached["codec"]  # None: a model without a codec (no audio metrics)
    out = {"frame_rel_mse": [], "rollout_rel_mse": [], "seed_rel_mse": [], "mel": [], "mel_seed": []}
    with torch.inference_mode():
        rollouts = {s: ref.sample_latents(frames, seed=s) for s in seeds}
        for s in seeds:
            a, b = rollouts[s], test.sample_latents(frames, seed=s)
            out["rollout_rel_mse"].append(_rel(a, b))
            other = rollouts[seeds[(seeds.index(s) + 1) % len(seeds)]]
            out["seed_rel_mse"].append(_rel(a, other))
            x = (a / ref.latent_scale).transpose(1, 2)  # (1, T, D) model space
            za, zb = ref.states(x), test.states(x)
            g = [make_generator(s) for _ in range(2)]
            fa = ref.head.sample(za[0], g[0])
            fb = test.head.sample(zb[0], g[1])
            out["frame_rel_mse"].append(_rel(fa, fb))
            if cdc is not None:
                wa, wb, wo = (cdc.decode_latents(v) for v in (a, b, other))
                out["mel"].append(mel_distance(wa, wb, cdc.sample_rate))
                out["mel_seed"].append(mel_distance(wa, wo, cdc.sample_rate))
    return {
        "model": "cam",
        "preset": preset,
        "codec": codec,
        "precision": precision,
        "frames": frames,
        **{k: round(sum(v) / len(v), 6) for k, v in out.items() if v},
    }


def _token_stats(logits_a: torch.Tensor, logits_b: torch.Tensor) -> tuple[float, float]:
    la, lb = logits_a.float().log_softmax(-1), logits_b.float().log_softmax(-1)
    kl = float((la.exp() * (la - lb)).sum(-1).mean())
    top1 = float((la.argmax(-1) == lb.argmax(-1)).float().mean())
    return kl, top1


def _logit_rel_err(logits_a: torch.Tensor, logits_b: torch.Tensor) -> float:
    """||l_q − l_32|| / ||l_32 − mean(l_32)|| per position: scale-free (random-weight logits are nearly
    flat, so their KL is small whatever the error)."""
    a, b = logits_a.float(), logits_b.float()
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return float(((a - b).norm(dim=-1) / a.norm(dim=-1).clamp_min(1e-12)).mean())


def aar_quality(
    preset: str = "small", codec: str = "cpu", precision: str = "int8", seconds: float = 2.0, seeds=(0, 1)
) -> dict:
    from arwave.bench.nextscale import build_pair
    from arwave.evaluation.recon import mel_distance

    ref, _ = build_pair(preset, codec=codec)
    test, _ = build_pair(preset, codec=codec, precision=precision)
    frames = int(seconds * ref.codec.frame_rate)
    out = {
        "kl": [],
        "top1": [],
        "logit_rel_err": [],
        "latent_rel_mse": [],
        "latent_seed_rel_mse": [],
        "mel": [],
        "mel_seed": [],
    }
    labels = torch.zeros(1, dtype=torch.long)
    with torch.inference_mode():
        audio = {s: ref.generate(seconds, 1, seed=s, class_label=0) for s in seeds}
        for i, s in enumerate(seeds):
            wa = ref.sample_tokens(1, frames, seed=s, class_label=0)
            wb = test.sample_tokens(1, frames, seed=s, class_label=0)
            wo = ref.sample_tokens(1, frames, seed=seeds[(i + 1) % len(seeds)], class_label=0)
            za, zb, zo = (torch.cat([w.latent for w in ws], -1) for ws in (wa, wb, wo))
            out["latent_rel_mse"].append(_rel(za, zb))
            out["latent_seed_rel_mse"].append(_rel(za, zo))
            la, lb = ref(wa[0].codes, labels), test(wa[0].codes, labels)
            kl, top1 = _token_stats(la, lb)
            out["logit_rel_err"].append(_logit_rel_err(la, lb))
            out["kl"].append(kl)
            out["top1"].append(top1)
            b = test.generate(seconds, 1, seed=s, class_label=0)
            out["mel"].append(mel_distance(audio[s], b, ref.sample_rate))
            out["mel_seed"].append(mel_distance(audio[s], audio[seeds[(i + 1) % len(seeds)]], ref.sample_rate))
    return {
        "model": "aar",
        "preset": preset,
        "codec": codec,
        "precision": precision,
        "seconds": seconds,
        **{k: round(sum(v) / len(v), 6) for k, v in out.items()},
    }


def nexttoken_quality(
    preset: str = "small", codec: str = "cpu", precision: str = "int8", frames: int = 8, seeds=(0, 1)
) -> dict:
    from arwave.bench.nextscale import build_pair

    _, ref = build_pair(preset, codec=codec)
    _, test = build_pair(preset, codec=codec, precision=precision)
    out = {"kl": [], "top1": [], "logit_rel_err": []}
    labels = torch.zeros(1, dtype=torch.long)
    with torch.inference_mode():
        for s in seeds:
            codes = ref.sample_tokens(1, frames, seed=s, class_label=0)
            la, lb = ref(codes, labels), test(codes, labels)
            kl, top1 = _token_stats(la, lb)
            out["logit_rel_err"].append(_logit_rel_err(la, lb))
            out["kl"].append(kl)
            out["top1"].append(top1)
    return {
        "model": "nexttoken",
        "preset": preset,
        "codec": codec,
        "precision": precision,
        "frames": frames,
        **{k: round(sum(v) / len(v), 6) for k, v in out.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", choices=("cam", "aar", "nexttoken"))
    p.add_argument("--preset", default="small")
    p.add_argument("--codec", default="cpu")
    p.add_argument("--precision", default="int8")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    fns = {"cam": cam_quality, "aar": aar_quality, "nexttoken": nexttoken_quality}
    rows = []
    for m in args.models:
        row = fns[m](args.preset, args.codec, args.precision)
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if args.json:
        print(json.dumps({"bench": "precision_quality", "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
