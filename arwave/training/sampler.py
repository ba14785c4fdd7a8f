"""A deterministic, resumable, sharded batch sampler.

Epoch e visits the dataset in the order `randperm(N, seed=(seed, e))`. Global step s takes the
`world·B` consecutive items of that order and rank r keeps every world-th of them, so the union over
ranks equals the batch a single process with batch `world·B` would see (the DDP equivalence test
relies on this). Each item is `(index, crop_seed)` with `crop_seed` a function of (seed, epoch,
position) only, so random crops are the same whatever the number of processes, and a resumed run
starting at step s sees exactly the data the uninterrupted run saw.

Gradient accumulation (`accumulate` = A): a step's global batch holds world·B·A items; rank r keeps
every world-th of them and yields its B·A items as A consecutive micro-batches of B, so the union of
a step's micro-batches over ranks is again the batch one process with batch world·B·A would see.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from arwave.errors import ArwaveError


class ResumableBatchSampler:
    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        start_step: int = 0,
        accumulate: int = 1,
    ):
        self.global_batch = batch_size * world * accumulate
        if num_items < self.global_batch:
            acc = f" × {accumulate} accumulated" if accumulate > 1 else ""
            raise ArwaveError(
                f"the training set has {num_items} items, fewer than one batch of {self.global_batch} "
                f"({batch_size} per process × {world}{acc}); lower data.batch_size or add data"
            )
        self.accumulate = accumulate
        self.num_items, self.batch_size = num_items, batch_size
        self.seed, self.rank, self.world = seed, rank, world
        self.steps_per_epoch = num_items // self.global_batch
        self.step = start_step

    def order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.num_items, generator=g)

    def position(self) -> dict:
        return {"epoch": self.step // self.steps_per_epoch, "batch_in_epoch": self.step % self.steps_per_epoch}

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        while True:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            perm = self.order(epoch)
            for b in range(offset, self.steps_per_epoch):
                start = b * self.global_batch
                positions = range(start + self.rank, start + self.global_batch, self.world)
                items = [(int(perm[p]), (self.seed * 1_000_003 + epoch) * 1_000_003 + p) for p in positions]
                for m in range(self.accumulate):
                    yield items[m * self.batch_size : (m + 1) * self.batch_size]
                self.step += 1
