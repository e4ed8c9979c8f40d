"""The data path at GPU scale: loader workers per rank, pinned memory, reduced-size JPEG decoding, and a
start-up on ranks >= 1 that touches no file of the folder."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from colorlab.data.datamodule import FolderDataModule, default_loader_workers
from colorlab.data.datasets import SAMPLE_TRAIN, build_transform, load_samples, to_chw
from colorlab.data.images import load_rgb
from colorlab.data.ranks import from_rank_zero
from tests.helpers import hardlink_folder

# ---- workers and pinned memory ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "local_ranks", "gpu", "workers"),
    [(16, 1, True, 15), (16, 2, True, 7), (16, 8, True, 1), (16, 16, True, 0), (2, 1, True, 1),
     (16, 1, False, 4), (16, 4, False, 1), (16, 8, False, 0), (64, 2, False, 4)],
)  # fmt: skip
def test_auto_workers_share_the_cores_between_the_local_ranks(cores, local_ranks, gpu, workers):
    assert default_loader_workers(cores, local_ranks, gpu) == workers


def attach(data: FolderDataModule, world_size: int, device: str) -> None:
    data.trainer = SimpleNamespace(
        world_size=world_size, num_nodes=1, strategy=SimpleNamespace(root_device=torch.device(device))
    )


def test_auto_workers_and_pinning_follow_the_trainer(monkeypatch):
    monkeypatch.setattr("colorlab.data.datamodule.usable_cores", lambda: 16)
    data = FolderDataModule(root="unused", num_workers="auto")
    assert data.num_workers == 4 and not data.pin_memory  # no trainer yet: one CPU process
    attach(data, world_size=4, device="cuda")
    assert data.num_workers == 3 and data.pin_memory and data.persistent_workers
    attach(data, world_size=2, device="cpu")
    assert data.num_workers == 2 and not data.pin_memory
    fixed = FolderDataModule(root="unused", num_workers=0, pin_memory=False)
    attach(fixed, world_size=1, device="cuda")
    assert fixed.num_workers == 0 and not fixed.pin_memory and not fixed.persistent_workers


# ---- reduced-size JPEG decoding ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_TRAIN[:4])
def test_reduced_jpeg_decoding_gives_crops_with_the_full_decodes_statistics(name, tmp_path: Path):
    # A real photo, enlarged 3x and saved as a JPEG: the decoder may work at 1/8 scale for 96 px crops.
    photo = Image.fromarray(load_samples([name])[0].permute(1, 2, 0).numpy())
    path = tmp_path / "photo.jpg"
    photo.resize((photo.width * 3, photo.height * 3), Image.BICUBIC).save(path, quality=90)
    full, reduced = load_rgb(path), load_rgb(path, min_side=96)
    assert min(reduced.shape[:2]) >= 96 and reduced.shape[0] * 4 < full.shape[0]  # decoded smaller, still covers
    crop = build_transform(96, train=False, resize=96)
    a, b = crop(to_chw(full)).double(), crop(to_chw(reduced)).double()
    assert a.shape == b.shape == (3, 96, 96)
    # Measured on these photos: channel means within 0.4 levels, spreads within 0.5 (of 255).
    assert (a.mean((1, 2)) - b.mean((1, 2))).abs().max() < 1.0
    assert (a.std((1, 2)) - b.std((1, 2))).abs().max() < 1.0


def test_reduced_decoding_never_goes_below_the_size_asked_and_leaves_pngs_alone(tmp_path: Path):
    image = Image.fromarray(load_samples(["astronaut.png"])[0].permute(1, 2, 0).numpy())  # 512 x 512
    image.save(tmp_path / "a.jpg")
    image.save(tmp_path / "a.png")
    assert load_rgb(tmp_path / "a.jpg", min_side=300).shape == (512, 512, 3)  # less than 2x: full decode
    assert load_rgb(tmp_path / "a.jpg", min_side=200).shape == (256, 256, 3)
    assert load_rgb(tmp_path / "a.jpg", min_side=63).shape == (64, 64, 3)
    assert load_rgb(tmp_path / "a.png", min_side=63).shape == (512, 512, 3)


# ---- start-up on ranks >= 1 ---------------------------------------------------------------------------


def fake_rank(monkeypatch, rank: int, sent: list) -> None:
    """Make this process rank ``rank`` of 2; the broadcast hands over ``sent[0]`` (what rank 0 computed)."""
    dist = torch.distributed
    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "get_rank", lambda: rank)

    def broadcast_object_list(box: list, src: int = 0) -> None:
        if rank == 0:
            sent[:] = box
        else:
            box[:] = sent

    monkeypatch.setattr(dist, "broadcast_object_list", broadcast_object_list)


def count_file_stats(monkeypatch, folder: Path) -> list[str]:
    """Record every stat / lstat / scandir of a path under ``folder``."""
    calls: list[str] = []
    for name in ("stat", "lstat", "scandir"):
        original = getattr(os, name)

        def counted(path=".", *args, original=original, **kwargs):
            if str(path).startswith(str(folder)):
                calls.append(str(path))
            return original(path, *args, **kwargs)

        monkeypatch.setattr(os, name, counted)
    return calls


def test_ranks_above_zero_start_without_touching_a_file(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("COLORLAB_CACHE", str(tmp_path / "cache"))
    folder = hardlink_folder(tmp_path / "photos", 300)
    sent: list = []
    with monkeypatch.context() as patch:
        fake_rank(patch, 0, sent)
        rank0 = FolderDataModule(root=str(folder))
        rank0.prepare_data()  # Lightning's order: screen (once per machine), then set up
        rank0.setup("fit")
    with monkeypatch.context() as patch:
        fake_rank(patch, 1, sent)
        calls = count_file_stats(patch, folder)
        rank1 = FolderDataModule(root=str(folder))
        rank1.setup("fit")
        assert calls == []
    assert rank1.train_set.files == rank0.train_set.files and rank1.test_set.files == rank0.test_set.files
    assert len(rank1.train_set) + len(rank1.val_set) == 300 and len(rank1.test_set) == 3
    assert rank1.split_sources == rank0.split_sources


def test_an_error_on_rank_zero_reaches_every_rank(monkeypatch):
    sent: list = []
    fake_rank(monkeypatch, 0, sent)

    def fails() -> None:
        raise ValueError("no readable images in /photos")

    with pytest.raises(ValueError, match="no readable images"):
        from_rank_zero(fails)
    fake_rank(monkeypatch, 1, sent)
    with pytest.raises(ValueError, match="no readable images"):
        from_rank_zero(lambda: pytest.fail("rank 1 computed it itself"))
