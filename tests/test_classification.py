"""Zhang et al. classification: the computed gamut, soft encoding, decoding, rebalancing, the prior command
and a short fit."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from colorlab.approaches.classification import ClassificationColorizer
from colorlab.cli import main as cli_main
from colorlab.color import (
    ab_gamut_bins,
    decode_ab_logits,
    expected_ab,
    quantize_ab,
    rebalancing_weights,
    rgb_to_lab,
    smooth_bin_prior,
    soft_encode_ab,
    srgb_cube_surface,
)
from colorlab.data.prior import load_prior, save_prior
from colorlab.models.unet import UNet
from tests.helpers import fit_fixed_batch

NUM_BINS = 261  # grid-10 ab cells reached by 8-bit sRGB colours (see ab_gamut_bins for why not 313)


def _cells(ab: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Sorted unique keys of the nearest grid-10 centres of ab values ``(N, 2)`` (``64 * a/10 + b/10``)."""
    cells = torch.round(torch.as_tensor(ab, dtype=torch.float64) / 10).long()
    return torch.unique(cells[:, 0] * 64 + cells[:, 1])


def _random_in_gamut_ab(n: int = 4096, seed: int = 0) -> torch.Tensor:
    """ab ``(1, 2, n, 1)`` of random sRGB colours."""
    rgb = torch.rand(1, 3, n, 1, generator=torch.Generator().manual_seed(seed))
    return rgb_to_lab(rgb)[:, 1:]


# ---- the gamut -----------------------------------------------------------------------------------------


def test_gamut_bin_count_and_grid():
    centers = ab_gamut_bins()
    assert centers.shape == (NUM_BINS, 2)
    assert torch.equal(centers, torch.round(centers / 10) * 10)
    assert len({tuple(c) for c in centers.tolist()}) == NUM_BINS
    assert [0.0, 0.0] in centers.tolist()
    # The sRGB gamut's extent: a in about [-86, 98], b in about [-108, 94].
    assert centers[:, 0].min() == -90 and centers[:, 0].max() == 100
    assert centers[:, 1].min() == -110 and centers[:, 1].max() == 90


def test_cube_surface_gives_the_same_bins_as_every_8bit_colour():
    levels = torch.arange(256.0) / 255
    reached = []
    for red in levels.split(32):
        rgb = torch.stack(torch.meshgrid(red, levels, levels, indexing="ij")).reshape(3, -1, 1)
        reached.append(_cells(rgb_to_lab(rgb)[1:, :, 0].T))
    assert torch.equal(torch.unique(torch.cat(reached)), _cells(ab_gamut_bins()))


def test_gamut_agrees_with_scikit_image():
    from skimage.color import rgb2lab

    ab = rgb2lab(srgb_cube_surface(256).T.numpy()[None])[0, :, 1:]
    assert torch.equal(_cells(ab), _cells(ab_gamut_bins()))


# ---- encoding and decoding ----------------------------------------------------------------------------


def test_quantize_is_the_nearest_grid_point_for_srgb_colours():
    ab = _random_in_gamut_ab()
    centers = ab_gamut_bins()
    nearest = centers[quantize_ab(ab, centers)].permute(0, 3, 1, 2)
    assert torch.equal(nearest, torch.round(ab / 10) * 10)


def test_soft_encoding_is_a_gaussian_over_five_bins():
    centers = ab_gamut_bins()
    ab = torch.tensor([3.0, -4.0]).view(1, 2, 1, 1)
    z = soft_encode_ab(ab, centers)[0, :, 0, 0]
    assert z.shape == (NUM_BINS,)
    assert (z > 0).sum() == 5 and z.sum() == pytest.approx(1.0)
    used = z > 0
    d2 = (centers[used] - torch.tensor([3.0, -4.0])).square().sum(1)
    # weight ratios follow exp(-d^2 / (2 sigma^2)) with sigma 5
    ratios = z[used] / z[used].max()
    assert torch.allclose(ratios, torch.exp(-(d2 - d2.min()) / 50), atol=1e-6)
    assert centers[z.argmax()].tolist() == [0.0, 0.0]


def test_soft_encode_then_mean_decode_round_trip():
    # Interior of the lattice: error < 1 Lab unit. Any sRGB colour: mean < 0.5, max < 5 (at the gamut's
    # edge the neighbours all lie on the inner side, so the mean is pulled inwards).
    centers = ab_gamut_bins()
    grid = torch.stack(torch.meshgrid(*[torch.arange(-30.0, 30.0, 0.5)] * 2, indexing="ij")).unsqueeze(0)
    interior = (expected_ab(soft_encode_ab(grid, centers), centers) - grid).norm(dim=1)
    assert interior.max() < 1.0
    ab = _random_in_gamut_ab()
    error = (expected_ab(soft_encode_ab(ab, centers), centers) - ab).norm(dim=1)
    assert error.mean() < 0.5 and error.max() < 5.0


