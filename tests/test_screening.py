"""Folder screening: unreadable files found in parallel, verdicts cached per file, changed files re-screened,
and FolderDataModule screens in prepare_data so that setup (every rank's) decodes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from colorlab.data import screening
from colorlab.data.datamodule import FolderDataModule
from tests.helpers import fixed_rgb_batch


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(screening.CACHE_ENV, str(tmp_path / "cache"))
    root = tmp_path / "photos"
    for split, n in (("train", 5), ("val", 2)):
        (root / split).mkdir(parents=True)
        for i, image in enumerate(fixed_rgb_batch(n, 32, seed=3)):
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / split / f"{i}.png")
    (root / "train" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    return root


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every file the screening decodes."""
    seen: list[Path] = []
    check = screening.check_decodes

    def counting(path: Path) -> str | None:
        seen.append(path)
        return check(path)

    monkeypatch.setattr(screening, "check_decodes", counting)
    return seen


def test_screening_in_parallel_finds_the_broken_file(folder: Path, decodes: list[Path]):
    good, bad = screening.screen_folder(folder / "train", workers=2)
    assert len(good) == 5 and list(bad) == [folder / "train" / "broken.jpg"]
    assert len(decodes) == 6


def test_cached_verdicts_are_reused_and_changed_files_rescreened(folder: Path, decodes: list[Path]):
    first = screening.screen_folder(folder / "train", workers=2)
    decodes.clear()
    assert screening.screen_folder(folder / "train", workers=2) == first
    assert decodes == []  # nothing decoded the second time
    victim = folder / "train" / "0.png"
    victim.write_bytes(b"not a png any more")
    os.utime(victim, ns=(0, 10**18))
    good, bad = screening.screen_folder(folder / "train", workers=2)
    assert decodes == [victim] and victim in bad and len(good) == 4


def test_datamodule_screens_in_prepare_data_and_setup_decodes_nothing(folder: Path, decodes: list[Path]):
    data = FolderDataModule(root=str(folder), image_size=32, batch_size=2)
    data.prepare_data()  # Lightning runs this once per machine, before any rank's setup
    assert len(decodes) == 8
    decodes.clear()
    other_rank = FolderDataModule(root=str(folder), image_size=32, batch_size=2)
    with pytest.warns(UserWarning, match="broken.jpg"):
        other_rank.setup("fit")
    assert decodes == []
    assert len(other_rank.train_set) + len(other_rank.val_set) == 5
