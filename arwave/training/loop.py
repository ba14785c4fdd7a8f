"""The one training loop every arwave model goes through (codec, CAM family, AAR, next-token, classifier).

A model kind supplies a `Task` (model, optional critic, datasets, loss); this loop does the rest:
seeding, devices, torchrun + DistributedDataParallel, AdamW with warm-up + cosine LR, gradient
accumulation, gradient clipping, optional EMA weights, an optional adversary step, periodic
validation, a progress bar and progress lines (loss, steps/s, ETA), metrics CSV + PNG + TensorBoard,
audio samples, atomic checkpoints every N steps, `resume` that continues exactly (same step,
optimiser state, same data position; random draws are seeded from (seed, step, rank)), and
`init_from` (a fine-tune: the weights of another run or a bundled model at step 0).

Gradient accumulation (`train.accumulate` = A): one optimiser step sums the gradients of A
micro-batches of `data.batch_size`, each loss divided by A, so for losses that are a mean over the
batch it equals one step on the A-times-larger batch (same data: see the sampler); DDP synchronises
the gradients on the last micro-batch only. Layers that mix a batch's items (BatchNorm) see
micro-batches, so for them the equality holds only approximately.
"""

from __future__ import annotations

import copy
import math
import signal
import statistics
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from arwave import checkpoint as ckpt
from arwave import console
from arwave.config import RunConfig, run_config_to_json
from arwave.errors import ArwaveError, Terminated
from arwave.paths import atomic_write_text, check_output_folder
from arwave.registry import check_run_config, get_kind
from arwave.training import distributed, finetune
from arwave.training.logger import MetricsLog, plot_metrics
from arwave.training.sampler import ResumableBatchSampler
from arwave.training.task import Task


def lr_factor(step: int, warmup: int, total: int, min_ratio: float, time_fraction: float = 0.0) -> float:
    """Linear warm-up to 1, then cosine from 1 down to `min_ratio` at `total` steps — or, under a
    wall-clock budget, at the end of the budget (`time_fraction` = elapsed / budget), whichever is first."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_fraction))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of the weights: θ_ema ← d·θ_ema + (1 − d)·θ (buffers copied).

    Warm-up: update n (0-based) uses d_n = min(decay, (1 + n) / (10 + n)) (as timm's ModelEmaV2 with
    warm-up, and TF's num_updates), so the average forgets the random initialisation within the first
    few hundred steps; with a constant 0.999, 300 updates leave 0.999^300 ≈ 74 % of the initial
    weights in the average."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    def decay_at(self, n: int) -> float:
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        """`step`: optimiser steps done before this update (the loop passes it, so a resumed run
        continues the warm-up where it stopped); default: updates seen by this object."""
        n = self.updates if step is None else step
        self.updates = n + 1
        d = self.decay_at(n)
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


def _to_device(batch, device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _logs_to_floats(loss: torch.Tensor, logs: dict) -> dict[str, float]:
    out = {"loss": float(loss.detach())}
    out.update({k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in logs.items()})
    return out


def _optimizer(params, lr, betas, weight_decay):
    params = [p for p in params if p.requires_grad]
    if not params:
        return None
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def _clip(module: nn.Module, max_norm: float) -> float:
    """Clip the gradients to `max_norm` (0 = no clipping); returns their total norm before clipping."""
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return 0.0
    if max_norm <= 0:
        return float(torch.nn.utils.get_total_norm([p.grad for p in params]))
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))


class DivergenceWatch:
    """Stops a run that blew up before it writes a checkpoint from blown-up weights: a loss that is not
    finite, or over `factor` × the median of the last `window` losses (in absolute value, at least 1, so
    losses near zero do not trip it). Non-finite gradients are checked by the loop."""

    def __init__(self, factor: float = 1e3, window: int = 50):
        self.factor = factor
        self.recent: deque[float] = deque(maxlen=window)

    def check(self, loss: float) -> str | None:
        """None if `loss` is sane (and remembered), else why not."""
        if not math.isfinite(loss):
            return f"the loss became {loss}"
        if self.recent:
            median = statistics.median(self.recent)
            if abs(loss) > self.factor * max(abs(median), 1.0):
                return f"the loss {loss:.4g} is over {self.factor:g}× its running median {median:.4g}"
        self.recent.append(loss)
        return None


@contextmanager
def _sigterm_as_interrupt():
    """While training, SIGTERM raises `Terminated` (a KeyboardInterrupt) so it saves like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(
    cfg: RunConfig, run_dir: str | Path, resume: bool = False, progress: bool = True, task: Task | None = None
) -> Path:
    """Train `cfg` into `run_dir`; with `resume`, continue from its latest checkpoint.

    Run under `torchrun --nproc_per_node=N` for data parallel training; `data.batch_size` is per process.
    SIGTERM and Ctrl-C save a checkpoint, then raise KeyboardInterrupt (`Terminated` for SIGTERM).
    """
    with _sigterm_as_interrupt():
        return _train(cfg, run_dir, resume, progress, task)


