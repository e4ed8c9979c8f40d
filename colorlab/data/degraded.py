"""Restoration data: each item also carries a degraded copy of its crop, ``input_rgb``, made in the workers.

The clean crop stays the target (``rgb`` -> ``L``, ``ab``); the degraded one becomes the model's input
``L_input`` on the device. For super-resolution (``scale`` > 1) the copy is first shrunk by ``scale``
(antialiased bicubic), then degraded at the low resolution: ``L_input`` is ``scale`` times smaller. Validation and test degradations are seeded per index, so every evaluation of
a run (and every run with the same ``seed``) sees the same degraded pictures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from colorlab.data.datamodule import FolderDataModule
from colorlab.data.degrade import Degradation, Degrade, shrink


class DegradedDataset(Dataset):
    """Wraps a dataset of ``{"rgb": uint8 (3, H, W)}`` items and adds ``"input_rgb"``, a degraded copy.

    Args:
        dataset: the clean dataset.
        degrade: the degradation pipeline.
        seed: when set, item ``i`` is degraded with seed ``seed + i`` (repeatable evaluation); None draws
            fresh degradations every time from torch's RNG (training; seeded per DataLoader worker).
        scale: shrink the copy by this integer factor before degrading it (super-resolution pairs).
    """

    def __init__(self, dataset: Dataset, degrade: Degrade, seed: int | None, scale: int = 1) -> None:
        self.dataset = dataset
        self.degrade = degrade
        self.seed = seed
        self.scale = scale

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.dataset[index]
        generator = None if self.seed is None else self.seed + index
        small = item["rgb"] if self.scale == 1 else shrink(item["rgb"], self.scale)
        return {**item, "input_rgb": self.degrade(small, generator)}


class DegradedFolderDataModule(FolderDataModule):
    """:class:`FolderDataModule` whose batches also hold the degraded input: ``{"L", "ab", "rgb", "L_input"}``

    Args:
        degradations: applied in order to each crop, e.g. ``GaussianNoise``, ``JPEG``, ``Downscale`` from
            :mod:`colorlab.data.degrade` (class_path + init_args in the YAML); empty means no degradation.
        shuffle_degradations: apply them in a random order per image.
        scale: super-resolution factor: the input is the crop shrunk by ``scale`` and then degraded
            (``image_size`` must divide by it); 1 keeps the input at the crop's size.
        degrade_evaluation: degrade the validation and test inputs too (restoration: the model is scored on
            what it is for); False degrades the training inputs only, as augmentation for a colorizer that
            is scored, and used, on clean photos.
        **kwargs: see :class:`FolderDataModule` (root, image_size, batch_size, seed...).
    """

    def __init__(
        self,
        degradations: Sequence[Degradation] = (),
        shuffle_degradations: bool = False,
        scale: int = 1,
        degrade_evaluation: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.degrade = Degrade(degradations, shuffle=shuffle_degradations)
        if scale != 1 and not degrade_evaluation:
            raise ValueError("degrade_evaluation: false needs scale 1 (a super-resolution model's input is small)")
        self.degrade_evaluation = degrade_evaluation
        if scale < 1 or self.image_size % scale:
            raise ValueError(f"scale must be a positive integer dividing image_size {self.image_size}, "
                             f"got {scale}")  # fmt: skip
        self.scale = scale

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset]:
        train, val, test = super().build_datasets()
        train_set = DegradedDataset(train, self.degrade, seed=None, scale=self.scale)
        if not self.degrade_evaluation:
            return train_set, val, test
        # Different offsets keep the validation and test degradations distinct.
        val_set = DegradedDataset(val, self.degrade, seed=self.seed, scale=self.scale)
        test_set = DegradedDataset(test, self.degrade, seed=self.seed + len(val), scale=self.scale)
        return train_set, val_set, test_set
