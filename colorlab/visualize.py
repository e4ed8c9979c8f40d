"""Image grids a person can look at (gray | prediction | truth), and logging them to any logger."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

from colorlab.color import float_to_uint8

LABEL_HEIGHT = 14


def comparison_grid(columns: Sequence[torch.Tensor], labels: Sequence[str] | None = None) -> np.ndarray:
    """Rows of images side by side: ``columns`` are ``(B, 3, H, W)`` float RGB in [0, 1] of one size.

    Returns an ``(H', W', 3)`` uint8 array; with ``labels`` a caption strip names each column.
    """
    if labels is not None and len(labels) != len(columns):
        raise ValueError(f"{len(columns)} columns but {len(labels)} labels")
    rows = torch.stack([c.detach().float().cpu() for c in columns], dim=1).flatten(0, 1)
    grid = make_grid(rows, nrow=len(columns), padding=2, pad_value=1.0)
    image = float_to_uint8(grid).permute(1, 2, 0).numpy()
    if labels is None:
        return image
    width = columns[0].shape[-1] + 2
    strip = Image.new("RGB", (image.shape[1], LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(strip)
    for i, label in enumerate(labels):
        draw.text((2 + i * width + 2, 1), label, fill="black")
    return np.concatenate([np.asarray(strip), image], axis=0)


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an ``(H, W, 3)`` uint8 array as PNG, creating folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


@rank_zero_only
def log_image(logger: object, key: str, image: np.ndarray, step: int, caption: str = "") -> None:
    """Send an image to a Lightning logger: W&B and TensorBoard natively, file loggers as PNG files.

    Under DDP only rank 0 logs, like Lightning's loggers themselves."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    if isinstance(logger, WandbLogger):
        logger.log_image(key=key, images=[image], caption=[caption] if caption else None)
    elif isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(key, image, step, dataformats="HWC")
    elif getattr(logger, "log_dir", None):
        save_png(image, Path(logger.log_dir) / "images" / f"{key.replace('/', '_')}_step{step:06d}.png")
