"""Bounded memory by design (issue 24): every full-resolution path works in tiles whose size does not depend
on the picture's aspect, so a 2 x 24,000,000 px strip costs what a square of the same pixels costs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from colorlab.color import lab_normalized_to_rgb, upsample_ab
from colorlab.inference import pipeline
from colorlab.inference.pictures import PIECE_PIXELS, Picture
from colorlab.inference.pipeline import Colorizer, picture_l


class _Fixed(torch.nn.Module):
    """A colorizer whose ab is a fixed random field (records nothing)."""

    def __init__(self, ab: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.ab = ab

    def predict_lab(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return L, self.ab.expand(L.shape[0], -1, -1, -1) + 0 * self.weight


def test_merge_of_a_long_thin_strip_works_in_bounded_tiles(monkeypatch) -> None:
    """A 3 x 6000 px strip with 256-pixel tiles: no float array wider than a tile is made, and the result is
    the whole-picture merge."""
    height, width, strip_pixels = 3, 6000, 256
    rgb = (np.random.default_rng(0).random((height, width, 3)) * 255).astype(np.uint8)
    ab = (torch.rand(1, 2, 4, 64, generator=torch.Generator().manual_seed(0)) - 0.5) * 1.6
    seen: list[tuple[int, ...]] = []
    original = pipeline.lab_normalized_to_rgb

    def recording(L: torch.Tensor, ab_tile: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(ab_tile.shape))
        return original(L, ab_tile)

    monkeypatch.setattr(pipeline, "lab_normalized_to_rgb", recording)
    colorizer = Colorizer(_Fixed(ab), side=4, strip_pixels=strip_pixels)
    out = colorizer([Picture(rgb, None, "png")], dtype=torch.float32)[0]
    assert seen and max(s[-2] * s[-1] for s in seen) <= strip_pixels, max(seen)
    whole = lab_normalized_to_rgb(picture_l(rgb), upsample_ab(ab, (height, width)))[0].permute(1, 2, 0)
    assert np.abs(out - whole.numpy()).max() < 1e-4


def test_picture_l_converts_tiles_not_rows(monkeypatch) -> None:
    rgb = (np.random.default_rng(1).random((2, 5000, 3)) * 255).astype(np.uint8)
    seen: list[int] = []
    original = pipeline.input_l
    monkeypatch.setattr(pipeline, "input_l", lambda x: seen.append(x.shape[-2] * x.shape[-1]) or original(x))
    L = picture_l(rgb, strip_pixels=400)
    monkeypatch.undo()
    assert max(seen) <= 400
    assert torch.allclose(L, picture_l(rgb, strip_pixels=10**9), atol=1e-5)


def test_tiled_scores_equal_the_whole_picture_scores_at_any_tile_size() -> None:
    from colorlab.inference.tiled_scores import tiled_image_scores
    from colorlab.metrics import image_scores

    g = torch.Generator().manual_seed(0)
    for shape in [(37, 53), (6, 40)]:
        truth = torch.rand(1, 3, *shape, generator=g)
        pred = (truth + 0.1 * torch.randn(1, 3, *shape, generator=g)).clamp(0, 1)
        whole = image_scores(pred, truth)
        for tile in (5, 16, 1000):
            tiled = tiled_image_scores(pred, truth, tile=tile)
            for key, value in whole.items():
                assert tiled[key] == pytest.approx(float(value), abs=1e-4), (shape, tile, key)


def test_scores_of_a_long_strip_read_bounded_tiles(monkeypatch) -> None:
    """SSIM, ΔE00 and LPIPS read tiles (plus SSIM's 5 px halo), never a row of a 12 x 3000 px strip."""
    from colorlab.inference import tiled_scores

    shapes: list[tuple[int, int]] = []
    original = tiled_scores.ssim_map
    monkeypatch.setattr(tiled_scores, "ssim_map", lambda p, t: shapes.append(p.shape[-2:]) or original(p, t))
    seen_lpips: list[tuple[int, int]] = []

    def pixel_lpips(p: torch.Tensor, t: torch.Tensor, normalize: bool) -> torch.Tensor:
        seen_lpips.append(p.shape[-2:])
        return (p - t).abs().mean().view(1, 1, 1, 1)

    truth = torch.rand(1, 3, 12, 3000, generator=torch.Generator().manual_seed(1))
    pred = truth.flip(-1)
    scores = tiled_scores.tiled_image_scores(pred, truth, lpips=pixel_lpips, tile=64)
    assert max(h * w for h, w in shapes) <= (64 + 10) ** 2
    assert max(h * w for h, w in seen_lpips) <= tiled_scores.LPIPS_TILE**2
    # LPIPS is a spatial mean: for a per-pixel stand-in the area-weighted tile mean is the whole mean.
    assert scores["lpips"] == pytest.approx(float((pred - truth).abs().mean()), rel=1e-5)


def test_too_small_pictures_are_named() -> None:
    from colorlab.inference.tiled_scores import too_small

    assert "too small to score" in too_small(1, 1)
    assert too_small(5, 400) and too_small(6, 6) is None


def _recording_merge(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record the (rows, cols) of every merged tile; refuse the whole-picture merge into an array."""
    seen: list[tuple[int, int]] = []
    original = pipeline.merge_tile

    def recording(
        L_of_rows: object, ab: torch.Tensor, size: tuple[int, int], rows: slice, cols: slice
    ) -> torch.Tensor:
        seen.append((rows.stop - rows.start, cols.stop - cols.start))
        return original(L_of_rows, ab, size, rows, cols)

    def whole(*args: object, **kwargs: object) -> None:
        raise AssertionError("a whole-picture merge was made")

    monkeypatch.setattr(pipeline, "merge_tile", recording)
    monkeypatch.setattr(pipeline, "merge", whole)
    return seen


def _strip(alpha: bool, seed: int) -> tuple[Picture, Colorizer]:
    """A random 2 x 600,000 px picture (wider than two output pieces) and a colorizer of random fixed ab."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (2, 600_000, 3), dtype=np.uint8)
    picture = Picture(rgb, rng.integers(0, 256, (2, 600_000), dtype=np.uint8) if alpha else None, "png")
    ab = torch.rand(1, 2, 4, 64, generator=torch.Generator().manual_seed(seed)) - 0.5
    return picture, Colorizer(_Fixed(ab), side=4)


@pytest.mark.parametrize("alpha", [False, True])
def test_a_strip_is_written_piece_by_piece_never_whole(monkeypatch, tmp_path, alpha) -> None:
    """colorize's writing of a 2 x 600,000 px strip: each merged tile is part of one row within the piece
    budget, no whole-picture merge is made, and the PNG holds the whole-picture result (and its alpha)."""
    from colorlab.inference.folders import colorize_files

    picture, colorizer = _strip(alpha, seed=3)
    expected = colorizer([picture])[0]
    rgba = np.dstack([picture.rgb, picture.alpha]) if alpha else picture.rgb
    Image.fromarray(rgba).save(tmp_path / "strip.png")
    seen = _recording_merge(monkeypatch)
    report = colorize_files([tmp_path / "strip.png"], [colorizer], tmp_path / "out", progress=False)
    assert not report.failed and report.written == [tmp_path / "out" / "strip.png"]
    assert seen and all(rows == 1 and rows * cols <= PIECE_PIXELS for rows, cols in seen), set(seen)
    with Image.open(report.written[0]) as written:
        pixels = np.asarray(written)
    assert np.array_equal(pixels[..., :3], expected)
    if alpha:
        assert np.array_equal(pixels[..., 3], picture.alpha)


def test_serve_writes_the_gray_input_and_the_result_piece_by_piece(monkeypatch, tmp_path) -> None:
    """serve's upload of a strip: the gray input and the result are merged tile by tile as they are written
    (before, both were whole PIL images held together with the whole result while the PNGs were encoded)."""
    pytest.importorskip("fastapi")
    from colorlab.inference.server import colorize_upload

    picture, colorizer = _strip(alpha=False, seed=4)
    expected = {"gray": pipeline.gray_picture(picture), "model": colorizer([picture])[0]}
    seen = _recording_merge(monkeypatch)
    done = colorize_upload([colorizer], picture, "strip", tmp_path)
    assert seen and all(rows == 1 and rows * cols <= PIECE_PIXELS for rows, cols in seen), set(seen)
    for key, name in (("gray", done["gray"]), ("model", done["outputs"][0]["file"])):
        with Image.open(tmp_path / name) as written:
            assert np.array_equal(np.asarray(written), expected[key]), key