def test_annealed_mean_limits():
    centers = ab_gamut_bins()
    logits = torch.randn(2, NUM_BINS, 3, 4, generator=torch.Generator().manual_seed(0)) * 3
    mode = decode_ab_logits(logits, centers, "mode")
    assert mode.shape == (2, 2, 3, 4)
    assert torch.allclose(
        decode_ab_logits(logits, centers, "annealed_mean", temperature=1e-4), mode, atol=1e-4
    )
    mean = expected_ab(torch.softmax(logits, dim=1), centers)
    assert torch.allclose(decode_ab_logits(logits, centers, "mean"), mean, atol=1e-5)
    assert torch.allclose(
        decode_ab_logits(logits, centers, "annealed_mean", temperature=1.0), mean, atol=1e-5
    )
    # A lower temperature moves the annealed mean from the mean towards the mode.
    annealed = decode_ab_logits(logits, centers, "annealed_mean", temperature=0.38)
    assert (annealed - mode).norm(dim=1).mean() < (mean - mode).norm(dim=1).mean()
    with pytest.raises(ValueError, match="temperature"):
        decode_ab_logits(logits, centers, "annealed_mean", temperature=0.0)
    with pytest.raises(ValueError, match="unknown decode"):
        decode_ab_logits(logits, centers, "median")


# ---- rebalancing and the prior ------------------------------------------------------------------------


def test_rebalancing_weights_have_mean_one_under_the_prior():
    centers = ab_gamut_bins()
    prior = torch.rand(NUM_BINS, generator=torch.Generator().manual_seed(0)) ** 4
    smoothed = smooth_bin_prior(prior, centers)
    assert smoothed.sum() == pytest.approx(1.0)
    weights = rebalancing_weights(prior, centers, mix=0.5)
    assert (smoothed * weights.double()).sum() == pytest.approx(1.0, abs=1e-6)
    assert weights[smoothed.argmin()] == weights.max() and weights[smoothed.argmax()] == weights.min()
    assert torch.allclose(rebalancing_weights(prior, centers, mix=1.0), torch.ones(NUM_BINS))
    with pytest.raises(ValueError, match="lambda"):
        rebalancing_weights(prior, centers, mix=0.0)


@pytest.fixture
def tiny_folder(tmp_path, rgb_uint8):
    from PIL import Image

    for i, image in enumerate(rgb_uint8.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    return tmp_path


def test_prior_command_writes_a_distribution(tiny_folder, tmp_path, rgb_uint8):
    out = tmp_path / "priors" / "tiny.npy"
    cli_main(["prior", "--config", "experiments/zhang_cic.yaml", "-o", str(out),
              f"--data.init_args.root={tiny_folder}", "--data.init_args.image_size=32",
              "--data.init_args.resize=null", "--data.init_args.num_workers=0", "--data.init_args.hflip=false",
              "--data.init_args.batch_size=8"])  # fmt: skip
    prior = np.load(out)
    assert prior.shape == (NUM_BINS,) and prior.min() >= 0 and prior.sum() == pytest.approx(1.0)
    # Three of the four crops are the training split; their pixels' nearest bins get the counted mass.
    assert (prior > 0).sum() > 3
    assert torch.allclose(load_prior(out, NUM_BINS), torch.from_numpy(prior))


def test_prior_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m colorlab prior"):
        load_prior(tmp_path / "missing.npy", NUM_BINS)
    save_prior(torch.ones(10), tmp_path / "short.npy")
    with pytest.raises(ValueError, match=r"expected \(261,\)"):
        load_prior(tmp_path / "short.npy", NUM_BINS)


# ---- the approach -------------------------------------------------------------------------------------


def _module(**kwargs) -> ClassificationColorizer:
    net = UNet(base_channels=8, depth=2, out_channels=NUM_BINS, final_activation="none")
    return ClassificationColorizer(net, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), **kwargs)


def test_overfits_fixed_batch_and_logs_uniform_prior(rgb_uint8, caplog):
    torch.manual_seed(0)
    module = _module()
    with caplog.at_level(logging.INFO):
        # 80 steps: from the neutral start (cross-entropy 3.8 here, lower than uniform logits) halving takes longer
        losses = fit_fixed_batch(module, rgb_uint8, steps=80)
    assert "uniform ab prior" in caplog.text
    assert torch.equal(module.class_weights, torch.ones(NUM_BINS))
    assert len(losses) == 80
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses


def test_prior_file_sets_the_class_weights(tmp_path, rgb_uint8):
    prior = torch.rand(NUM_BINS, generator=torch.Generator().manual_seed(1))
    path = save_prior(prior, tmp_path / "prior.npy")
    module = _module(prior_path=str(path))
    module.setup("fit")
    expected = rebalancing_weights(prior, ab_gamut_bins(), mix=0.5, sigma=5.0)
    assert torch.allclose(module.class_weights, expected)
    assert "class_weights" in module.state_dict()  # inference from a checkpoint needs no prior file


@pytest.mark.parametrize("decode", ["annealed_mean", "mode", "mean"])
def test_colorize_contract_any_size(decode):
    module = _module(decode=decode, downsample=4).eval()
    L = torch.rand(2, 1, 37, 53) * 2 - 1
    with torch.no_grad():
        assert module.colorizer.logits(L).shape == (2, NUM_BINS, 9, 13)
        ab = module.colorize(L)
    assert ab.shape == (2, 2, 37, 53) and ab.abs().max() <= 1
    assert module.colorize_rgb(L).shape == (2, 3, 37, 53)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="out_channels to 261"):
        ClassificationColorizer(UNet(base_channels=4, depth=1, out_channels=313)).colorizer.logits(
            torch.zeros(1, 1, 8, 8)
        )
    with pytest.raises(ValueError, match="unknown decode"):
        _module(decode="median")
    with pytest.raises(ValueError, match="downsample"):
        _module(downsample=0)
