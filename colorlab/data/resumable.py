"""A training DataLoader that can stop part-way through an epoch and continue with the very same batches.

Lightning saves the ``state_dict()`` of every train DataLoader that has one in each checkpoint and hands it
back on resume; :class:`ResumableDataLoader` stores its shuffle seed, epoch and how many batches it has
handed out, and after ``load_state_dict`` its next epoch starts at the following batch. The order of an
epoch depends only on ``(seed, epoch)`` (:class:`EpochSampler`), never on the global RNG, so a resumed run
sees the same samples in the same order as an uninterrupted one. The loader counts its epochs itself rather
than trusting ``set_epoch``: Lightning passes a number one too high after resuming from an end-of-epoch
checkpoint. Random augmentations use the global RNG, which :class:`colorlab.training.rng.RngState`
restores; with ``num_workers > 0`` the workers' RNG is seeded from ``(seed, epoch)`` but its position
mid-epoch is not saved, so a resumed run keeps the sample order but not the exact augmentations.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochSampler(Sampler[int]):
    """Indices ``0..size-1``, shuffled by ``(seed, epoch)`` when ``shuffle``, from position ``start`` on.

    Args:
        size: dataset length.
        shuffle: permute each epoch (else in order).
        seed: shuffle seed; drawn from the global torch RNG when None (so ``seed_everything`` fixes it).
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int | None = None) -> None:
        self.size, self.shuffle = size, shuffle
        self.seed = int(torch.empty((), dtype=torch.int64).random_().item()) if seed is None else seed
        self.epoch = 0
        self.start = 0

    def __len__(
        self,
    ) -> int:  # the whole epoch, also while a resumed one runs its remainder (as Lightning counts)
        return self.size

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.size)
        yield from order[self.start :].tolist()


class ResumableDataLoader(DataLoader):
    """A batched DataLoader over an :class:`EpochSampler` whose place is saved in checkpoints.

    Args:
        dataset: a map-style dataset.
        batch_size: samples per batch.
        shuffle: shuffle each epoch.
        seed: shuffle seed (see :class:`EpochSampler`).
        epoch: the epoch its first iteration is (a loader rebuilt mid-fit continues the count).
        **kwargs: other DataLoader arguments (``num_workers``, ``drop_last``...; not ``sampler``).
    """

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool = True, seed: int | None = None,
                 epoch: int = 0, **kwargs: Any) -> None:  # fmt: skip
        sampler = EpochSampler(len(dataset), shuffle, seed)
        # Its own generator: the iterator's worker base seed is then drawn from (seed, epoch), not from the
        # global RNG, which a resumed run would otherwise advance once more than the uninterrupted one.
        super().__init__(
            dataset, batch_size=batch_size, sampler=sampler, generator=torch.Generator(), **kwargs
        )
        self.position = 0  # batches handed out in the current epoch
        self._next = (epoch, 0)  # (epoch, first batch) of the next iteration

    def __iter__(self) -> Iterator[Any]:
        # A generator: nothing is fixed before the first batch is asked for, so an iterator Lightning
        # creates and drops does not count as an epoch.
        (epoch, first), self._next = self._next, (self._next[0] + 1, 0)
        self.sampler.epoch, self.sampler.start = epoch, first * self.batch_size
        self.generator.manual_seed(self.sampler.seed + epoch)
        self.position = first
        for batch in super().__iter__():
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Shuffle seed, epoch and batches handed out so far in it (plain ints: safe to load)."""
        return {"seed": self.sampler.seed, "epoch": self.sampler.epoch, "batches": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue after the saved batch (or with the next epoch when the saved one was complete)."""
        self.sampler.seed = int(state["seed"])
        epoch, batches = int(state["epoch"]), int(state["batches"])
        self._next = (epoch + 1, 0) if batches >= len(self) else (epoch, batches)
