"""A training DataLoader that can stop part-way through an epoch and continue with the very same batches.

Lightning saves the ``state_dict()`` of every train DataLoader that has one in each checkpoint and hands it
back on resume; :class:`ResumableDataLoader` stores its shuffle seed, epoch and how many batches it has
handed out, and after ``load_state_dict`` its next epoch starts at that batch. The order of an epoch depends
only on ``(seed, epoch)`` (:class:`EpochSampler`), never on the global RNG, so a resumed run sees the same
samples in the same order as an uninterrupted one. Random augmentations use the global RNG, which
:class:`colorlab.training.rng.RngState` restores; with ``num_workers > 0`` the workers' RNG is not saved, so
a resumed run keeps the sample order but not the exact augmentations.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochSampler(Sampler[int]):
    """Indices ``0..size-1``, shuffled by ``(seed, epoch)`` when ``shuffle``; one iteration may start late.

    Args:
        size: dataset length.
        shuffle: permute each epoch (else in order).
        seed: shuffle seed; drawn from the global torch RNG when None (so ``seed_everything`` fixes it).
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int | None = None) -> None:
        self.size, self.shuffle = size, shuffle
        self.seed = int(torch.empty((), dtype=torch.int64).random_().item()) if seed is None else seed
        self.epoch = 0
        self.start = 0  # first index of the current iteration
        self._resume_at: tuple[int, int] | None = None  # (epoch, index) the next iteration of that epoch starts at

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = epoch

    def resume_at(self, epoch: int, index: int) -> None:
        """Start the next iteration at ``index`` if it is one of ``epoch`` (else from the start)."""
        self._resume_at = (epoch, index)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        resume, self._resume_at = self._resume_at, None
        self.start = resume[1] if resume is not None and resume[0] == self.epoch else 0
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.size)
        yield from order[self.start :].tolist()


class ResumableDataLoader(DataLoader):
    """A batched DataLoader over an :class:`EpochSampler` whose position is saved in checkpoints.

    Args:
        dataset: a map-style dataset.
        batch_size: samples per batch.
        shuffle: shuffle each epoch.
        seed: shuffle seed (see :class:`EpochSampler`).
        **kwargs: other DataLoader arguments (``num_workers``, ``drop_last``...; not ``sampler``).
    """

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool = True, seed: int | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(dataset, batch_size=batch_size, sampler=EpochSampler(len(dataset), shuffle, seed), **kwargs)
        self.position = 0  # batches handed out in the current epoch

    def __iter__(self) -> Iterator[Any]:
        # A generator: nothing (sampler order included) is fixed before the first batch is asked for, which
        # Lightning does only after ``set_epoch``.
        self.position = -1
        for batch in super().__iter__():
            if self.position < 0:  # the sampler has now started, late if resuming
                self.position = self.sampler.start // self.batch_size
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Shuffle seed, epoch and batches handed out so far in it (plain ints: safe to load)."""
        return {"seed": self.sampler.seed, "epoch": self.sampler.epoch, "batches": max(self.position, 0)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue the saved epoch after its last handed-out batch."""
        self.sampler.seed = int(state["seed"])
        self.sampler.epoch = int(state["epoch"])
        self.sampler.resume_at(int(state["epoch"]), int(state["batches"]) * self.batch_size)
        self.position = 0
