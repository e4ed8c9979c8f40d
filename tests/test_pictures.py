"""Reading and writing pictures: the pixel cap before decoding, clean messages, animations, no overwriting."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorlab.inference.pictures import (
    PictureError,
    collect_inputs,
    read_picture,
    to_image,
    write_picture,
)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` 8-bit gray pixels but carries almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)  # a few rows: decoding would fail as truncated, not succeed
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_huge_declared_size_is_refused_from_the_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(12000, 12000))  # 144 MP declared in a few hundred bytes
    assert path.stat().st_size < 2000
    with pytest.raises(
        PictureError, match=r"12000 x 12000 = 144\.0 megapixels is over the 50 megapixel limit"
    ):
        read_picture(path)
    with pytest.raises(PictureError, match="over the 50 megapixel limit"):
        read_picture(png_header_only(20000, 20000))  # PIL's own bomb check fires first: same kind of message
    with pytest.raises(PictureError, match="over the 0.001 megapixel limit"):
        read_picture(png_header_only(40, 40), max_megapixels=0.001)


def test_clean_messages_for_bad_files(tmp_path):
    with pytest.raises(PictureError) as exc:
        read_picture(b"not an image")
    assert str(exc.value) == "not a readable image (unknown or damaged format)"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, format="JPEG")
    with pytest.raises(PictureError) as exc:
        read_picture(buffer.getvalue()[:300])
    assert "not a readable image" in str(exc.value) and "BytesIO" not in str(exc.value)
    with pytest.raises(PictureError, match="file not found"):
        read_picture(tmp_path / "missing.png")


def test_animated_gif_gives_its_first_frame_with_a_note(tmp_path):
    frames = [Image.new("RGB", (20, 10), colour) for colour in ("red", "blue", "green")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    picture = read_picture(tmp_path / "a.gif")
    assert picture.size == (10, 20) and picture.format == "png"
    assert picture.note == "animated (3 frames): only the first frame was colorized"
    assert picture.rgb[0, 0, 0] > 200 and picture.rgb[0, 0, 2] < 50, "the first (red) frame"
    frames[0].save(tmp_path / "still.gif")
    assert read_picture(tmp_path / "still.gif").note is None


def test_alpha_kept_apart_and_flattened_onto_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    picture = read_picture(tmp_path / "clear.png")
    assert picture.alpha is not None and (picture.rgb == 0).all()
    assert (picture.on_white() == 255).all()
    assert to_image(picture.rgb, picture.alpha, keep_alpha=False).mode == "RGB"
    assert to_image(picture.rgb, picture.alpha, keep_alpha=True).mode == "RGBA"
    Image.new("LA", (4, 4), (100, 128)).save(tmp_path / "la.png")
    la = read_picture(tmp_path / "la.png")
    assert (la.alpha == 128).all() and (la.rgb == 100).all()


def test_writing_never_replaces_a_file(tmp_path):
    target = tmp_path / "photo.png"
    target.write_bytes(b"the user's own file")
    image = Image.new("RGB", (4, 4), "red")
    first = write_picture(image, target, "png")
    second = write_picture(image, target, "png")
    assert (first, second) == (tmp_path / "photo-1.png", tmp_path / "photo-2.png")
    assert target.read_bytes() == b"the user's own file"
    assert Image.open(first).size == (4, 4)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no pictures here")
    with pytest.raises(PictureError, match=r"no pictures in .*empty \(looked for \.jpg"):
        collect_inputs([tmp_path / "empty"])
    Image.new("RGB", (4, 4)).save(tmp_path / "p.gif")
    assert collect_inputs([tmp_path / "p.gif"]) == [(tmp_path / "p.gif", Path("p.gif"))]
