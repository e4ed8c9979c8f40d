"""Three disjoint splits: train fits, val selects, test only reports; seeded, repeatable, sized as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from colorlab.data import CIFARDataModule, DegradedFolderDataModule, FolderDataModule, SamplesDataModule
from colorlab.data.degrade import GaussianNoise
from tests.helpers import fake_cifar


def _photo_tree(root: Path, n_train: int, n_test: int) -> Path:
    """``root/train`` and ``root/val`` of distinct tiny PNGs (each file's pixels encode its index)."""
    for split, n in (("train", n_train), ("val", n_test)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            pixels = torch.full((3, 8, 8), i % 256, dtype=torch.uint8).permute(1, 2, 0).numpy()
            Image.fromarray(pixels).save(root / split / f"{split}_{i:03d}.png")
    return root


def _names(dataset) -> set[str]:
    return {Path(f).name for f in dataset.files}


def test_photo_layout_carves_val_from_train_and_tests_on_val_folder(tmp_path: Path):
    root = _photo_tree(tmp_path, n_train=40, n_test=7)
    dm = FolderDataModule(root=str(root), image_size=8, val_fraction=0.1, seed=3)
    dm.setup("fit")
    train, val, test = _names(dm.train_set), _names(dm.val_set), _names(dm.test_set)
    assert (len(train), len(val), len(test)) == (36, 4, 7)
    assert not train & val and not train & test and not val & test
    assert all(n.startswith("train_") for n in train | val) and all(n.startswith("val_") for n in test)
    splits = dm.splits()
    assert {k: v["size"] for k, v in splits.items()} == {"train": 36, "val": 4, "test": 7}
    assert "val" in splits["test"]["source"] and "seed 3" in splits["val"]["source"]
    assert "never" in splits["test"]["role"] and "checkpoint" in splits["val"]["role"]


def test_splits_are_deterministic_given_the_seed(tmp_path: Path):
    root = _photo_tree(tmp_path, n_train=50, n_test=3)

    def val_names(seed: int) -> set[str]:
        dm = FolderDataModule(root=str(root), image_size=8, seed=seed)
        dm.setup("fit")
        return _names(dm.val_set)

    assert val_names(0) == val_names(0)
    assert val_names(0) != val_names(1)


def test_max_images_shrinks_train_only(tmp_path: Path):
    root = _photo_tree(tmp_path, n_train=40, n_test=5)
    full = FolderDataModule(root=str(root), image_size=8)
    small = FolderDataModule(root=str(root), image_size=8, max_images=10)
    full.setup("fit")
    small.setup("fit")
    assert len(small.train_set) == 10 and _names(small.train_set) <= _names(full.train_set)
    assert _names(small.val_set) == _names(full.val_set) and _names(small.test_set) == _names(full.test_set)


def test_max_images_draws_from_every_source_not_the_first_names(tmp_path: Path):
    root = _photo_tree(tmp_path, n_train=60, n_test=2)  # train_000-029 stand for one source, 030-059 another

    def subset(seed: int, n: int | None = 12) -> set[str]:
        dm = FolderDataModule(root=str(root), image_size=8, max_images=n, seed=seed)
        dm.setup("fit")
        return _names(dm.train_set)

    drawn = subset(0)
    assert len(drawn) == 12 and {n < "train_030" for n in drawn} == {True, False}  # both halves
    assert subset(0) == drawn and subset(1) != drawn  # seeded
    with pytest.raises(ValueError, match="max_images must be at least 1"):
        subset(0, 0)


def test_flat_folder_is_cut_three_ways(tmp_path: Path):
    for i in range(30):
        Image.fromarray(torch.full((8, 8, 3), i, dtype=torch.uint8).numpy()).save(tmp_path / f"{i:02d}.png")
    dm = FolderDataModule(root=str(tmp_path), image_size=8, val_fraction=0.2, test_fraction=0.1, seed=5)
    dm.setup("fit")
    train, val, test = _names(dm.train_set), _names(dm.val_set), _names(dm.test_set)
    assert (len(train), len(val), len(test)) == (22, 5, 3)  # 3 = 10 % of 30; 5 = 20 % of the other 27
    assert len(train | val | test) == 30


def test_too_few_images_is_a_clear_error(tmp_path: Path):
    for i in range(2):
        Image.fromarray(torch.zeros(8, 8, 3, dtype=torch.uint8).numpy()).save(tmp_path / f"{i}.png")
    with pytest.raises(ValueError, match="at least 3"):
        FolderDataModule(root=str(tmp_path), image_size=8).setup("fit")


def test_degraded_splits_follow_the_folder_splits(tmp_path: Path):
    root = _photo_tree(tmp_path, n_train=20, n_test=4)
    dm = DegradedFolderDataModule(
        root=str(root), image_size=8, degradations=[GaussianNoise(sigma=(5.0, 5.0))]
    )
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (18, 2, 4)
    assert _names(dm.test_set.dataset) == {f"val_{i:03d}.png" for i in range(4)}
    assert not _names(dm.val_set.dataset) & _names(dm.train_set.dataset)
    # Evaluation degradations are repeatable.
    assert torch.equal(dm.val_set[0]["input_rgb"], dm.val_set[0]["input_rgb"])


def test_samples_test_photo_differs_from_val_photo():
    dm = SamplesDataModule(batch_size=4, image_size=32, resize=64, crops_per_epoch=4, val_crops=4)
    dm.setup("fit")
    val, test = next(iter(dm.val_dataloader()))["rgb"], next(iter(dm.test_dataloader()))["rgb"]
    assert not torch.equal(val, test)
    splits = dm.splits()
    assert "chelsea" in splits["val"]["source"] and "coffee" in splits["test"]["source"]


def test_cifar_test_is_the_official_test_split(tmp_path: Path):
    fake_cifar(tmp_path, "cifar10")
    dm = CIFARDataModule(variant="cifar10", root=str(tmp_path), download=False, val_fraction=0.25)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (75, 25, 20)
    assert not set(dm.train_set.indices) & set(dm.val_set.indices)
    assert dm.test_set.data is not dm.train_set.data
    assert "official" in dm.splits()["test"]["source"]


def test_real_photos_split_sizes(photos_dir: Path):
    dm = FolderDataModule(root=str(photos_dir), image_size=32)
    dm.setup("fit")
    sizes = {k: v["size"] for k, v in dm.splits().items()}
    n_train = len(list((photos_dir / "train").glob("*.jpg"))) + len(
        list((photos_dir / "train").glob("*.png"))
    )
    assert sizes["val"] == round(0.1 * n_train) and sizes["train"] + sizes["val"] == n_train
    assert sizes["test"] == len(dm.test_set) and _names(dm.test_set).isdisjoint(_names(dm.train_set))
