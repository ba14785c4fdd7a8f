"""Multi-process data parallel through PyTorch's own engine: torchrun sets RANK/WORLD_SIZE, we
initialise the process group (gloo on CPU, NCCL on GPU) and wrap models in DistributedDataParallel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from arwave.device import pick_device


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(preference: str = "auto") -> DistInfo:
    """Join the torchrun process group if there is one; a plain `python` run is world size 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(preference, "train.device")
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, device)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0 decides (e.g. the time budget ran out); everyone follows, so no rank waits forever."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
