"""Regression approaches: every net/loss overfits a fixed batch; the contract shapes hold."""

from __future__ import annotations

import pytest
import torch

from colorlab.approaches.regression import RegressionColorizer
from colorlab.color import ab_gamut_bins, normalize_ab, quantize_ab
from colorlab.data.prior import save_prior
from colorlab.losses import ColorLoss, DeltaE00Loss, pixel_loss
from colorlab.metrics import delta_e_ciede2000
from colorlab.models.simple_cnn import SimpleCNN
from colorlab.models.unet import TimmUNet, UNet
from tests.helpers import fit_fixed_batch


@pytest.mark.parametrize(
    ("net", "loss"),
    [
        (lambda: SimpleCNN(widths=(16, 32, 64)), "mse"),
        (lambda: UNet(base_channels=8, depth=2), "l1"),
        (lambda: TimmUNet(pretrained=True, decoder_channels=(32, 16, 16, 8, 8)), "huber"),
        (lambda: UNet(base_channels=8, depth=2), "delta_e00"),
    ],
    ids=["simple_cnn-mse", "unet-l1", "timm_unet-huber", "unet-delta_e00"],
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


def test_delta_e00_loss_is_the_metric_with_finite_gradients_at_gray_and_equal_colours():
    L = torch.rand(1, 1, 4, 4) * 2 - 1
    target = torch.zeros(1, 2, 4, 4)  # gray truth: hue undefined, sqrt(C1 C2) = 0
    target[..., 0, :2] = 0.3
    pred = target.clone().requires_grad_(True)  # equal colours: the metric's square root at 0
    with torch.no_grad():
        pred[..., 1, :] += 0.1
    loss = DeltaE00Loss(l1_weight=0.0)(L, pred, target)
    loss.mean().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    lab = lambda ab: torch.cat([(L + 1) * 50, ab * 110], dim=1)
    assert torch.allclose(loss, delta_e_ciede2000(lab(pred.detach()), lab(target)), atol=1e-3)
    # from a gray prediction (where nets start) only the L1 term moves it
    gray = torch.zeros_like(target, requires_grad=True)
    DeltaE00Loss()(L, gray, target).mean().backward()
    assert gray.grad[..., 0, :2].abs().min() > 0


def test_rebalancing_weighs_a_rare_colour_above_a_common_one(rgb_uint8, tmp_path):
    centers = ab_gamut_bins()
    gray = quantize_ab(torch.tensor([[0.0], [0.0]])[None, :, :, None], centers).item()
    red = quantize_ab(torch.tensor([[60.0], [40.0]])[None, :, :, None], centers).item()
    prior = torch.full((len(centers),), 1e-4)
    prior[gray] = 1.0  # a training set of almost only gray pixels
    module = RegressionColorizer(UNet(base_channels=4, depth=1), prior_path=str(save_prior(prior, tmp_path / "p.npy")))
    module.setup("fit")
    assert module.criterion.bin_weights[red] > 5 * module.criterion.bin_weights[gray]
    # the same ab error costs more on a red pixel than on a gray one
    L = torch.zeros(1, 1, 1, 2)
    target = normalize_ab(torch.tensor([[[[0.0, 60.0]], [[0.0, 40.0]]]]))
    module.colorizer.predict_target = lambda L_in: target - 0.05
    losses = module.training_loss({"L": L, "ab": target})
    assert losses["loss"] > losses["unweighted_loss"]


def test_rebalanced_regression_overfits_and_checkpoints_without_the_prior(rgb_uint8, tmp_path):
    torch.manual_seed(0)
    prior = torch.rand(len(ab_gamut_bins())) + 0.01
    module = RegressionColorizer(UNet(base_channels=8, depth=2), prior_path=str(save_prior(prior, tmp_path / "p.npy")),
                                 optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))  # fmt: skip
    losses = fit_fixed_batch(module, rgb_uint8, steps=40)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses
    assert not any(key.startswith("bin_") for key in module.state_dict())  # rebuilt from the file, not saved


@pytest.mark.parametrize("option", [{"loss": "delta_e00"}, {"prior_path": "p.npy"}])
def test_lab_only_options_refuse_other_target_spaces(option):
    with pytest.raises(ValueError, match="needs target_space lab"):
        RegressionColorizer(UNet(base_channels=4, depth=1, out_channels=3), target_space="rgb", **option)


@pytest.mark.parametrize("name", ["l1", "mse", "huber"])
def test_colour_loss_without_a_prior_is_the_plain_pixel_loss(name):
    # what the restoration and VAE modules computed before they shared ColorLoss
    pred, target = torch.rand(2, 2, 5, 6) * 2 - 1, torch.rand(2, 2, 5, 6) * 2 - 1
    losses = ColorLoss(name)(torch.zeros(2, 1, 5, 6), pred, target)
    assert set(losses) == {"loss"}
    assert torch.allclose(losses["loss"], pixel_loss(name)(pred, target))
