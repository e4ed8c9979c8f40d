"""Colour maths against scikit-image on real photos; ranges, round trips, gradients, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from colorlab import color
from colorlab.data.datasets import SAMPLE_TEST, SAMPLE_TRAIN, SAMPLE_VAL, load_samples

# Max abs error of kornia's float32 conversion vs scikit-image's float64 one, in Lab units.
LAB_TOL = 0.02
RGB_TOL = 1e-4


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """Real photos (H, W, 3) in [0, 1], downscaled 4x to keep the test fast."""
    return [img.permute(1, 2, 0).numpy()[::4, ::4] / 255.0 for img in load_samples(SAMPLE_TRAIN + SAMPLE_VAL + SAMPLE_TEST)]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()


def test_rgb_to_lab_matches_skimage(photos):
    worst = 0.0
    for image in photos:
        ours = color.rgb_to_lab(to_tensor(image))[0].permute(1, 2, 0).double().numpy()
        worst = max(worst, np.abs(ours - skcolor.rgb2lab(image)).max())
    assert worst < LAB_TOL, worst


def test_lab_to_rgb_matches_skimage(photos):
    worst = 0.0
    for image in photos:
        lab = skcolor.rgb2lab(image)
        ours = color.lab_to_rgb(to_tensor(lab))[0].permute(1, 2, 0).double().numpy()
        worst = max(worst, np.abs(ours - np.clip(skcolor.lab2rgb(lab), 0, 1)).max())
    assert worst < RGB_TOL, worst


def test_normalised_ranges_and_round_trip(photos):
    rgb = to_tensor(photos[0])
    L, ab = color.rgb_to_lab_normalized(rgb)
    assert L.shape == (1, 1, *rgb.shape[-2:]) and ab.shape == (1, 2, *rgb.shape[-2:])
    assert -1 <= L.min() and L.max() <= 1
    assert ab.abs().max() <= 1
    assert torch.allclose(color.lab_normalized_to_rgb(L, ab), rgb, atol=1e-4)


def test_known_values():
    white_black = torch.tensor([[[[1.0, 0.0]], [[1.0, 0.0]], [[1.0, 0.0]]]])
    L, ab = color.rgb_to_lab_normalized(white_black)
    assert torch.allclose(L.flatten(), torch.tensor([1.0, -1.0]), atol=1e-4)
    assert torch.allclose(ab, torch.zeros_like(ab), atol=1e-4)
    assert torch.allclose(color.denormalize_l(color.normalize_l(torch.tensor(37.0))), torch.tensor(37.0))
    assert torch.allclose(color.denormalize_ab(color.normalize_ab(torch.tensor(-80.0))), torch.tensor(-80.0))


def test_lab_batch_from_uint8(rgb_uint8):
    batch = color.lab_batch(rgb_uint8)
    assert set(batch) == {"L", "ab", "rgb"}
    assert batch["L"].shape == (4, 1, 32, 32) and batch["ab"].shape == (4, 2, 32, 32)
    assert torch.equal(color.float_to_uint8(batch["rgb"]), rgb_uint8)


def test_gray_has_zero_chroma(rgb_uint8):
    L = color.lab_batch(rgb_uint8)["L"]
    gray = color.l_to_gray_rgb(L)
    assert gray.shape == (4, 3, 32, 32)
    assert torch.allclose(gray[:, 0], gray[:, 1], atol=1e-3) and torch.allclose(gray[:, 1], gray[:, 2], atol=1e-3)


def test_ab_is_upsampled_to_l():
    L = torch.zeros(1, 1, 20, 30)
    ab = torch.zeros(1, 2, 5, 7)
    assert color.lab_normalized_to_rgb(L, ab).shape == (1, 3, 20, 30)


def test_differentiable_in_float64():
    rgb = torch.rand(1, 3, 4, 4, dtype=torch.float64, requires_grad=True) * 0.8 + 0.1
    rgb = rgb.detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: color.rgb_to_lab_normalized(x)[1], (rgb,), eps=1e-6, atol=1e-4)


@pytest.mark.parametrize("bad", [torch.zeros(1, 2, 4, 4), torch.zeros(4, 4)])
def test_wrong_shape_is_rejected(bad):
    with pytest.raises(ValueError, match="shape"):
        color.rgb_to_lab(bad)


def test_uint8_conversion_needs_uint8():
    with pytest.raises(TypeError, match="uint8"):
        color.uint8_to_float(torch.zeros(1, 3, 2, 2))


def test_gray_l_equals_lab_l(photos):
    rgb = torch.cat([to_tensor(image)[..., :64, :64] for image in photos])
    assert torch.allclose(color.rgb_to_gray_l(rgb), color.rgb_to_lab_normalized(rgb)[0], atol=1e-5)
    dark = torch.full((1, 3, 2, 2), 0.002)  # below the Lab companding threshold
    assert torch.allclose(color.rgb_to_gray_l(dark), color.rgb_to_lab_normalized(dark)[0], atol=1e-5)


def test_uint8_gray_l_tables_equal_the_float_conversion():
    every_level = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 256).expand(1, 3, 1, 256)
    mixed = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for rgb in (every_level, mixed):
        expected = color.rgb_to_gray_l(color.uint8_to_float(rgb))
        torch.testing.assert_close(color.uint8_rgb_to_gray_l(rgb), expected, atol=1e-6, rtol=0)
