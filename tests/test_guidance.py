"""Hints and references: the format, the exact picture -> model mapping, the classical methods, the refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colorlab.approaches.regression import RegressionColorizer
from colorlab.color import lab_batch, normalize_ab
from colorlab.colorizers.classical import LevinColorizer, ReinhardColorizer, WelshColorizer, levin_propagate
from colorlab.guidance import (
    MAX_HINTS,
    GuidanceError,
    HintMap,
    check_reference,
    load_hints,
    model_pixel,
    parse_color,
    rasterize,
    sample_picture_hints,
    simulate_hints,
)
from colorlab.inference.pictures import Picture
from colorlab.inference.pipeline import Colorizer
from colorlab.models.simple_cnn import SimpleCNN

# ---- format and parsing -----------------------------------------------------------------------------------


def test_hex_and_lab_colours_parse_to_the_same_lab():
    L, a, b = parse_color("#ff0000", "hint 0")
    assert (round(L), round(a), round(b)) == (53, 80, 67)  # sRGB red in CIE Lab (D65)
    assert parse_color([53.24, 80.09, 67.2], "hint 0") == (53.24, 80.09, 67.2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"x": 1, "y": 2, "color": "#00ff00"', "not valid JSON"),
        ('{"x": 1}', "must be a JSON list"),
        ('[{"x": 1, "y": 2}]', "expected an object with x, y and color"),
        ('[{"x": 40, "y": 2, "color": "#00ff00"}]', "outside the 40x30 picture"),
        ('[{"x": -1, "y": 2, "color": "#00ff00"}]', "outside the 40x30 picture"),
        ('[{"x": 1, "y": 30, "color": "#00ff00"}]', "outside the 40x30 picture"),
        ('[{"x": "1", "y": 2, "color": "#00ff00"}]', "must be numbers"),
        ('[{"x": 1, "y": 2, "color": "#00ff0"}]', "is not '#rrggbb'"),
        ('[{"x": 1, "y": 2, "color": [50, 120, -120]}]', "outside the sRGB gamut"),
        ('[{"x": 1, "y": 2, "color": [150, 0, 0]}]', "outside the sRGB gamut"),
        ('[{"x": 1, "y": 2, "color": [50, 0]}]', "must be '#rrggbb' or [L, a, b]"),
        ('[{"x": NaN, "y": 2, "color": "#00ff00"}]', "must be numbers"),
    ],
)
def test_bad_hints_get_one_clear_error(text, message):
    with pytest.raises(GuidanceError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_hints(text, (30, 40))


def test_more_hints_than_the_cap_are_refused():
    hints = [{"x": 0, "y": 0, "color": "#808080"}] * (MAX_HINTS + 1)
    with pytest.raises(GuidanceError, match=f"more than the cap of {MAX_HINTS}"):
        load_hints(json.dumps(hints), (10, 10))
    assert len(load_hints(json.dumps(hints[:MAX_HINTS]), (10, 10))) == MAX_HINTS


def test_gray_and_malformed_references_are_refused():
    gray = np.repeat(np.linspace(0, 255, 64 * 64, dtype=np.uint8).reshape(64, 64, 1), 3, axis=2)
    with pytest.raises(GuidanceError, match="gray"):
        check_reference(gray)
    with pytest.raises(GuidanceError, match="RGB photo"):
        check_reference(gray[..., 0])
    colour = gray.copy()
    colour[..., 0] = 200
    assert check_reference(colour) is colour


# ---- picture pixels -> model pixels ---------------------------------------------------------------------


@pytest.mark.parametrize(("size", "model"), [((37, 53), (11, 17)), ((101, 7), (33, 3)), ((5, 5), (5, 5)),
                                              ((64, 48), (96, 72)), ((999, 1001), (256, 257))])  # fmt: skip
def test_every_picture_pixel_maps_into_the_model_pixel_that_covers_its_centre(size, model):
    (H, W), (h, w) = size, model
    for y in range(0, H, max(1, H // 40)):
        for x in range(0, W, max(1, W // 40)):
            col, row = model_pixel(x + 0.7, y + 0.2, size, model)  # anywhere inside the picture pixel
            assert col * W / w <= x + 0.5 < (col + 1) * W / w
            assert row * H / h <= y + 0.5 < (row + 1) * H / h


def test_a_rasterised_hint_comes_back_at_its_picture_pixel():
    size, model = (37, 53), (11, 17)
    hints = load_hints(json.dumps([{"x": 52, "y": 0, "color": "#ff0000"}, {"x": 20, "y": 19, "color": "#0000ff"}]),
                       size)  # fmt: skip
    hint_map = rasterize(hints, size, model, patch=1)
    assert hint_map.mask.sum() == 2
    back = F.interpolate(hint_map.mask, size=size, mode="nearest-exact")[0, 0]
    assert back[0, 52] == 1 and back[19, 20] == 1
    red = normalize_ab(torch.tensor([hints[0].a, hints[0].b]))
    col, row = model_pixel(52, 0, size, model)
    assert torch.allclose(hint_map.ab[0, :, row, col], red)


def test_patches_are_clipped_at_the_border():
    hint_map = rasterize(
        load_hints('[{"x": 0, "y": 0, "color": "#ff0000"}]', (9, 9)), (9, 9), (9, 9), patch=5
    )
    assert hint_map.mask.sum() == 9  # the 5x5 square centred on the corner keeps its 3x3 inside


class _EchoHints(torch.nn.Module):
    """Records the hint map the pipeline hands over; answers ab = hint ab."""

    def predict_lab(self, L, hints=None, reference=None):
        self.hints = hints
        return L, hints.ab if hints is not None else L.new_zeros(L.shape[0], 2, *L.shape[2:])


def test_the_pipeline_hands_the_model_hints_at_the_mapped_pixels_at_odd_sizes():
    rgb = np.random.default_rng(0).integers(0, 255, (143, 97, 3), dtype=np.uint8)
    picture = Picture(rgb, None, "png")
    echo = _EchoHints()
    colorizer = Colorizer(echo, side=31)
    hints = load_hints('[{"x": 96, "y": 142, "color": "#00ff00"}, {"x": 50, "y": 3, "color": "#ff0000"}]',
                       picture.size)  # fmt: skip
    out = colorizer.guided(picture, hints, patch=1, dtype=torch.float32)
    assert out.shape == (143, 97, 3)
    h, w = colorizer.model_size(*picture.size)
    assert tuple(echo.hints.mask.shape[-2:]) == (h, w) == (46, 31)
    marked = {(int(r), int(c)) for r, c in echo.hints.mask[0, 0].nonzero()}
    assert marked == {
        model_pixel(96, 142, picture.size, (h, w))[::-1],
        model_pixel(50, 3, picture.size, (h, w))[::-1],
    }
    assert out[142, 96, 1] > out[142, 96, 0], "green where the green hint was put"


# ---- hints from the truth --------------------------------------------------------------------------------


def test_simulated_hints_follow_the_paper_recipe(lab_batch_32):
    generator = torch.Generator().manual_seed(0)
    ab = lab_batch_32["ab"].repeat(64, 1, 1, 1)
    hints = simulate_hints(ab, generator)
    per_picture = hints.mask.flatten(1).amax(1)
    assert 0 < per_picture.mean() < 1, "some pictures get no hint (Geometric on 0, 1, 2...)"
    fixed = simulate_hints(lab_batch_32["ab"], generator, count=1, patch_range=(3, 3))
    assert (fixed.mask.flatten(1).sum(1) == 9).all()
    one = fixed.mask[0, 0].bool()
    inside = lab_batch_32["ab"][0][:, one]
    assert torch.allclose(fixed.ab[0][:, one], inside.mean(1, keepdim=True).expand_as(inside), atol=1e-6)


def test_sampled_hints_are_seeded_and_nested():
    lab = np.random.default_rng(1).normal(size=(40, 60, 3)) * 20 + 50
    few, many = sample_picture_hints(lab, 5, seed=3), sample_picture_hints(lab, 20, seed=3)
    assert few == many[:5] and few == sample_picture_hints(lab, 5, seed=3)
    assert all(0 <= h.x < 60 and 0 <= h.y < 40 for h in many)
    assert math.isclose(many[0].a, lab[int(many[0].y), int(many[0].x), 1])


# ---- classical methods -------------------------------------------------------------------------------------


def test_levin_spreads_a_hint_along_flat_luminance():
    Y = np.full((20, 24), 0.5)
    mask = np.zeros((20, 24))
    mask[5, 5] = 1
    hint = np.zeros((2, 20, 24))
    hint[:, 5, 5] = (0.3, -0.2)
    ab = levin_propagate(Y, hint, mask)
    assert np.allclose(ab[0], 0.3, atol=1e-6) and np.allclose(ab[1], -0.2, atol=1e-6)


def test_levin_respects_a_luminance_edge():
    Y = np.full((20, 24), 0.2)
    Y[:, 12:] = 0.8
    mask = np.zeros((20, 24))
    hint = np.zeros((2, 20, 24))
    mask[10, 2], hint[:, 10, 2] = 1, (0.4, 0.1)
    mask[10, 21], hint[:, 10, 21] = 1, (-0.3, 0.2)
    ab = levin_propagate(Y, hint, mask)
    assert np.abs(ab[:, :, :12] - np.array([0.4, 0.1])[:, None, None]).max() < 0.01
    assert np.abs(ab[:, :, 12:] - np.array([-0.3, 0.2])[:, None, None]).max() < 0.01


def test_levin_without_hints_is_gray_and_refuses_a_reference():
    L = torch.zeros(1, 1, 8, 8)
    assert LevinColorizer().predict_lab(L)[1].abs().max() == 0
    with pytest.raises(GuidanceError, match="levin cannot use a reference"):
        LevinColorizer().predict_lab(L, reference=torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize("method", [ReinhardColorizer, WelshColorizer])
def test_reference_transfer_moves_colour_statistics_toward_the_reference(method, rgb_uint8):
    batch = lab_batch(rgb_uint8)
    target_L = batch["L"][:1]
    reference = rgb_uint8[1:2].float() / 255
    ref_ab = batch["ab"][1]
    _, ab = method().predict_lab(target_L, reference=reference)
    assert ab.shape == (1, 2, 32, 32)
    gray_gap = ref_ab.mean((1, 2)).norm()
    assert (ab[0].mean((1, 2)) - ref_ab.mean((1, 2))).norm() < 0.5 * gray_gap
    # With the truth itself as reference, the transfer lands closer to the truth than gray does.
    _, own = method().predict_lab(batch["L"][1:2], reference=reference)
    assert (own[0] - ref_ab).abs().mean() < ref_ab.abs().mean()
    with pytest.raises(GuidanceError, match="needs a reference photo"):
        method().predict_lab(target_L)
    with pytest.raises(GuidanceError, match="cannot use colour hints"):
        method().predict_lab(target_L, hints=HintMap(torch.zeros(1, 2, 32, 32), torch.zeros(1, 1, 32, 32)))


def test_classical_methods_load_by_name_like_a_checkpoint():
    colorizer = Colorizer.load("levin")
    assert isinstance(colorizer.module, LevinColorizer) and colorizer.name == "levin"


# ---- approaches without guidance ---------------------------------------------------------------------------


def test_an_approach_without_guidance_refuses_hints_by_name():
    model = RegressionColorizer(net=SimpleCNN()).eval()
    L = torch.zeros(1, 1, 16, 16)
    hints = HintMap(torch.zeros(1, 2, 16, 16), torch.zeros(1, 1, 16, 16))
    with pytest.raises(GuidanceError, match="RegressionNet cannot use colour hints"):
        model.predict_lab(L, hints=hints)
    with pytest.raises(GuidanceError, match="RegressionNet cannot use a reference"):
        model.predict_lab(L, reference=torch.rand(1, 3, 16, 16))
    assert model.predict_lab(L)[1].shape == (1, 2, 16, 16)


class _GrayModel(torch.nn.Module):
    """Accepts hints and ignores them: ab = 0 everywhere (what a model that learnt nothing from hints does)."""

    def predict_lab(self, L, hints=None, reference=None):
        return L, L.new_zeros(L.shape[0], 2, *L.shape[2:])


@pytest.mark.parametrize(("height", "width", "side", "patch"), [(143, 97, 31, 1), (60, 200, 64, 3), (20, 30, 40, 1)])
def test_the_pixels_under_a_hint_take_its_colour_whatever_the_model_says(height, width, side, patch):
    from colorlab.color import rgb_to_lab
    from colorlab.guidance import footprint
    from colorlab.metrics import delta_e_ciede2000

    rgb = np.random.default_rng(1).integers(110, 150, (height, width, 3), dtype=np.uint8)  # mid L: in gamut
    picture = Picture(rgb, None, "png")
    colorizer = Colorizer(_GrayModel(), side=side)
    hints = load_hints(f'[{{"x": {width - 1}, "y": 0, "color": "#a06060"}}, {{"x": 5, "y": {height // 2}, "color": "#6070a0"}}]',
                       picture.size)  # fmt: skip
    out = colorizer.guided(picture, hints, patch, dtype=torch.float32)
    lab = rgb_to_lab(torch.from_numpy(out).permute(2, 0, 1)[None])[0]
    model_size = tuple(colorizer.picture_input(picture).shape[-2:])
    for hint in hints:
        rows, cols = footprint(hint, picture.size, model_size, patch)
        assert rows.start <= int(hint.y) < rows.stop and cols.start <= int(hint.x) < cols.stop
        # The footprint is the hint's patch in model pixels, seen at picture scale (one model pixel at least).
        assert rows.stop - rows.start <= math.ceil(patch * height / model_size[0]) + 1
        got = lab[:, rows, cols]
        want = torch.tensor([0.0, hint.a, hint.b]).view(3, 1, 1).expand_as(got).clone()
        want[0] = got[0]  # the picture's own lightness is kept
        assert float(delta_e_ciede2000(got[None], want[None]).max()) < 1.0
    # Away from the hints the gray model's output stays gray.
    assert float(lab[1:, height // 2, width // 2].abs().max()) < 1.0
