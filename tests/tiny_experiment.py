"""A tiny experiment for tests of tools that work on runs (evaluate, compare, sweeps, W&B): a scratch UNet
with 4 channels regressing ab on a folder of 32 px crops of real photos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from tests.helpers import fixed_rgb_batch

SIZE = 32


def write_photos(folder: Path, n: int = 4, size: int = SIZE) -> Path:
    """``n`` real-photo crops as lossless PNGs, the same ones in ``folder/train`` and ``folder/val``."""
    for split in ("train", "val"):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(fixed_rgb_batch(n, size, seed=1)):
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / split / f"crop{i}.png")
    return folder


def tiny_config(root: Path, photos: Path, name: str = "tiny", lr: float = 0.01, **trainer: Any) -> Path:
    """Write ``root/NAME.yaml``: the tiny experiment on ``photos`` (Adam at ``lr``), runs under ``root/runs``,
    W&B disabled; ``trainer`` entries override the trainer section."""
    config = {
        "seed_everything": 0,
        "run": {"name": name, "root": str(root / "runs"), "wandb": "disabled"},
        "trainer": {
            "accelerator": "cpu",
            "max_steps": 4,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            **trainer,
        },
        "model": {
            "class_path": "colorlab.approaches.regression.RegressionColorizer",
            "init_args": {
                "net": {"class_path": "colorlab.models.unet.UNet", "init_args": {"base_channels": 4, "depth": 2}},
                "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": lr}},
            },
        },
        "data": {
            "class_path": "colorlab.data.FolderDataModule",
            "init_args": {"root": str(photos), "image_size": SIZE, "batch_size": 4, "hflip": False},
        },
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
