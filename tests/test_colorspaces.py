"""Colour-space targets: conversions vs scikit-image, target round trips, a regression net in every space."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import color as skcolor
from torch import nn

from colorlab.approaches.regression import RegressionColorizer
from colorlab.color import (
    TARGET_CHANNELS,
    hsv_to_rgb,
    l_to_gray_rgb,
    lab_batch,
    rgb_to_gray_l,
    rgb_to_hsv,
    rgb_to_lab_normalized,
    rgb_to_target,
    rgb_to_ycbcr,
    rgb_to_yuv,
    target_to_rgb,
    ycbcr_to_rgb,
    yuv_to_rgb,
)
from colorlab.models.unet import UNet
from tests.helpers import fit_fixed_batch

SPACES = list(TARGET_CHANNELS)


@pytest.fixture
def rgb64() -> torch.Tensor:
    """Random sRGB ``(2, 3, 16, 16)`` in [0, 1], float64, with the 8 corners of the RGB cube included."""
    rgb = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    corners = torch.tensor([[(i >> k) & 1 for k in range(3)] for i in range(8)], dtype=torch.float64)
    rgb[0, :, 0, :8] = corners.T
    return rgb


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).numpy()


# ---- conversions vs scikit-image ----------------------------------------------------------------------


def test_yuv_matches_skimage(rgb64):
    # kornia rounds the BT.601 coefficients to 3 decimals; scikit-image keeps more: max error 1.4e-4.
    assert np.abs(_hwc(rgb_to_yuv(rgb64)) - skcolor.rgb2yuv(_hwc(rgb64))).max() < 3e-4


def test_ycbcr_matches_skimage_studio_swing(rgb64):
    # scikit-image gives studio swing (Y 16-235, Cb/Cr 16-240 around 128); colorlab's is full range [0, 1].
    studio = skcolor.rgb2ycbcr(_hwc(rgb64))
    full = np.stack([(studio[..., 0] - 16) / 219, *((studio[..., c] - 128) / 224 + 0.5 for c in (1, 2))], -1)
    assert np.abs(_hwc(rgb_to_ycbcr(rgb64)) - full).max() < 5e-4  # measured 2.8e-4


def test_hsv_matches_skimage(rgb64):
    ours, ref = _hwc(rgb_to_hsv(rgb64)), skcolor.rgb2hsv(_hwc(rgb64))
    hue_turns = np.abs(ours[..., 0] / (2 * math.pi) - ref[..., 0])
    coloured = ref[..., 1] > 1e-6  # hue of gray pixels is undefined
    assert np.minimum(hue_turns, 1 - hue_turns)[coloured].max() < 1e-6
    assert np.abs(ours[..., 1:] - ref[..., 1:]).max() < 1e-6


@pytest.mark.parametrize(
    ("forward", "backward"),
    [(rgb_to_yuv, yuv_to_rgb), (rgb_to_ycbcr, ycbcr_to_rgb), (rgb_to_hsv, hsv_to_rgb)],
)
def test_conversions_round_trip(forward, backward, rgb64):
    assert (backward(forward(rgb64)) - rgb64).abs().max() < 1e-6


def test_hsv_to_rgb_takes_any_turn_of_hue(rgb64):
    hsv = rgb_to_hsv(rgb64)
    shifted = torch.cat([hsv[:, :1] - 2 * math.pi, hsv[:, 1:]], 1)
    assert (hsv_to_rgb(shifted) - rgb64).abs().max() < 1e-6


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\(\*, 3, H, W\)"):
        rgb_to_yuv(torch.rand(2, 4, 8, 8))
    with pytest.raises(ValueError, match="unknown target space"):
        rgb_to_target(torch.rand(1, 3, 8, 8), "xyz")
    with pytest.raises(ValueError, match=r"hsv prediction must have shape \(\*, 2, H, W\)"):
        target_to_rgb(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8), "hsv")


# ---- regression targets -------------------------------------------------------------------------------


@pytest.mark.parametrize("space", SPACES)
def test_target_round_trip_with_the_input_lightness(space, rgb_uint8):
    rgb = lab_batch(rgb_uint8)["rgb"]
    target = rgb_to_target(rgb, space)
    assert target.shape[1] == TARGET_CHANNELS[space] and target.abs().max() <= 1.0
    back = target_to_rgb(target, rgb_to_gray_l(rgb), space)
    assert (back - rgb).abs().max() < 1e-4


@pytest.mark.parametrize("space", SPACES)
def test_targets_stay_in_unit_range(space, rgb64):
    target = rgb_to_target(rgb64.float(), space)
    assert target.abs().max() <= 1.0 + 1e-5 and target.abs().max() > 0.8


def test_hsv_target_has_no_hue_seam_and_ignores_gray_hue():
    hsv = torch.tensor([0.001, 0.8, 0.7, 2 * math.pi - 0.001, 0.8, 0.7, 3.0, 0.0, 0.5]).view(3, 3, 1, 1)
    target = rgb_to_target(hsv_to_rgb(hsv), "hsv")
    assert (target[0] - target[1]).abs().max() < 3e-3, "hues either side of 0 / 2 pi are neighbours"
    assert target[2].abs().max() < 1e-6, "a gray pixel (s = 0) has a zero target whatever its hue"


def test_chroma_spaces_keep_the_input_lightness(rgb_uint8):
    batch = lab_batch(rgb_uint8)
    for space in ("yuv", "ycbcr", "hsv"):
        noisy = rgb_to_target(batch["rgb"], space) * 0.7
        L_out, _ = rgb_to_lab_normalized(target_to_rgb(noisy, batch["L"], space))
        in_gamut = (batch["L"] > -0.9) & (batch["L"] < 0.9)
        assert (L_out - batch["L"])[in_gamut].abs().median() < 1e-3, space


# ---- a regression net in every space ------------------------------------------------------------------


class _Oracle(nn.Module):
    """A "net" whose prediction is a fixed target (for ``rgb`` it outputs the change from the gray picture,
    which the approach adds back)."""

    def __init__(self, target: torch.Tensor, space: str) -> None:
        super().__init__()
        self.target = nn.Parameter(target)
        self.space = space

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        return self.target - (rgb_to_target(l_to_gray_rgb(L), "rgb") if self.space == "rgb" else 0)


@pytest.mark.parametrize("space", SPACES)
def test_colorize_answers_in_lab_whatever_the_space(space, rgb_uint8):
    batch = lab_batch(rgb_uint8)
    module = RegressionColorizer(_Oracle(rgb_to_target(batch["rgb"], space), space), target_space=space)
    L_out, ab = module.predict_lab(batch["L"])
    assert ab.shape == batch["ab"].shape
    assert (ab - batch["ab"]).abs().max() < 2e-3
    assert (L_out - batch["L"]).abs().max() < 1e-4
    assert (module.colorize_rgb(batch["L"]) - batch["rgb"]).abs().max() < 2e-3


def test_rgb_space_keeps_or_replaces_the_predicted_lightness(rgb_uint8):
    batch = lab_batch(rgb_uint8)
    darker = rgb_to_target(batch["rgb"] * 0.6, "rgb")
    replaced = RegressionColorizer(_Oracle(darker, "rgb"), target_space="rgb", keep_input_l=True)
    as_is = RegressionColorizer(_Oracle(darker, "rgb"), target_space="rgb", keep_input_l=False)
    assert torch.equal(replaced.predict_lab(batch["L"])[0], batch["L"])
    assert (as_is.colorize_rgb(batch["L"]) - batch["rgb"] * 0.6).abs().max() < 1e-4
    assert (as_is.predict_lab(batch["L"])[0] < batch["L"] - 0.05).float().mean() > 0.5


@pytest.mark.parametrize(
    ("space", "keep_input_l"), [(s, True) for s in SPACES] + [("rgb", False)], ids=[*SPACES, "rgb-as-is"]
)
def test_overfits_fixed_batch_in_every_space(space, keep_input_l, rgb_uint8):
    torch.manual_seed(0)
    net = UNet(out_channels=TARGET_CHANNELS[space], base_channels=8, depth=2)
    module = RegressionColorizer(
        net, target_space=space, keep_input_l=keep_input_l, optimizer=lambda p: torch.optim.Adam(p, lr=3e-3)
    )
    losses = fit_fixed_batch(module, rgb_uint8, steps=40)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
    ab = module.eval().predict_lab(lab_batch(rgb_uint8)["L"])[1]
    assert ab.shape == (4, 2, 32, 32) and torch.isfinite(ab).all()


def test_wrong_net_width_or_space_is_explained():
    with pytest.raises(ValueError, match="needs a net with 3 output channels"):
        RegressionColorizer(UNet(out_channels=2, base_channels=4, depth=1), target_space="rgb").predict_lab(
            torch.zeros(1, 1, 8, 8)
        )
    with pytest.raises(ValueError, match="unknown target_space"):
        RegressionColorizer(UNet(base_channels=4, depth=1), target_space="xyz")
