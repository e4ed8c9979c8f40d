"""LightningDataModules: datasets yield uint8 RGB; the batch becomes Lab once, on the device."""

from __future__ import annotations

import os
from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSamplerWrapper
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler

from colorlab.color import lab_batch, rgb_to_gray_l, uint8_to_float
from colorlab.data.datasets import (
    SAMPLE_TEST,
    SAMPLE_TRAIN,
    SAMPLE_VAL,
    CIFARImages,
    ImageCrops,
    ImageFiles,
    build_transform,
    load_samples,
    open_cifar,
)
from colorlab.data.images import IMAGE_EXTENSIONS, DataFolderError
from colorlab.data.ranks import from_rank_zero
from colorlab.data.resumable import ResumableDataLoader
from colorlab.data.screening import screen_folder

DATA_ENV = "COLORLAB_DATA"


def data_root(root: str | os.PathLike | None, what: str) -> Path:
    """``root`` if given, else ``$COLORLAB_DATA``; a clear error when neither is set."""
    if root is None:
        root = os.environ.get(DATA_ENV)
    if not root:
        raise ValueError(f"no data folder for {what}: set data.init_args.root in the YAML or ${DATA_ENV}")
    return Path(root).expanduser()


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_loader_workers(cores: int, local_ranks: int = 1, gpu: bool = False) -> int:
    """Loader worker processes per rank for ``num_workers: auto``, from this rank's share of the cores
    (``cores // local_ranks``: the ranks on one machine share its cores).

    On a GPU the training process only launches kernels, so all of its share but one core decodes: an H200
    step consumes thousands of images a second, far more than one decoding process gives (~420/s). On the
    CPU the step itself needs the cores: none on a 1-2 core share (decoding a batch costs about a tenth of a
    step, so a worker would take a core from the step for little gain), else a quarter (at most 4).
    """
    share = max(1, cores // max(1, local_ranks))
    if gpu:
        return share - 1
    return 0 if share <= 2 else min(4, share // 4)


def seeded_split(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Shuffle ``range(n)`` with ``seed`` and cut off ``val_fraction`` (at least one item) for validation."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(n * val_fraction))
    return sorted(order[n_val:]), sorted(order[:n_val])


def exact_shard_sampler(dataset: Dataset) -> Sampler | None:
    """Under DDP, this rank's share of ``dataset`` (every ``world_size``-th item), not padded with repeats as
    Lightning's default DistributedSampler is; None in a single process."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return UnrepeatedDistributedSamplerWrapper(SequentialSampler(dataset), shuffle=False)


def seeded_subset(items: list, n: int | None, seed: int) -> list:
    """At most ``n`` of ``items`` drawn with ``seed``, in their order; not the first ``n``, since a folder's
    sorted names group its images by source."""
    if n is not None and n < 1:
        raise ValueError(f"max_images must be at least 1, got {n}")
    if n is None or n >= len(items):
        return items
    keep = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:n]
    return [items[i] for i in sorted(keep.tolist())]


def split_files(files: list[Path], fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """``files`` cut by :func:`seeded_split` into (kept, held out); the same seed and list give the same cut."""
    kept, held_out = seeded_split(len(files), fraction, seed)
    return [files[i] for i in kept], [files[i] for i in held_out]


# What each split is for; every report states these beside the sizes.
SPLIT_ROLES = {
    "train": "fits the model (and the trivial baselines)",
    "val": "picks the best checkpoint (run.monitor)",
    "test": "reporting only: never selects anything",
}


class LabDataModule(L.LightningDataModule):
    """Shared loaders and the on-device uint8 RGB -> Lab conversion; subclasses build the datasets.

    Args:
        batch_size: images per batch.
        image_size: side of the square crops the model trains on.
        resize: resize the shorter side to this before cropping (None keeps the native scale).
        hflip: random horizontal flips for training.
        scale_jitter: ``(low, high)``: each training photo's shorter side is drawn from ``resize`` times
            ``[low, high]`` instead of being ``resize`` (scale augmentation: objects at more sizes than the
            one the model is run at); validation, test and inference keep ``resize``. None: no jitter.
        num_workers: DataLoader worker processes per rank (0 decodes in the main process); ``auto`` picks them
            from the usable cores, the ranks sharing them and the accelerator (:func:`default_loader_workers`).
        pin_memory: pin host memory for faster GPU transfer; ``auto``: when training on a CUDA GPU.
        persistent_workers: keep workers alive between epochs (saves their start-up at every epoch and
            validation).
        seed: fixes the train/val split and the validation crops.
    """

    def __init__(
        self,
        batch_size: int = 16,
        image_size: int = 64,
        resize: int | None = None,
        hflip: bool = True,
        scale_jitter: tuple[float, float] | None = None,
        num_workers: int | Literal["auto"] = 0,
        pin_memory: bool | Literal["auto"] = "auto",
        persistent_workers: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.image_size = image_size
        self.resize = resize
        self.hflip = hflip
        if scale_jitter is not None and (resize is None or not 0 < scale_jitter[0] <= scale_jitter[1]):
            raise ValueError(f"scale_jitter needs resize and 0 < low <= high, got {scale_jitter} with resize {resize}")
        self.scale_jitter = scale_jitter
        self.workers_choice = num_workers
        self.pin_memory_choice = pin_memory
        self.persistent_workers_choice = persistent_workers
        self.seed = seed
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.split_sources: dict[str, str] = {}  # where each split comes from; set by build_datasets

    def _on_gpu(self) -> bool:
        trainer = self.trainer
        return trainer is not None and getattr(trainer.strategy.root_device, "type", "cpu") == "cuda"

    @property
    def num_workers(self) -> int:
        """Loader workers per rank (``auto`` resolved for the trainer this module is attached to)."""
        if self.workers_choice != "auto":
            return self.workers_choice
        trainer = self.trainer
        local_ranks = trainer.world_size // max(1, trainer.num_nodes) if trainer is not None else 1
        return default_loader_workers(usable_cores(), local_ranks, gpu=self._on_gpu())

    @property
    def pin_memory(self) -> bool:
        """Whether loaders pin host memory (``auto``: on a CUDA GPU)."""
        return self._on_gpu() if self.pin_memory_choice == "auto" else bool(self.pin_memory_choice)

    @property
    def persistent_workers(self) -> bool:
        """Keep workers alive between epochs (only when there are workers)."""
        return self.persistent_workers_choice and self.num_workers > 0

    @property
    def train_resize_range(self) -> tuple[int, int] | None:
        """The range of the training photos' shorter side under ``scale_jitter`` (None without it)."""
        if self.scale_jitter is None:  # the constructor made sure resize is set with it
            return None
        return round(self.resize * self.scale_jitter[0]), round(self.resize * self.scale_jitter[1])

    def transform(self, train: bool):
        """The crop/flip pipeline for training or evaluation."""
        return build_transform(self.image_size, train=train, resize=self.resize, hflip=self.hflip,
                               resize_range=self.train_resize_range)  # fmt: skip

    @abstractmethod
    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset]:
        """Return (train, val, test) datasets of ``{"rgb": uint8 (3, S, S)}`` items."""

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set, self.val_set, self.test_set = self.build_datasets()

    def splits(self) -> dict[str, dict[str, Any]]:
        """Per split (train/val/test): its size, its role and where it comes from (after :meth:`setup`)."""
        sets = {"train": self.train_set, "val": self.val_set, "test": self.test_set}
        return {
            name: {"size": len(dataset), "role": SPLIT_ROLES[name], "source": self.split_sources.get(name, "?")}
            for name, dataset in sets.items()
            if dataset is not None
        }

    def _loader(self, dataset: Dataset, train: bool, sampler: Sampler | None = None) -> DataLoader:
        kwargs = {
            "batch_size": self.batch_size,
            # Under DDP each rank sees 1/world_size of the set: drop a ragged last batch when a full one exists.
            "drop_last": train and len(dataset) // self._world_size() >= self.batch_size,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers,
        }
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if train and not distributed:  # DDP on one device too: Lightning then swaps in its own sampler
            # Saves its place in checkpoints (mid-epoch resume); under DDP Lightning's DistributedSampler shuffles.
            # A loader rebuilt mid-fit (reload_dataloaders_every_n_epochs) continues the epoch count.
            epoch = self.trainer.current_epoch if self.trainer is not None else 0
            return ResumableDataLoader(dataset, shuffle=True, epoch=epoch, **kwargs)
        return DataLoader(dataset, shuffle=train and sampler is None, sampler=sampler, **kwargs)

    def _world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        # Under DDP each rank tests a disjoint share and the metrics sync their sums, so the test metrics
        # cover exactly the test set (Lightning keeps a sampler that is already distributed).
        return self._loader(self.test_set, train=False, sampler=exact_shard_sampler(self.test_set))

    def whole_test_dataloader(self) -> DataLoader:
        """Every test item in this process, even under DDP (for figures one rank computes alone, e.g. the
        report's baselines), where :meth:`test_dataloader` gives this rank's share."""
        return self._loader(self.test_set, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """uint8 ``rgb`` -> ``{"L", "ab", "rgb"}`` in model ranges (see :mod:`colorlab.color`); a degraded
        uint8 ``input_rgb`` (restoration data) also becomes ``L_input``, the L the model sees."""
        out = dict(batch)
        out.update(lab_batch(batch["rgb"]))
        if "input_rgb" in batch:
            out["L_input"] = rgb_to_gray_l(uint8_to_float(batch["input_rgb"]))
        return out


class SamplesDataModule(LabDataModule):
    """Random crops of the colour photos bundled with scikit-image: needs no download.

    Training cycles over seven photos; validation crops come from one held-out photo (chelsea) and test crops
    from another (coffee), so the test split never selects a checkpoint.

    Args:
        crops_per_epoch: training items per epoch (crops cycle over the training photos).
        val_crops: fixed crops in each of the validation and test splits.
        **kwargs: see :class:`LabDataModule`.
    """

    def __init__(self, crops_per_epoch: int = 512, val_crops: int = 32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crops_per_epoch = crops_per_epoch
        self.val_crops = val_crops

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset]:
        train = ImageCrops(load_samples(SAMPLE_TRAIN), self.crops_per_epoch, self.transform(True), seed=None)
        # Random (not center) crops for validation too, but seeded per index: varied and repeatable.
        val = ImageCrops(load_samples(SAMPLE_VAL), self.val_crops, self.transform(True), seed=self.seed)
        test = ImageCrops(load_samples(SAMPLE_TEST), self.val_crops, self.transform(True), seed=self.seed)
        self.split_sources = {
            "train": f"{self.crops_per_epoch} random crops per epoch of {', '.join(SAMPLE_TRAIN)}",
            "val": f"{self.val_crops} fixed crops of {', '.join(SAMPLE_VAL)}",
            "test": f"{self.val_crops} fixed crops of {', '.join(SAMPLE_TEST)}",
        }
        return train, val, test


class FolderDataModule(LabDataModule):
    """Any directory tree of photos (jpg/png/webp/bmp/tiff, recursive), cut into three disjoint splits.

    - ``root/train_subdir`` and ``root/test_subdir`` both exist (e.g. ``photos/train``, ``photos/val``): the
      test split is ``test_subdir``; a seeded ``val_fraction`` of ``train_subdir`` is the validation split
      and the rest trains.
    - otherwise all images under ``root/train_subdir`` (or ``root``) are cut with ``seed``: first
      ``test_fraction`` for test, then ``val_fraction`` of the rest for validation.

    Why a carve-out of 10 %: on ``photos`` that is 60 of 601 images. Checkpoints are compared on the same
    images, so what matters is the noise of a *difference* of means, far below the per-image spread. Measured
    on photos/train at 96 px: per-image ΔE00 varies by 4.4 (std), but between two similar colorizers (training
    mean ab vs L->ab lookup, 0.15 ΔE00 apart) the per-image difference varies by only 0.51, so random 60-image
    subsets rank them the wrong way 0.6 % of the time (4.8 % with 30, 0 % with 120). Training keeps 90 % of
    its photos; the short budgets here see each photo a few times, so the 60 cost little.
    Files that do not decode (corrupt, truncated, not an image) are skipped with one warning listing them.
    The folder is screened once, in parallel, by ``prepare_data`` (one process per machine under DDP) and
    the verdicts are cached (see :mod:`colorlab.data.screening`), so later runs only list files; under DDP
    the other ranks receive rank 0's lists and touch no file at start-up.

    Args:
        root: data folder; defaults to ``$COLORLAB_DATA``.
        train_subdir: training (and validation) images below ``root`` when that folder exists.
        test_subdir: test images below ``root`` when that folder exists (``photos/val`` is the test set).
        val_fraction: share of the training images held out (seeded) for validation.
        test_fraction: share of all images held out for test when there is no ``test_subdir``.
        max_images: use at most this many training images, a seeded draw (quick experiments; val and test
            are unchanged).
        **kwargs: see :class:`LabDataModule`.
    """

    def __init__(
        self,
        root: str | None = None,
        train_subdir: str = "train",
        test_subdir: str = "val",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        max_images: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.train_subdir = train_subdir
        self.test_subdir = test_subdir
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.max_images = max_images
        self._listed: tuple | None = None  # prepare_data's lists, for this process's first setup

    def _decodable(self, folder: Path) -> list[Path]:
        good, bad = screen_folder(folder)
        if bad:
            listing = "\n".join(f"  {path}: {reason}" for path, reason in bad.items())
            rank_zero_warn(
                f"skipping {len(bad)} file(s) under {folder} that are not readable images:\n{listing}"
            )
        return good

    def prepare_data(self) -> None:
        """Screen the folders once per machine (Lightning runs this before any rank's ``setup``)."""
        self._listed = (*self.file_lists(), self.split_sources)

    def _listing(self) -> tuple[list[Path], list[Path], list[Path], dict[str, str]]:
        listed, self._listed = self._listed, None
        return listed or (*self.file_lists(), self.split_sources)

    def file_lists(self) -> tuple[list[Path], list[Path], list[Path]]:
        """The disjoint (train, val, test) image files after screening out undecodable ones."""
        root = data_root(self.root, "FolderDataModule")
        train_dir, test_dir = root / self.train_subdir, root / self.test_subdir
        if train_dir.is_dir() and test_dir.is_dir():
            pool, test = self._decodable(train_dir), self._decodable(test_dir)
            for folder, files in ((train_dir, pool), (test_dir, test)):
                if not files:
                    kinds = ", ".join(IMAGE_EXTENSIONS)
                    raise DataFolderError(f"no readable images in {folder} (looked for {kinds})")
            test_source = str(test_dir)
        else:
            source = train_dir if train_dir.is_dir() else root
            files = self._decodable(source)
            if len(files) < 3:
                raise ValueError(f"need at least 3 readable images under {root}, found {len(files)}")
            pool, test = split_files(files, self.test_fraction, self.seed)
            test_source = f"seeded {self.test_fraction:.0%} of {source} (seed {self.seed})"
        if len(pool) < 2:
            raise ValueError(f"need at least 2 readable training images under {root}, found {len(pool)}")
        train, val = split_files(pool, self.val_fraction, self.seed)
        train = seeded_subset(train, self.max_images, self.seed)
        pool_dir = train_dir if train_dir.is_dir() else root
        self.split_sources = {
            "train": f"{pool_dir} minus the validation images",
            "val": f"seeded {self.val_fraction:.0%} of {pool_dir} (seed {self.seed})",
            "test": test_source,
        }
        return train, val, test

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset]:
        # Rank 0 lists the folder (it already did in prepare_data); the other ranks receive its lists, so
        # their start-up makes no per-file system call whatever the folder's size.
        train, val, test, self.split_sources = from_rank_zero(self._listing)
        evaluation = self.transform(False)
        shrink = self.resize  # each photo is resized to this shorter side first: JPEGs may decode smaller
        val_set, test_set = ImageFiles(val, evaluation, min_side=shrink), ImageFiles(test, evaluation, min_side=shrink)
        train_shrink = self.train_resize_range[1] if self.train_resize_range else shrink
        return ImageFiles(train, self.transform(True), min_side=train_shrink), val_set, test_set


class CIFARDataModule(LabDataModule):
    """CIFAR-10 / CIFAR-100 (32x32) via torchvision; the train split is cut into train/val by ``seed``
    and the official test split is the test set.

    Args:
        variant: ``cifar10`` or ``cifar100``.
        root: folder holding (or receiving) the CIFAR archive; defaults to ``$COLORLAB_DATA/cifar``.
        download: fetch the archive when missing (needs network; offline the error says what to put where).
        val_fraction: share of the train split held out for validation.
        max_images: use at most this many training images, a seeded draw.
        **kwargs: see :class:`LabDataModule` (``image_size`` defaults to 32).
    """

    def __init__(
        self,
        variant: Literal["cifar10", "cifar100"] = "cifar10",
        root: str | None = None,
        download: bool = True,
        val_fraction: float = 0.1,
        max_images: int | None = None,
        image_size: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_size=image_size, **kwargs)
        self.variant = variant
        self.root = root
        self.download = download
        self.val_fraction = val_fraction
        self.max_images = max_images

    def _folder(self) -> Path:
        return Path(self.root).expanduser() if self.root else data_root(None, self.variant) / "cifar"

    def prepare_data(self) -> None:
        open_cifar(self.variant, self._folder(), train=True, download=self.download)

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset]:
        folder = self._folder()
        train_data = open_cifar(self.variant, folder, train=True, download=self.download)
        test_data = open_cifar(self.variant, folder, train=False, download=self.download)
        train_idx, val_idx = seeded_split(len(train_data), self.val_fraction, self.seed)
        train_idx = seeded_subset(train_idx, self.max_images, self.seed)
        self.split_sources = {
            "train": f"{self.variant} train split minus the validation images",
            "val": f"seeded {self.val_fraction:.0%} of the {self.variant} train split (seed {self.seed})",
            "test": f"the official {self.variant} test split",
        }
        return (
            CIFARImages(train_data, train_idx, self.transform(True), seed=None),
            CIFARImages(train_data, val_idx, self.transform(False), seed=None),
            CIFARImages(test_data, range(len(test_data)), self.transform(False), seed=None),
        )
