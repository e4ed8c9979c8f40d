"""Regression approaches: every net/loss overfits a fixed batch; the contract shapes hold."""

from __future__ import annotations

import pytest
import torch

from colorlab.approaches.regression import RegressionColorizer
from colorlab.models.simple_cnn import SimpleCNN
from colorlab.models.unet import TimmUNet, UNet
from tests.helpers import fit_fixed_batch


@pytest.mark.parametrize(
    ("net", "loss"),
    [
        (lambda: SimpleCNN(widths=(16, 32, 64)), "mse"),
        (lambda: UNet(base_channels=8, depth=2), "l1"),
        (lambda: TimmUNet(pretrained=True, decoder_channels=(32, 16, 16, 8, 8)), "huber"),
    ],
    ids=["simple_cnn-mse", "unet-l1", "timm_unet-huber"],
)
def test_overfits_fixed_batch(net, loss, rgb_uint8):
    torch.manual_seed(0)
    module = RegressionColorizer(net(), loss=loss, optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))
    losses = fit_fixed_batch(module, rgb_uint8, steps=50)
    assert len(losses) == 50
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses


def test_predict_lab_contract_any_size():
    module = RegressionColorizer(UNet(base_channels=4, depth=2)).eval()
    L = torch.rand(2, 1, 37, 53) * 2 - 1
    L_out, ab = module.predict_lab(L)
    assert torch.equal(L_out, L) and ab.shape == (2, 2, 37, 53)
    assert ab.abs().max() <= 1
    rgb = module.colorize_rgb(L)
    assert rgb.shape == (2, 3, 37, 53) and 0 <= rgb.min() and rgb.max() <= 1


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="unknown pixel loss"):
        RegressionColorizer(UNet(base_channels=4, depth=1), loss="l3")