def _train(cfg: RunConfig, run_dir: str | Path, resume: bool, progress: bool, task: Task | None) -> Path:
    with console.quiet(not progress):
        return _run(cfg, run_dir, resume, progress, task)


def _run(cfg: RunConfig, run_dir: str | Path, resume: bool, progress: bool, task: Task | None) -> Path:
    run_dir = check_output_folder(run_dir)
    check_run_config(cfg)
    tc = cfg.train
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    dist_info = distributed.setup(tc.device)
    device = dist_info.device
    main = dist_info.is_main

    start = ckpt.latest_checkpoint(run_dir) if resume else None
    if resume and start is None:
        raise ArwaveError(f"{run_dir}: --resume given but the run has no checkpoint yet")
    if not resume and ckpt.latest_checkpoint(run_dir) is not None:
        raise ArwaveError(
            f"{run_dir}: already holds a trained run; pass --resume to continue it or choose another --out"
        )
    fine_tune = bool(cfg.init_from) and start is None
    if fine_tune:  # before anything is written or encoded: a source that does not fit fails now
        finetune.check_source(cfg)
        finetune.check_labels(cfg)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in ckpt.remove_stale_temp(run_dir):
            tqdm.write(f"removed {stale.name}, left by an interrupted save")
    distributed.barrier()

    torch.manual_seed(tc.seed + dist_info.rank)
    if task is None:
        task = get_kind(cfg.kind).build_task(cfg, run_dir)
    cfg = task.config or cfg  # what the task resolved (codec facts, classes); `cfg` itself is never changed
    if fine_tune:
        finetune.init_weights(cfg, task.model, task.critic)
    distributed.barrier()

    model = task.model.to(device)
    held = finetune.freeze(model, tc.freeze)  # before the optimiser and DDP see the parameters
    critic = task.critic.to(device) if task.critic is not None else None
    optimizer = _optimizer(model.parameters(), tc.lr, tc.betas, tc.weight_decay)
    if optimizer is None:
        raise ArwaveError(f"{cfg.kind}: the model has no trainable parameters")
    critic_opt = _optimizer(critic.parameters(), tc.critic_lr, tc.critic_betas, 0.0) if critic is not None else None
    ema = EMA(model, tc.ema_decay) if tc.ema_decay > 0 else None

    step = 0
    if start is not None:
        step = _restore(start, model, critic, optimizer, critic_opt, ema, device)
        if step > tc.max_steps:
            raise ArwaveError(
                f"{run_dir}: its checkpoint is at step {step}; train.max_steps={tc.max_steps} would "
                "train nothing (give a larger --max-steps)"
            )
    # written only now: after the task resolved the config (label names, codec facts) and, on resume, after the
    # checkpoint loaded, so a failed start never leaves a config.json that no longer matches the weights
    if main:
        atomic_write_text(run_dir / "config.json", run_config_to_json(cfg))

    def set_lr(at_step: int) -> float:
        elapsed = (time.time() - t_start) / (tc.minutes * 60) if tc.minutes > 0 else 0.0
        factor = lr_factor(at_step, tc.warmup_steps, tc.max_steps, tc.lr_min_ratio, elapsed)
        for group in optimizer.param_groups:
            group["lr"] = tc.lr * factor
        for group in critic_opt.param_groups if critic_opt is not None else []:
            group["lr"] = tc.critic_lr * factor
        return tc.lr * factor

    t_start = time.time()
    ddp_model, ddp_critic = model, critic
    if dist_info.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        unused = getattr(task, "find_unused_parameters", False)
        ddp_model = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)
        if critic is not None:
            ddp_critic = DistributedDataParallel(critic, device_ids=ids)

    if tc.compile:
        ddp_model = torch.compile(ddp_model)

    sampler = ResumableBatchSampler(
        len(task.train_set),
        cfg.data.batch_size,
        tc.seed,
        dist_info.rank,
        dist_info.world,
        start_step=step,
        accumulate=tc.accumulate,
    )
    loader = DataLoader(
        task.train_set,
        batch_sampler=sampler,
        collate_fn=task.collate,
        num_workers=cfg.data.num_workers,
        persistent_workers=cfg.data.num_workers > 0,
    )
    log = (
        MetricsLog(
            run_dir,
            resume_step=step if start is not None else None,
            tensorboard=tc.tensorboard and _tensorboard_available(),
        )
        if main
        else None
    )
    # under a wall-clock budget the step count is open-ended: show steps and speed without a total. The bar
    # is for a terminal; progress lines (`Progress`) are what a log file gets
    bar = tqdm(
        total=tc.max_steps if tc.minutes <= 0 else None,
        initial=step,
        desc=f"train {cfg.kind}",
        unit="step",
        disable=not (progress and main and sys.stderr.isatty()),
        dynamic_ncols=True,
    )
    lines = Progress(tc, step, time.time()) if progress and main else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.mixed_precision and device.type == "cuda")

    def save(at_step: int) -> None:
        bad = ckpt.non_finite(model.state_dict()) + (ckpt.non_finite(ema.model.state_dict()) if ema else [])
        if bad:
            raise _diverged(cfg, run_dir, at_step, f"the weights became NaN or infinite ({bad[0]})")
        if main:
            _save(run_dir, at_step, model, critic, optimizer, critic_opt, ema, sampler, cfg, dist_info)
            task.on_checkpoint(ema.model if ema else model, run_dir, at_step)
            if tc.sample_every == 0:
                write_samples(task, ema.model if ema else model, run_dir, at_step, log.tb)
        distributed.barrier()

    t_log, step_log = time.time(), step
    watch = DivergenceWatch()
    pending = None  # a checkpoint due at this step, written once its weights gave a sane loss
    rng_devices = [device] if device.type == "cuda" else []
    acc = tc.accumulate
    batches = iter(loader)
    try:
        while step < tc.max_steps:
            # noise draws are a function of (seed, step, rank) alone, so a resumed run repeats them exactly
            torch.manual_seed(tc.seed * 1_000_003 + step * 1_009 + dist_info.rank)
            lr = set_lr(step)
            finetune.train_mode(model, held)
            optimizer.zero_grad(set_to_none=True)
            if critic_opt is not None:
                critic_opt.zero_grad(set_to_none=True)
            micro_values, critic_values = [], []
            for micro in range(acc):
                batch = _to_device(next(batches), device)
                sync = micro == acc - 1  # DDP all-reduces the summed gradients once, on the last one
                with _no_sync(ddp_model, sync):
                    with autocast:
                        loss, logs = task.loss(ddp_model, batch, step)
                    problem = watch.check(float(loss.detach()))
                    if distributed.broadcast_flag(problem is not None, device):
                        raise _diverged(cfg, run_dir, step, problem or "on another rank")
                    if pending == step and micro == 0:  # these weights just gave a sane loss: safe to keep
                        with torch.random.fork_rng(devices=rng_devices):
                            save(step)
                        pending = None
                    (loss / acc if acc > 1 else loss).backward()
                micro_values.append(_logs_to_floats(loss, logs))
                if critic is not None:  # the adversary sees the same micro-batch right after
                    with _no_sync(ddp_critic, sync):
                        with autocast:
                            out = task.critic_loss(ddp_critic, batch, step)
                        if out is not None:
                            closs, clogs = out
                            (closs / acc if acc > 1 else closs).backward()
                            critic_values.append(_logs_to_floats(closs, clogs))
            grad_norm = _clip(model, tc.grad_clip)
            if not math.isfinite(grad_norm):
                raise _diverged(cfg, run_dir, step, f"the gradient norm became {grad_norm}")
            optimizer.step()
            values = _mean(micro_values)
            if critic_values:
                _clip(critic, tc.grad_clip)
                critic_opt.step()
                values.update({f"critic_{k}": v for k, v in _mean(critic_values).items()})
            if ema is not None:
                ema.update(model, step)
            step += 1
            bar.update(1)
            if lines is not None:
                lines.add(values["loss"])
            if main and (step % tc.log_every == 0 or step == 1):
                now = time.time()
                speed = (step - step_log) / max(now - t_log, 1e-9)
                t_log, step_log = now, step
                values.update(lr=lr, grad_norm=grad_norm, steps_per_s=speed)
                log.log(step, "train", values)
                bar.set_postfix(loss=f"{values['loss']:.4g}", refresh=False)
            if lines is not None and lines.due(step):
                tqdm.write(lines.line(step, time.time(), t_start))
            if task.val_set is not None and tc.val_every > 0 and step % tc.val_every == 0 and main:
                val = validate(task, ema.model if ema else model, cfg, device)
                log.log(step, "val", val)
                if lines is not None:
                    tqdm.write(Progress.val_line(step, val))
            if main and tc.sample_every > 0 and step % tc.sample_every == 0:
                with torch.random.fork_rng(devices=rng_devices):
                    write_samples(task, ema.model if ema else model, run_dir, step, log.tb)
            if tc.ckpt_every > 0 and step % tc.ckpt_every == 0:
                pending = step
            out_of_time = tc.minutes > 0 and (time.time() - t_start) > tc.minutes * 60
            if distributed.broadcast_flag(out_of_time, device):
                break
    except KeyboardInterrupt as err:
        if main:
            what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
            tqdm.write(f"{what}: saving a checkpoint at step {step} (continue with --resume)")
        save(step)
        bar.close()
        distributed.cleanup()
        raise
    bar.close()
    if task.val_set is not None and main and tc.val_every > 0 and step % tc.val_every != 0:
        val = validate(task, ema.model if ema else model, cfg, device)
        log.log(step, "val", val)
        if lines is not None:
            tqdm.write(Progress.val_line(step, val))
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is None or latest.name != ckpt.checkpoint_dir(run_dir, step).name:
        save(step)
    if main:
        plot_metrics(run_dir / "metrics.csv", run_dir / "loss.png", title=f"{cfg.kind} ({cfg.preset})")
        log.close()
    distributed.cleanup()
    return run_dir


