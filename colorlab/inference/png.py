"""A PNG writer fed in row-major pieces, so no whole picture and no whole row need exist at once (issue 24).

Why not Pillow's encoder: it takes the whole picture as a PIL image (4 bytes a pixel) and keeps several
full-row buffers for its per-row filter choice: 0.33 GB for one row of a 2 x 24,000,000 px strip, on top of
the 0.19 GB image. pypng takes whole rows too. PNG itself needs neither: the filtered rows are one zlib
stream, which can be fed any number of bytes at a time.

Every row uses the Sub filter (type 1: each byte minus the same channel of the pixel to its left), the one
filter that needs nothing from the row above, so a row can arrive in pieces. On photos its files are within
about 10 % of Pillow's adaptive choice (Set14: 0.94x to 1.12x), far closer than no filter (1.18x to 1.44x).
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {3: 2, 4: 6}  # channels -> PNG colour type: RGB, RGBA
SUB = 1
COMPRESS_LEVEL = 6  # Pillow's default
IDAT_BYTES = 1 << 20


def _chunk(file: BinaryIO, kind: bytes, data: bytes | bytearray) -> None:
    file.write(struct.pack(">I", len(data)) + kind)
    file.write(data)
    file.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))


def _check(
    rows: slice, cols: slice, pixels: np.ndarray, done: int, size: tuple[int, int], channels: int
) -> None:
    """Raise ValueError unless the piece is the next one of a row-major cover of ``size`` (``done`` pixels so
    far): whole rows, or the next part of one row."""
    height, width = size
    shape = (rows.stop - rows.start, cols.stop - cols.start, channels)
    whole_rows_or_part_of_one = shape[0] == 1 or shape[1] == width
    if (
        (rows.start, cols.start) != divmod(done, width)
        or pixels.shape != shape
        or cols.stop > width
        or (not whole_rows_or_part_of_one)
    ):
        raise ValueError(f"piece {rows}, {cols} of shape {pixels.shape} out of order for {width} x {height}")


def write_png(
    file: BinaryIO, size: tuple[int, int], pieces: Iterable[tuple[slice, slice, np.ndarray]]
) -> None:
    """Write an 8-bit RGB or RGBA PNG of ``size`` ``(height, width)`` from ``(rows, cols, pixels)`` pieces.

    ``pixels`` is uint8 ``(len(rows), len(cols), 3 or 4)``. The pieces cover the picture in row-major order,
    each either whole rows (``cols`` the full width) or a part of one row, left to right; they are read one
    at a time. Raises ValueError when they do not (the file would not be a valid PNG).
    """
    pieces = iter(pieces)
    first = next(pieces, None)
    channels = first[2].shape[-1] if first is not None and first[2].dtype == np.uint8 else 0
    if channels not in COLOUR_TYPES:
        raise ValueError(f"expected uint8 pieces (rows, cols, 3 or 4) of a {size[1]} x {size[0]} picture")
    file.write(SIGNATURE)
    _chunk(file, b"IHDR", struct.pack(">IIBBBBB", size[1], size[0], 8, COLOUR_TYPES[channels], 0, 0, 0))
    compressor, pending, done = zlib.compressobj(COMPRESS_LEVEL), bytearray(), 0
    left = np.zeros(channels, np.uint8)  # the last pixel written: the left neighbour of a piece in mid-row
    for rows, cols, pixels in itertools.chain([first], pieces):
        _check(rows, cols, pixels, done, size, channels)
        flat = pixels.reshape(pixels.shape[0], -1)
        start = 1 if cols.start == 0 else 0  # a row starts: its filter-type byte first
        filtered = np.empty((flat.shape[0], start + flat.shape[1]), np.uint8)
        filtered[:, :start] = SUB
        filtered[:, start : start + channels] = flat[:, :channels] - (left if cols.start else 0)  # modulo 256
        filtered[:, start + channels :] = flat[:, channels:] - flat[:, :-channels]
        left = flat[-1, -channels:].copy()
        pending += compressor.compress(filtered)
        done += pixels.shape[0] * pixels.shape[1]
        if len(pending) >= IDAT_BYTES:
            _chunk(file, b"IDAT", pending)
            pending.clear()
    if done != size[0] * size[1]:
        raise ValueError(
            f"the pieces held {done} of the {size[0] * size[1]} pixels of a {size[1]} x {size[0]} picture"
        )
    pending += compressor.flush()
    _chunk(file, b"IDAT", pending)
    _chunk(file, b"IEND", b"")
