"""Read the guidance a person gives (a hints file, a reference photo) with one clear error for each bad input."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import torch

from colorlab.guidance import MAX_REFERENCE_MEGAPIXELS, GuidanceError, Hint, load_hints, reference_tensor
from colorlab.inference.pictures import PictureError, read_picture

REFERENCE_SIDE = 256  # references are matched at about the model's own scale


def read_reference(
    source: str | os.PathLike | bytes | BinaryIO, max_megapixels: float = MAX_REFERENCE_MEGAPIXELS
) -> torch.Tensor:
    """A reference photo (file, bytes) -> RGB ``(1, 3, h, w)`` in [0, 1], its shorter side at most
    :data:`REFERENCE_SIDE`; raises :class:`GuidanceError` for a gray, huge or unreadable one."""
    try:
        picture = read_picture(source, max_megapixels)
    except PictureError as exc:
        raise GuidanceError(f"reference photo: {exc}") from None
    return reference_tensor(picture.on_white(), REFERENCE_SIDE)


def read_hints(path: str | os.PathLike, size: tuple[int, int]) -> list[Hint]:
    """The hints of a JSON file for a picture of ``size`` ``(H, W)``; raises :class:`GuidanceError`."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise GuidanceError(f"cannot read the hints file {path}: {exc}") from None
    return load_hints(text, size)
