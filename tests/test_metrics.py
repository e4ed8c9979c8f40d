"""Metrics against reference implementations: CIEDE2000 vs scikit-image, colorfulness by hand, PSNR."""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage import color as skcolor

from colorlab.color import lab_batch, rgb_to_lab
from colorlab.metrics import colorfulness, colorization_metrics, delta_e_ciede2000


def test_ciede2000_matches_skimage_on_photos(rgb_uint8):
    rgb = lab_batch(rgb_uint8)["rgb"]
    other = rgb.roll(1, dims=0)  # compare each photo crop with another one: large, varied differences
    ours = delta_e_ciede2000(rgb_to_lab(rgb).double(), rgb_to_lab(other).double())
    lab1 = rgb_to_lab(rgb).permute(0, 2, 3, 1).double().numpy()
    lab2 = rgb_to_lab(other).permute(0, 2, 3, 1).double().numpy()
    reference = skcolor.deltaE_ciede2000(lab1, lab2)
    assert np.abs(ours.numpy() - reference).max() < 1e-6


def test_ciede2000_sharma_reference_pairs():
    # Pairs 1, 7 and 17 of Sharma, Wu & Dalal (2005), Table 1, with their published delta E 2000.
    lab1 = torch.tensor([[50.0, 2.6772, -79.7751], [50.0, 0.0, 0.0], [50.0, 2.5, 0.0]], dtype=torch.float64)
    lab2 = torch.tensor([[50.0, 0.0, -82.7485], [50.0, -1.0, 2.0], [56.0, -27.0, -3.0]], dtype=torch.float64)
    expected = torch.tensor([2.0425, 2.3669, 31.9030], dtype=torch.float64)
    ours = delta_e_ciede2000(lab1.T[:, :, None], lab2.T[:, :, None]).flatten()
    assert torch.allclose(ours, expected, atol=1e-4)


def test_ciede2000_zero_for_identical():
    lab = rgb_to_lab(torch.rand(2, 3, 8, 8))
    assert delta_e_ciede2000(lab, lab).abs().max() < 1e-4


def test_colorfulness_hand_computed():
    # A 2-pixel image: one pure red, one pure blue (0-255 scale).
    rgb = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, 1.0]]]])
    rg = np.array([255.0, 0.0])
    yb = np.array([127.5, -255.0])
    expected = math.sqrt(rg.var() + yb.var()) + 0.3 * math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    assert math.isclose(colorfulness(rgb).item(), expected, rel_tol=1e-5)


def test_colorfulness_of_gray_is_zero_and_photos_positive(rgb_uint8):
    gray = torch.full((1, 3, 4, 4), 0.4)
    assert colorfulness(gray).item() < 1e-3
    assert (colorfulness(lab_batch(rgb_uint8)["rgb"]) > 5).all()


def test_metric_collection_names_and_values(rgb_uint8):
    rgb = lab_batch(rgb_uint8)["rgb"]
    noisy = (rgb + 0.05 * torch.randn_like(rgb)).clamp(0, 1)
    metrics = colorization_metrics("val/")
    metrics.update(noisy[:2], rgb[:2])
    metrics.update(noisy[2:], rgb[2:])
    values = metrics.compute()
    assert set(values) == {"val/psnr", "val/ssim", "val/delta_e00", "val/colorfulness", "val/colorfulness_gap"}
    per_image_psnr = [10 * math.log10(1 / torch.mean((noisy[i] - rgb[i]) ** 2).item()) for i in range(4)]
    assert math.isclose(values["val/psnr"].item(), sum(per_image_psnr) / 4, rel_tol=1e-4)
    expected_de = delta_e_ciede2000(rgb_to_lab(noisy), rgb_to_lab(rgb)).flatten(1).mean(1).mean()
    assert math.isclose(values["val/delta_e00"].item(), expected_de.item(), rel_tol=1e-4)
    assert 0 < values["val/ssim"].item() < 1
