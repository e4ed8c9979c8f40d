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
    Output,
    PictureError,
    collect_inputs,
    read_picture,
    row_pieces,
    write_picture,
)
from colorlab.inference.png import write_png


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
    assert Output.of(picture.rgb, picture.alpha).image(keep_alpha=False).mode == "RGB"
    assert Output.of(picture.rgb, picture.alpha).image(keep_alpha=True).mode == "RGBA"
    Image.new("LA", (4, 4), (100, 128)).save(tmp_path / "la.png")
    la = read_picture(tmp_path / "la.png")
    assert (la.alpha == 128).all() and (la.rgb == 100).all()


def test_writing_never_replaces_a_file(tmp_path):
    target = tmp_path / "photo.png"
    target.write_bytes(b"the user's own file")
    image = Output.of(np.full((4, 4, 3), 200, np.uint8))
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


def _random(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize(("height", "width", "alpha", "pixels"), [
    (7, 13, False, 40),  # bands of 3 whole rows
    (5, 11, True, 4),  # parts of one row (the picture is wider than a piece)
    (3, 1000, False, 256),  # a strip: 4 parts per row, the last one short
    (9, 1, True, 1),  # one pixel a piece
    (1, 1, False, 1 << 18),
    (33, 17, True, 1 << 18),  # the whole picture in one piece
])  # fmt: skip
def test_png_writer_reads_back_as_what_pillow_writes(tmp_path, height, width, alpha, pixels):
    """The streamed PNG decodes (with Pillow) to exactly the pixels Pillow's own PNG of them decodes to: RGB and
    RGBA, odd sizes, whole-row bands and parts of rows."""
    rgb, a = _random((height, width, 3), height), _random((height, width), width) if alpha else None
    output = Output.of(rgb, a)
    with open(tmp_path / "ours.png", "wb") as f:
        write_png(f, (height, width), output.pieces(keep_alpha=True, pixels=pixels))
    output.image(keep_alpha=True).save(tmp_path / "pillow.png")
    with Image.open(tmp_path / "ours.png") as ours, Image.open(tmp_path / "pillow.png") as pillow:
        assert (
            (ours.mode, ours.size)
            == (pillow.mode, pillow.size)
            == ("RGBA" if alpha else "RGB", (width, height))
        )
        assert np.array_equal(np.asarray(ours), np.asarray(pillow))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "ours.png"))[..., :3], rgb)


def test_row_pieces_cover_a_picture_in_row_major_order_within_the_budget():
    for height, width, pixels in [(7, 13, 40), (3, 1000, 256), (4, 5, 1), (10, 10, 1000)]:
        covered = np.zeros((height, width), int)
        last = (-1, -1)
        for rows, cols in row_pieces(height, width, pixels):
            assert (rows.stop - rows.start) * (cols.stop - cols.start) <= pixels
            assert rows.stop - rows.start == 1 or (cols.start, cols.stop) == (0, width)
            assert (rows.start, cols.start) > last
            last = (rows.start, cols.start)
            covered[rows, cols] += 1
        assert (covered == 1).all()


def test_png_writer_refuses_pieces_that_do_not_cover_the_picture(tmp_path):
    rgb = _random((4, 6, 3), 0)
    pieces = list(Output.of(rgb).pieces(keep_alpha=True, pixels=6))
    with pytest.raises(ValueError, match="out of order"), open(tmp_path / "a.png", "wb") as f:
        write_png(f, (4, 6), [pieces[1], pieces[0], *pieces[2:]])
    with pytest.raises(ValueError, match="held 18 of the 24 pixels"), open(tmp_path / "b.png", "wb") as f:
        write_png(f, (4, 6), pieces[:3])
    with pytest.raises(ValueError, match="expected uint8 pieces"), open(tmp_path / "c.png", "wb") as f:
        write_png(f, (4, 6), [(slice(0, 4), slice(0, 6), rgb.astype(np.float32))])


@pytest.mark.parametrize(
    ("fmt", "mode"), [("jpg", "RGB"), ("webp", "RGBA"), ("bmp", "RGB"), ("tif", "RGBA"), ("png", "RGBA")]
)
def test_every_format_is_written_with_alpha_kept_or_flattened(tmp_path, fmt, mode):
    rgb, alpha = _random((10, 12, 3), 1), np.full((10, 12), 255, np.uint8)
    alpha[:5] = 0  # the top half transparent: white where the format drops alpha
    written = write_picture(Output.of(rgb, alpha), tmp_path / f"out.{fmt}", fmt)
    with Image.open(written) as img:
        assert (img.mode, img.size) == (mode, (12, 10))
        pixels = np.asarray(img)
    if mode == "RGB" and fmt != "jpg":
        assert (pixels[:5] == 255).all() and np.array_equal(pixels[5:], rgb[5:])
    if fmt in ("png", "tif"):  # lossless, alpha kept
        assert np.array_equal(pixels[..., :3], rgb) and np.array_equal(pixels[..., 3], alpha)


def test_a_write_that_fails_leaves_no_file(tmp_path):
    """An Output is computed as it is written: a failure half-way removes the half-written file."""

    def failing(rows: slice, cols: slice) -> np.ndarray:
        if rows.start > 0:
            raise RuntimeError("the merge failed")
        return np.zeros((rows.stop - rows.start, cols.stop - cols.start, 3), np.uint8)

    for fmt in ("png", "jpg"):
        with pytest.raises(RuntimeError, match="the merge failed"):
            write_picture(Output((600, 1000), failing), tmp_path / f"out.{fmt}", fmt)
    assert list(tmp_path.iterdir()) == []
