"""Decode any image file to 8-bit RGB, whatever its mode, and find the files that will not decode."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


class DataFolderError(ValueError):
    """A data folder that holds no usable images (the commands print its message, not a traceback)."""


def _high_bit_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit or 32-bit integer / float grayscale -> 8-bit 'L', scaled by the format's full range."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode in _SIXTEEN_BIT_MODES or (img.mode == "I" and arr.max(initial=0) > 255):
        arr = arr / 65535.0
    elif img.mode == "F" and arr.max(initial=0) <= 1.0:
        pass  # float images in [0, 1]
    else:
        arr = arr / 255.0
    return Image.fromarray((arr.clip(0, 1) * 255).round().astype(np.uint8), "L")


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any PIL image -> RGB: EXIF orientation applied, 16-bit scaled, CMYK/palette converted, alpha flattened.

    Transparent pixels are composited over ``background`` (colour of the page behind the photo).
    """
    img = ImageOps.exif_transpose(img)
    if img.mode in (*_SIXTEEN_BIT_MODES, "I", "F"):
        img = _high_bit_depth_to_l(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        img = Image.alpha_composite(canvas, rgba)
    return img.convert("RGB")


def load_rgb(path: str | os.PathLike, min_side: int | None = None) -> np.ndarray:
    """Decode ``path`` to an ``(H, W, 3)`` uint8 RGB array (raises OSError/ValueError on a bad file).

    ``min_side``: the caller will shrink the picture to this shorter side anyway, so a JPEG at least twice
    that size is decoded at a reduced scale (1/2, 1/4 or 1/8, in libjpeg's DCT) that still covers it: a 4x
    to 50x cheaper decode, and the shrink that follows has less to do.
    """
    with Image.open(path) as img:
        if min_side and img.format == "JPEG" and min(img.size) >= 2 * min_side:
            scale = min_side / min(img.size)
            img.draft(img.mode, (math.ceil(img.width * scale), math.ceil(img.height * scale)))
        img.load()
        return np.array(to_rgb(img))


def list_images(root: str | os.PathLike, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """All files under ``root`` (recursive, sorted) whose suffix is an image extension."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    suffixes = {e.lower() for e in extensions}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def check_decodes(path: str | os.PathLike) -> str | None:
    """Return None if ``path`` decodes to RGB, else the reason it does not (cheap: JPEGs decode at 1/8)."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (img.width // 8 or 1, img.height // 8 or 1))
            img.load()
            to_rgb(img)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError...) for bad files
        return f"{type(exc).__name__}: {exc}"
    return None


def split_decodable(paths: Iterable[Path]) -> tuple[list[Path], dict[Path, str]]:
    """Partition ``paths`` into those that decode and a {path: reason} map of those that do not."""
    good, bad = [], {}
    for path in paths:
        reason = check_decodes(path)
        if reason is None:
            good.append(path)
        else:
            bad[path] = reason
    return good, bad
