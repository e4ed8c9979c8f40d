"""Read and write the pictures inference works on: every mode, a pixel cap checked before decoding, no overwriting.

Reading: any PIL-readable file (or bytes) becomes an upright 8-bit RGB array plus its alpha, whatever its mode
(gray, RGBA, LA, palette, CMYK, 16-bit, EXIF-rotated). The pixel count is read from the header and checked
against a cap *before* any pixel is decoded, so a small file that declares a huge picture costs nothing.
An animated picture (GIF, APNG, WebP) gives its first frame, with a note saying so.

Writing: a result never replaces an existing file. The file is created exclusively (``open(..., "xb")``);
when the name is taken, ``name-1.ext``, ``name-2.ext``... is used instead and the caller is told. A result is
an :class:`Output` whose pixels may be computed tile by tile as they are written: a PNG is written in pieces
of :data:`PIECE_PIXELS`, so neither the whole result nor a whole row of it need exist at once.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from colorlab.data.images import IMAGE_EXTENSIONS, list_images, to_rgb
from colorlab.inference.png import write_png

# One cap for colorize, evaluate and serve: 24 MP photos fit within the memory goal with room to spare.
MAX_MEGAPIXELS = 50.0
INPUT_EXTENSIONS = (*IMAGE_EXTENSIONS, ".gif")
# Output formats: the name users type -> (PIL format, file suffixes, keeps alpha).
FORMATS = {
    "jpg": ("JPEG", (".jpg", ".jpeg"), False),
    "png": ("PNG", (".png",), True),
    "webp": ("WEBP", (".webp",), True),
    "bmp": ("BMP", (".bmp",), False),
    "tif": ("TIFF", (".tif", ".tiff"), True),
}
_FORMAT_OF_PIL = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_ORIENTATION = 0x0112  # the EXIF tag
WHITE = 255
# Output pictures are computed and written in pieces of at most this many pixels (whatever their aspect).
PIECE_PIXELS = 1 << 18


class PictureError(ValueError):
    """A picture that cannot be used, with a message for the person who gave it."""


@dataclass
class Picture:
    """A decoded input.

    Attributes:
        rgb: upright RGB ``(H, W, 3)`` uint8 (may be read-only); under transparent pixels, the file's own
            colours.
        alpha: its alpha ``(H, W)`` uint8, or None for an opaque picture.
        format: the file's format as a :data:`FORMATS` key (``png`` for formats colorlab does not write).
        note: something the person should know (e.g. only the first frame of an animation was used).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    format: str
    note: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``."""
        return self.rgb.shape[0], self.rgb.shape[1]

    def on_white(self) -> np.ndarray:
        """The picture as a viewer shows it on a white page: uint8 RGB ``(H, W, 3)`` (itself when opaque)."""
        return on_white(self.rgb, self.alpha)


def on_white(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """THE alpha rule: RGB ``(H, W, 3)`` (uint8, or float in [0, 1]) composited by uint8 ``alpha`` ``(H, W)`` onto
    white, in the same dtype (``rgb`` itself when opaque)."""
    if alpha is None:
        return rgb
    out = np.empty_like(rgb)
    for start in range(0, rgb.shape[0], 256):  # strips: no full-size 16-bit or float copies
        rows = slice(start, start + 256)
        if rgb.dtype == np.uint8:
            a = alpha[rows, :, None].astype(np.uint16)
            out[rows] = (rgb[rows].astype(np.uint16) * a + WHITE * (255 - a) + 127) // 255
        else:
            a = alpha[rows, :, None] / 255.0
            out[rows] = rgb[rows] * a + (1.0 - a)
    return out


def _clean(exc: BaseException) -> str:
    """PIL's message without the ``<_io.BytesIO object at 0x...>`` it puts in for in-memory files."""
    text = re.sub(r"\s*<_io\.\w+ object at 0x[0-9a-f]+>", "", str(exc)).strip()
    return text or type(exc).__name__


