"""Shared fixtures: offline W&B, few threads, a fixed tiny batch of real photo crops."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Screening verdicts of photo folders (colorlab.data.screening) go to a scratch cache, not ~/.cache.
os.environ.setdefault("COLORLAB_CACHE", tempfile.mkdtemp(prefix="colorlab-test-cache-"))
torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]
PHOTOS = Path(os.environ.get("COLORLAB_DATA", REPO.parent / "shared" / "data" / "photos"))


@pytest.fixture
def rgb_uint8() -> torch.Tensor:
    """A fixed batch of four 32x32 crops of real photos (scikit-image samples) as uint8 RGB."""
    from tests.helpers import fixed_rgb_batch

    return fixed_rgb_batch(4, 32)


@pytest.fixture
def lab_batch_32(rgb_uint8: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same batch as the approaches see it: {"L", "ab", "rgb"}."""
    from colorlab.color import lab_batch

    return lab_batch(rgb_uint8)


@pytest.fixture
def photos_dir() -> Path:
    """../shared/data/photos (or $COLORLAB_DATA); skips the test when absent."""
    if not (PHOTOS / "train").is_dir():
        pytest.skip(f"real photos not found at {PHOTOS}")
    return PHOTOS


@pytest.fixture(scope="session")
def tiny_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A photo folder like ../shared/data/photos but tiny: train/ (6) and val/ (2) real 80x80 crops."""
    from PIL import Image

    from tests.helpers import fixed_rgb_batch

    root = tmp_path_factory.mktemp("photos")
    crops = fixed_rgb_batch(7, 80).permute(0, 2, 3, 1).numpy()
    for split, indices in (("train", range(6)), ("val", range(5, 7))):
        (root / split).mkdir()
        for i in indices:
            Image.fromarray(crops[i]).save(root / split / f"{i}.jpg", quality=95)
    return root
