"""Datasets that yield ``{"rgb": uint8 (3, H, W)}``: built-in samples, image folders and CIFAR."""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.transforms import v2

from colorlab.data.images import load_rgb

Transform = Callable[[torch.Tensor], torch.Tensor]

# Colour photographs that ship inside scikit-image (no download): seven train, one validation, one test.
SAMPLE_TRAIN = (
    "astronaut.png", "motorcycle_left.png", "motorcycle_right.png", "rocket.jpg",
    "hubble_deep_field.jpg", "retina.jpg", "ihc.png",
)  # fmt: skip
SAMPLE_VAL = ("chelsea.png",)
SAMPLE_TEST = ("coffee.png",)


class _MinSide(torch.nn.Module):
    """Upscale so the shorter side is at least ``size`` (small photos still give full crops)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if min(img.shape[-2:]) >= self.size:
            return img
        return v2.functional.resize(img, self.size, antialias=True)


def build_transform(
    image_size: int,
    train: bool,
    resize: int | None = None,
    hflip: bool = True,
    resize_range: tuple[int, int] | None = None,
) -> Transform:
    """uint8 ``(3, H, W)`` -> ``(3, image_size, image_size)``: optional shorter-side resize, then a random
    crop and flip for training or a center crop for evaluation. ``resize_range`` (training only) draws the
    shorter side uniformly from ``[low, high]`` per picture instead of ``resize``."""
    if train and resize_range is not None:
        ops: list[torch.nn.Module] = [v2.RandomResize(resize_range[0], resize_range[1] + 1, antialias=True)]
    else:
        ops = [v2.Resize(resize, antialias=True)] if resize else []
    ops.append(_MinSide(image_size))
    if train:
        ops.append(v2.RandomCrop(image_size))
        if hflip:
            ops.append(v2.RandomHorizontalFlip())
    else:
        ops.append(v2.CenterCrop(image_size))
    return v2.Compose(ops)


def to_chw(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 array -> ``(3, H, W)`` uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


class _SeededItems(Dataset):
    """Base for datasets whose random transform can be made repeatable per index (for validation)."""

    def __init__(self, transform: Transform, seed: int | None) -> None:
        self.transform = transform
        self.seed = seed

    def _apply(self, image: torch.Tensor, index: int) -> dict[str, torch.Tensor]:
        if self.seed is None:
            return {"rgb": self.transform(image)}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + index)
            return {"rgb": self.transform(image)}


class ImageCrops(_SeededItems):
    """``length`` crops cycled over a few in-memory images (used for the built-in samples).

    Args:
        images: ``(3, H, W)`` uint8 tensors.
        length: items per epoch.
        transform: crop/flip pipeline.
        seed: when set, item ``i`` is always the same crop (validation); None gives fresh crops (training).
    """

    def __init__(self, images: Sequence[torch.Tensor], length: int, transform: Transform, seed: int | None) -> None:
        super().__init__(transform, seed)
        self.images = list(images)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self._apply(self.images[index % len(self.images)], index)


def load_samples(names: Sequence[str]) -> list[torch.Tensor]:
    """scikit-image's bundled colour photos by file name, as ``(3, H, W)`` uint8 tensors."""
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    return [to_chw(load_rgb(folder / name)) for name in names]


class ImageFiles(_SeededItems):
    """Images decoded from a list of files. A file that fails to decode mid-epoch is replaced by the
    next one (with a warning) rather than crashing the run; folders are screened up front so this is rare.

    ``min_side``: the transform shrinks every picture to this shorter side, so large JPEGs may be decoded at
    a reduced scale (see :func:`colorlab.data.images.load_rgb`).
    """

    def __init__(
        self, files: Sequence[Path], transform: Transform, seed: int | None = None, min_side: int | None = None
    ) -> None:
        super().__init__(transform, seed)
        if not files:
            raise ValueError("no decodable images to build a dataset from")
        self.files = list(files)
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            try:
                image = load_rgb(path, self.min_side)
            except Exception as exc:  # noqa: BLE001 - any decoder failure means "skip this file"
                warnings.warn(f"skipping unreadable image {path}: {exc}", stacklevel=2)
                continue
            return self._apply(to_chw(image), index)
        raise RuntimeError("none of the dataset's images could be decoded")


class _LocalCIFAR:
    """torchvision CIFAR that only checks the extracted files exist (md5 of every batch is slow) and
    explains the offline fix when they are missing."""

    archive: str

    def _check_integrity(self) -> bool:
        folder = Path(self.root) / self.base_folder
        names = [name for name, _ in self.train_list + self.test_list] + [self.meta["filename"]]
        return all((folder / name).is_file() for name in names)

    def _load_meta(self) -> None:
        with (Path(self.root) / self.base_folder / self.meta["filename"]).open("rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    @classmethod
    def offline_help(cls, root: str | os.PathLike) -> str:
        """Where to put the files by hand when there is no network."""
        folder = Path(root)
        return (
            f"Offline: put '{cls.filename}' (from {cls.url}) in {folder}/ "
            f"or extract it so that {folder / cls.base_folder}/ holds the batch files."
        )

    def download(self) -> None:
        try:
            super().download()
        except Exception as exc:
            raise FileNotFoundError(
                f"{type(self).__name__} is not in {self.root} and could not be downloaded ({exc}).\n"
                + self.offline_help(self.root)
            ) from exc


class LocalCIFAR10(_LocalCIFAR, CIFAR10):
    """CIFAR-10 with colorlab's offline-friendly checks."""


class LocalCIFAR100(_LocalCIFAR, CIFAR100):
    """CIFAR-100 with colorlab's offline-friendly checks."""


class CIFARImages(_SeededItems):
    """A subset of a CIFAR split as ``{"rgb"}`` items."""

    def __init__(self, data: np.ndarray, indices: Sequence[int], transform: Transform, seed: int | None) -> None:
        super().__init__(transform, seed)
        self.data = data
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self._apply(to_chw(self.data[self.indices[index]]), index)


def open_cifar(variant: str, root: str | os.PathLike, train: bool, download: bool) -> np.ndarray:
    """The ``(N, 32, 32, 3)`` uint8 images of a CIFAR split (``variant`` is cifar10 or cifar100)."""
    classes = {"cifar10": LocalCIFAR10, "cifar100": LocalCIFAR100}
    if variant not in classes:
        raise ValueError(f"unknown CIFAR variant {variant!r}; choose cifar10 or cifar100")
    cls = classes[variant]
    try:
        return cls(str(root), train=train, download=download).data
    except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
        raise FileNotFoundError(f"{variant} not found in {root} (download is off).\n" + cls.offline_help(root)) from exc