def check_pixels(width: int, height: int, max_megapixels: float = MAX_MEGAPIXELS) -> None:
    """Raise :class:`PictureError` when ``width x height`` is over the cap."""
    megapixels = width * height / 1e6
    if not megapixels <= max_megapixels:  # written so that a NaN cap refuses instead of letting all through
        raise PictureError(
            f"{width} x {height} = {megapixels:.1f} megapixels is over the {max_megapixels:g} megapixel limit"
        )


def read_picture(
    source: str | os.PathLike | bytes | BinaryIO, max_megapixels: float = MAX_MEGAPIXELS
) -> Picture:
    """Decode a file, a file object or bytes to a :class:`Picture`; raises :class:`PictureError` if unusable.

    The size is checked from the header (``Image.open`` reads no pixels) before ``load()`` decodes anything.
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        # PIL refuses outright above 2x its own MAX_IMAGE_PIXELS; below that, our cap (checked next) decides,
        # so PIL's warning is noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source)
        with img:
            check_pixels(img.width, img.height, max_megapixels)
            frames = getattr(img, "n_frames", 1)
            img.seek(0)
            img.load()
            return _to_picture(img, frames)
    except PictureError:
        raise
    except Image.DecompressionBombError as exc:
        raise PictureError(f"over the {max_megapixels:g} megapixel limit ({_clean(exc)})") from exc
    except FileNotFoundError as exc:
        raise PictureError(f"file not found: {exc.filename}") from exc
    except UnidentifiedImageError as exc:
        raise PictureError("not a readable image (unknown or damaged format)") from exc
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError...) for damaged files
        raise PictureError(f"not a readable image ({_clean(exc)})") from exc


def _to_picture(img: Image.Image, frames: int) -> Picture:
    """Decoded PIL image -> Picture, making as few full-size copies as possible (a 24 MP photo is 72 MB each)."""
    fmt = _FORMAT_OF_PIL.get(img.format or "", "png")
    note = f"animated ({frames} frames): only the first frame was colorized" if frames > 1 else None
    if img.getexif().get(_ORIENTATION, 1) != 1:
        img = ImageOps.exif_transpose(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode not in _ALPHA_MODES:
        return Picture(pil_to_array(img if img.mode == "RGB" else to_rgb(img)), None, fmt, note)
    rgba = np.asarray(img.convert("RGBA"))
    return Picture(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]), fmt, note)


def pil_to_array(img: Image.Image, pixels: int = 1 << 20) -> np.ndarray:
    """A decoded PIL image -> uint8 array, copied a tile at a time (``np.asarray`` goes through one full-size
    ``bytes`` copy first: 144 MB more at the peak for a 48 MP picture)."""
    bands = len(img.getbands())
    out = np.empty((img.height, img.width, bands) if bands > 1 else (img.height, img.width), np.uint8)
    rows = max(1, min(img.height, pixels // max(1, img.width)))
    cols = max(1, pixels // rows)
    for top in range(0, img.height, rows):
        for left in range(0, img.width, cols):
            box = (left, top, min(img.width, left + cols), min(img.height, top + rows))
            out[box[1] : box[3], box[0] : box[2]] = np.asarray(img.crop(box))
    return out


Tile = Callable[[slice, slice], np.ndarray]


@dataclass
class Output:
    """A picture to write: its size, a function giving its uint8 RGB ``(rows, cols, 3)`` for any tile (so a
    result can be computed tile by tile while it is written, never whole) and its alpha ``(H, W)`` or None."""

    size: tuple[int, int]
    tile: Tile
    alpha: np.ndarray | None = None

    @classmethod
    def of(cls, rgb: np.ndarray, alpha: np.ndarray | None = None) -> Output:
        """A picture already in memory: uint8 RGB ``(H, W, 3)`` and its alpha."""
        return cls((rgb.shape[0], rgb.shape[1]), lambda rows, cols: rgb[rows, cols], alpha)

    def pixels(self, rows: slice, cols: slice, keep_alpha: bool) -> np.ndarray:
        """uint8 RGBA ``(rows, cols, 4)`` of a tile, or RGB with any transparency flattened onto white."""
        rgb, alpha = self.tile(rows, cols), self.alpha
        if alpha is None:
            return rgb
        return np.dstack([rgb, alpha[rows, cols]]) if keep_alpha else on_white(rgb, alpha[rows, cols])

    def pieces(self, keep_alpha: bool, pixels: int = PIECE_PIXELS) -> Iterator[tuple[slice, slice, np.ndarray]]:
        """``(rows, cols, pixels)`` of the whole picture in row-major pieces (see :func:`row_pieces`)."""
        for rows, cols in row_pieces(*self.size, pixels):
            yield rows, cols, self.pixels(rows, cols, keep_alpha)

    def rgb(self) -> np.ndarray:
        """The whole uint8 RGB ``(H, W, 3)``, alpha not applied."""
        return self._whole(3, self.tile)

    def image(self, keep_alpha: bool) -> Image.Image:
        """The whole picture as a PIL image (RGBA when it has alpha and ``keep_alpha``; else RGB on white)."""
        channels = 4 if keep_alpha and self.alpha is not None else 3
        return Image.fromarray(self._whole(channels, lambda rows, cols: self.pixels(rows, cols, keep_alpha)))

    def _whole(self, channels: int, tile: Tile) -> np.ndarray:
        out = np.empty((*self.size, channels), np.uint8)
        for rows, cols in row_pieces(*self.size):
            out[rows, cols] = tile(rows, cols)
        return out


def row_pieces(height: int, width: int, pixels: int = PIECE_PIXELS) -> Iterator[tuple[slice, slice]]:
    """``(rows, cols)`` covering a picture in row-major order, at most ``pixels`` each: whole rows in bands, or
    parts of one row for a picture wider than ``pixels`` (the order a PNG's rows are written in)."""
    rows = max(1, pixels // width)
    cols = width if rows > 1 else min(width, pixels)
    for top in range(0, height, rows):
        for left in range(0, width, cols):
            yield slice(top, min(height, top + rows)), slice(left, min(width, left + cols))


def free_path(path: Path) -> Path:
    """``path`` if no file is there, else the first free ``stem-N.suffix`` beside it."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def write_picture(picture: Output, path: Path, fmt: str) -> Path:
    """Write ``picture`` in ``fmt`` (a :data:`FORMATS` key) at ``path`` or, when taken, the next free name.

    Never replaces a file: the file is created exclusively, so a file that appears between the check and
    the write (another process) is not replaced either; a write that fails removes its own file. PNG is
    written piece by piece as the picture is computed (:mod:`colorlab.inference.png`); the other formats
    from a whole PIL image. Returns the path written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    name, _, keep_alpha = FORMATS[fmt]
    while True:
        target = free_path(path)
        try:
            file = open(target, "xb")  # noqa: SIM115 - closed below, and removed when the write fails
        except FileExistsError:
            continue  # taken in the meantime: look again
        try:
            with file:
                if fmt == "png":
                    write_png(file, picture.size, picture.pieces(keep_alpha))
                else:
                    options = {"quality": 95} if fmt in ("jpg", "webp") else {}
                    picture.image(keep_alpha).save(file, format=name, **options)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target


def output_suffix(source: Path, fmt: str) -> str:
    """Keep the input's own suffix when it already names ``fmt`` (``.jpeg`` stays ``.jpeg``)."""
    suffixes = FORMATS[fmt][1]
    return source.suffix.lower() if source.suffix.lower() in suffixes else suffixes[0]


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """``(file, path relative to the output folder)`` for every file given and every picture under folders.

    Raises PictureError for a folder without pictures (nothing would happen, silently, otherwise).
    """
    found: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = list_images(item, INPUT_EXTENSIONS)
            if not files:
                raise PictureError(f"no pictures in {item} (looked for {', '.join(INPUT_EXTENSIONS)})")
            found += [(path, path.relative_to(item)) for path in files]
        else:
            found.append((item, Path(item.name)))  # a missing file is reported when it is read
    return found


def check_output_dir(out_dir: Path, inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse an output folder that is an input folder or lies inside one (outputs would become inputs)."""
    out = out_dir.resolve()
    for item in map(Path, inputs):
        if item.is_dir() and (out == item.resolve() or item.resolve() in out.parents):
            raise PictureError(
                f"output folder {out_dir} is inside the input folder {item}; choose another -o"
            )