def _no_sync(module: nn.Module, sync: bool):
    """DDP's `no_sync()` (gradients stay local) while accumulating; a plain context otherwise."""
    if sync or not isinstance(module, DistributedDataParallel):
        return nullcontext()
    return module.no_sync()


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-name mean over the micro-batches of one step (a name some lack averages over those that have it)."""
    sums: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            sums.setdefault(k, []).append(v)
    return {k: sum(v) / len(v) for k, v in sums.items()}


class Progress:
    """The progress lines `arwave train` prints: every `train.print_every` steps (default: every
    `log_every`) the mean training loss since the last line, steps/s and the ETA. The ETA is known
    when a step budget is (max_steps) or a time budget (minutes), whichever ends first."""

    def __init__(self, tc, step: int, now: float):
        self.every = tc.print_every or tc.log_every
        self.max_steps, self.minutes = tc.max_steps, tc.minutes
        self.last_step, self.last_time = step, now
        self.losses: list[float] = []
        self.width = len(str(tc.max_steps)) if tc.minutes <= 0 else 0

    def add(self, loss: float) -> None:
        self.losses.append(loss)

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == 1 or step == self.max_steps

    def line(self, step: int, now: float, t_start: float) -> str:
        speed = (step - self.last_step) / max(now - self.last_time, 1e-9)
        loss = sum(self.losses) / max(len(self.losses), 1)
        self.last_step, self.last_time, self.losses = step, now, []
        eta = []
        if self.minutes <= 0 and speed > 0:
            eta.append((self.max_steps - step) / speed)
        if self.minutes > 0:
            eta.append(max(0.0, self.minutes * 60 - (now - t_start)))
        where = f"step {step:{self.width}d}/{self.max_steps}" if self.minutes <= 0 else f"step {step}"
        text = f"{where}  loss {loss:.4g}  {speed:.3g} steps/s"
        return text + (f"  ETA {format_seconds(min(eta))}" if eta else "")

    @staticmethod
    def val_line(step: int, values: dict[str, float]) -> str:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        return f"step {step}  val: {shown}"


def format_seconds(seconds: float) -> str:
    """7 -> "7s", 125 -> "2m05s", 3725 -> "1h02m"."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _tensorboard_available() -> bool:
    """TensorBoard event files need the `tensorboard` package (a dependency; warn once if it is gone)."""
    try:
        import tensorboard  # noqa: F401

        return True
    except ImportError:
        import warnings

        from arwave.errors import ArwaveWarning

        warnings.warn(
            "the tensorboard package is not installed: no TensorBoard event files (metrics.csv is "
            "written as always); `pip install tensorboard` or --set train.tensorboard=false",
            ArwaveWarning,
            stacklevel=3,
        )
        return False


