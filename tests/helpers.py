"""Test helpers: a fixed tiny batch, a DataModule that repeats it, and a short fit that records losses."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from colorlab.data.datamodule import LabDataModule
from colorlab.data.datasets import SAMPLE_TEST, SAMPLE_TRAIN, SAMPLE_VAL, build_transform, load_samples

LINKS_PER_FILE = 50_000


def fixed_rgb_batch(n: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` seeded random crops (``size`` px, from the photos resized to ``3 * size``) of the bundled samples."""
    images = load_samples((SAMPLE_TRAIN + SAMPLE_VAL + SAMPLE_TEST)[:n])
    transform = build_transform(size, train=True, resize=size * 3, hflip=False)
    torch.manual_seed(seed)
    return torch.stack([transform(img) for img in images])


class CrashAtEpoch(L.Callback):
    """Simulates a crash (e.g. a lost machine) when training reaches ``epoch``."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"simulated crash at epoch {self.epoch}")


class _Repeat(Dataset):
    def __init__(self, items: dict[str, torch.Tensor], length: int) -> None:
        self.items, self.length = items, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index % len(v)] for k, v in self.items.items()}


class FixedBatchDataModule(LabDataModule):
    """Every batch (train, val, test) is the same fixed images: for overfitting tests.

    Extra uint8 tensors (e.g. a degraded ``input_rgb``) can be passed in ``extra`` and reach the
    batch under the same key, so subclasses' ``on_after_batch_transfer`` can be exercised.
    """

    def __init__(self, rgb: torch.Tensor, steps_per_epoch: int = 10, extra: dict[str, torch.Tensor] | None = None):
        super().__init__(batch_size=rgb.shape[0], image_size=rgb.shape[-1])
        self.items = {"rgb": rgb, **(extra or {})}
        self.steps_per_epoch = steps_per_epoch

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset]:
        n = len(self.items["rgb"])
        train = _Repeat(self.items, n * self.steps_per_epoch)
        val = _Repeat(self.items, n)
        return train, val, val

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=False)


class _LossRecorder(L.Callback):
    def __init__(self, key: str) -> None:
        self.key = key
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.losses.append(float(trainer.callback_metrics[self.key]))


def fit_fixed_batch(
    module: L.LightningModule,
    rgb: torch.Tensor,
    steps: int = 50,
    key: str = "train/loss",
    extra: dict[str, torch.Tensor] | None = None,
    **trainer_kwargs: Any,
) -> list[float]:
    """Train ``module`` for ``steps`` batches on the same images; returns the logged ``key`` per batch.

    ``extra`` uint8 tensors are batched alongside ``rgb`` (see :class:`FixedBatchDataModule`).
    """
    recorder = _LossRecorder(key)
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[recorder],
        **trainer_kwargs,
    )
    trainer.fit(module, FixedBatchDataModule(rgb, steps_per_epoch=steps, extra=extra))
    return recorder.losses


def fake_cifar(root: Path, variant: str = "cifar100", n: int = 20) -> Path:
    """Write a tiny CIFAR-10/100 in torchvision's extracted python format (random pixels) under ``root``."""
    rng = np.random.default_rng(0)
    folder = root / ("cifar-100-python" if variant == "cifar100" else "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    label_key = "fine_labels" if variant == "cifar100" else "labels"
    splits = ["train", "test"] if variant == "cifar100" else [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    for split in splits:
        data = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: [i % 10 for i in range(n)]}
        with (folder / split).open("wb") as f:
            pickle.dump(data, f)
    meta, key = ("meta", "fine_label_names") if variant == "cifar100" else ("batches.meta", "label_names")
    with (folder / meta).open("wb") as f:
        pickle.dump({key: [f"class{i}" for i in range(100)]}, f)
    return root


def hardlink_folder(folder: Path, n: int) -> Path:
    """``folder/train`` and ``folder/val`` holding ``n`` and ``max(2, n // 100)`` hard links of a tiny 8x8 JPEG:
    a folder as large as ImageNet's in file count, in almost no disk space."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "source0.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(source)
    links = 0
    for split, count in (("train", n), ("val", max(2, n // 100))):
        (folder / split).mkdir(exist_ok=True)
        for i in range(count):
            if links % LINKS_PER_FILE == 0 and links:  # ext4 allows 65000 links to one file
                source = shutil.copy(source, folder / f"source{links // LINKS_PER_FILE}.jpg")
            os.link(source, folder / split / f"{i:07d}.jpg")
            links += 1
    return folder