@torch.no_grad()
def write_samples(task: Task, model: nn.Module, run_dir: Path, step: int, tb=None) -> list[Path]:
    """Ask the task for its samples (eval mode) and write them: RUN/samples/NAME-<step>.wav (a
    "reference" once, as reference.wav) and, with a TensorBoard log, the audio and its spectrogram."""
    from arwave.data.audio import write_audio

    was_training = model.training
    model.eval()
    try:
        clips = task.samples(model, step)
    finally:
        model.train(was_training)
    out, written = Path(run_dir) / "samples", []
    for name, (audio, sample_rate) in clips.items():
        audio = audio.detach().float().cpu().clamp(-1, 1)
        path = out / ("reference.wav" if name == "reference" else f"{name}-{step:08d}.wav")
        if name == "reference" and path.exists():
            continue
        write_audio(path, audio, sample_rate)
        written.append(path)
        if tb is not None:
            tb.audio(step, name, audio, sample_rate)
    return written


def _diverged(cfg: RunConfig, run_dir: Path, step: int, problem: str) -> ArwaveError:
    """The one line a diverged run stops with: what happened, and what is kept."""
    latest = ckpt.latest_checkpoint(run_dir)
    kept = (
        f"the last good checkpoint, {latest}, is kept: lower train.lr (or check the data) and continue with --resume"
        if latest
        else "no checkpoint was written: lower train.lr (or check the data) and start again"
    )
    return ArwaveError(f"{cfg.kind}: training diverged at step {step}: {problem}; {kept}")


@torch.no_grad()
def validate(task: Task, model: nn.Module, cfg: RunConfig, device: torch.device) -> dict[str, float]:
    """Mean of `task.val_metrics` over the first `val_batches` batches of the validation set (fixed crops)."""
    model.eval()
    n = min(len(task.val_set), cfg.train.val_batches * cfg.data.batch_size)
    totals: dict[str, float] = {}
    batches = 0
    for s in range(0, n, cfg.data.batch_size):
        items = [task.val_set[(i, 0)] for i in range(s, min(n, s + cfg.data.batch_size))]
        batch = task.collate(items) if task.collate else torch.utils.data.default_collate(items)
        for k, v in task.val_metrics(model, _to_device(batch, device)).items():
            totals[k] = totals.get(k, 0.0) + float(v)
        batches += 1
    model.train()
    return {k: v / max(batches, 1) for k, v in totals.items()}


def _save(run_dir, step, model, critic, optimizer, critic_opt, ema, sampler, cfg, dist_info) -> None:
    files = {"model": model.state_dict()}
    if ema is not None:
        files["ema"] = ema.model.state_dict()
    if critic is not None:
        files["critic"] = critic.state_dict()
    opt_tensors, opt_meta = ckpt.flatten_optimizer(optimizer.state_dict())
    optim = {f"opt.{k}": v for k, v in opt_tensors.items()}
    meta = {"optimizer": opt_meta}
    if critic_opt is not None:
        c_tensors, c_meta = ckpt.flatten_optimizer(critic_opt.state_dict())
        optim.update({f"critic_opt.{k}": v for k, v in c_tensors.items()})
        meta["critic_optimizer"] = c_meta
    files["optim"] = optim
    # the data position follows from the step (the DataLoader prefetches ahead of the loop)
    state = {
        "step": step,
        "kind": cfg.kind,
        "world_size": dist_info.world,
        "time": time.time(),
        "data": {"epoch": step // sampler.steps_per_epoch, "batch_in_epoch": step % sampler.steps_per_epoch},
        **meta,
    }
    ckpt.save_checkpoint(run_dir, step, files, state, keep=cfg.train.keep_checkpoints)


def _restore(path: Path, model, critic, optimizer, critic_opt, ema, device) -> int:
    """Load a checkpoint into the freshly built objects; anything that does not fit (other shapes, a
    broken state.json, missing optimiser state) is one CheckpointError naming the file."""
    state = ckpt.read_state(path)
    ckpt.load_weights(model, path / "model.safetensors", device)
    if critic is not None:
        ckpt.load_weights(critic, path / "critic.safetensors", device)
    if ema is not None and (path / "ema.safetensors").is_file():
        ckpt.load_weights(ema.model, path / "ema.safetensors", device)
    optim = ckpt.load_tensors(path / "optim.safetensors", device)
    try:
        opt_t = {k[len("opt.") :]: v for k, v in optim.items() if k.startswith("opt.")}
        optimizer.load_state_dict(ckpt.unflatten_optimizer(opt_t, state["optimizer"]))
        if critic_opt is not None and "critic_optimizer" in state:
            c_t = {k[len("critic_opt.") :]: v for k, v in optim.items() if k.startswith("critic_opt.")}
            critic_opt.load_state_dict(ckpt.unflatten_optimizer(c_t, state["critic_optimizer"]))
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as err:
        raise ckpt.CheckpointError(
            f"{path}: optimiser state does not fit the model ({type(err).__name__}: {err})"
        ) from None
    return int(state["step"])
