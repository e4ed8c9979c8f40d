"""VAE-UNet: KL annealing schedules, fixed-batch overfit, several z -> several colorizations, gradients."""

from __future__ import annotations

import pytest
import torch

from colorlab.approaches.vae import KLSchedule, VAEColorizer
from colorlab.color import ab_gamut_bins
from colorlab.data.prior import save_prior
from colorlab.models.vae_unet import VAEUNet
from tests.helpers import fit_fixed_batch


def tiny_vae(**kwargs) -> VAEColorizer:
    torch.manual_seed(0)
    kwargs.setdefault("optimizer", lambda p: torch.optim.Adam(p, lr=3e-3))
    return VAEColorizer(VAEUNet(base_channels=8, depth=2, latent_dim=8), **kwargs)


# ---- schedules ----------------------------------------------------------------------------------------


def test_linear_schedule_warms_up_then_stays():
    schedule = KLSchedule("linear", beta_max=0.5, warmup_steps=10)
    assert [schedule(s) for s in (0, 1, 5, 10, 11, 1000)] == pytest.approx([0.0, 0.05, 0.25, 0.5, 0.5, 0.5])
    assert KLSchedule("linear", beta_max=0.3, warmup_steps=0)(0) == 0.3


def test_cyclical_schedule_follows_fu_et_al():
    # cycles of 8 steps, rising over the first half (ratio 0.5), two cycles then flat at beta_max.
    schedule = KLSchedule("cyclical", beta_max=2.0, cycle_steps=8, ratio=0.5, cycles=2)
    steps = [0, 1, 2, 3, 4, 7, 8, 10, 12, 15, 16, 17, 100]
    expected = [0.0, 0.5, 1.0, 1.5, 2.0, 2.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    assert [schedule(s) for s in steps] == pytest.approx(expected)
    forever = KLSchedule("cyclical", beta_max=1.0, cycle_steps=4, ratio=1.0)
    assert [forever(s) for s in (0, 1, 3, 4, 401)] == pytest.approx([0.0, 0.25, 0.75, 0.0, 0.25])


def test_constant_schedule_and_bad_arguments():
    assert KLSchedule("constant", beta_max=0.1)(12345) == 0.1
    with pytest.raises(ValueError, match="unknown KL schedule"):
        KLSchedule("cosine")
    with pytest.raises(ValueError, match="ratio"):
        KLSchedule("cyclical", ratio=0.0)
    with pytest.raises(ValueError, match="beta_max"):
        KLSchedule(beta_max=-1.0)


def test_beta_is_logged_every_step(rgb_uint8):
    schedule = KLSchedule("cyclical", beta_max=0.01, cycle_steps=4, ratio=0.5)
    module = tiny_vae(kl_schedule=schedule)
    betas = fit_fixed_batch(module, rgb_uint8, steps=10, key="train/beta")
    assert betas == pytest.approx([schedule(step) for step in range(10)])
    assert betas[:5] == pytest.approx([0.0, 0.005, 0.01, 0.01, 0.0])


# ---- training -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["l1", "mse", "delta_e00+prior"])
def test_overfits_fixed_batch(loss, rgb_uint8, tmp_path):
    options = {"loss": loss}
    if loss == "delta_e00+prior":  # the rebalanced CIEDE2000 reconstruction loss
        prior = torch.rand(len(ab_gamut_bins()), generator=torch.Generator().manual_seed(0)) + 0.01
        options = {"loss": "delta_e00", "prior_path": str(save_prior(prior, tmp_path / "p.npy")), "rebalance_lambda": 0.7}
    module = tiny_vae(**options, kl_schedule=KLSchedule("linear", beta_max=1e-3, warmup_steps=20))
    recon = fit_fixed_batch(module, rgb_uint8, steps=40, key="train/recon")
    assert len(recon) == 40
    assert sum(recon[-5:]) / 5 < 0.5 * sum(recon[:5]) / 5, recon


def test_forward_backward_reaches_every_parameter(lab_batch_32):
    module = tiny_vae(kl_schedule=KLSchedule("constant", beta_max=0.1))
    losses = module.training_loss(lab_batch_32)
    assert set(losses) == {"loss", "recon", "kl", "beta"}
    losses["loss"].backward()
    for name, param in module.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
    assert torch.isfinite(losses["loss"])


# ---- inference ----------------------------------------------------------------------------------------


def test_samples_differ_and_colorize_is_the_prior_mean(rgb_uint8, lab_batch_32):
    module = tiny_vae(kl_schedule=KLSchedule("constant", beta_max=1e-3))
    fit_fixed_batch(module, rgb_uint8, steps=20)
    module.eval()
    L = lab_batch_32["L"]
    with torch.no_grad():
        samples = module.sample(L, 3, generator=torch.Generator().manual_seed(1))
        mean = module.colorize(L)
        again = module.colorize(L)
    assert samples.shape == (3, *lab_batch_32["ab"].shape)
    assert samples.abs().max() <= 1
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert (samples[i] - samples[j]).abs().mean() > 1e-3, (i, j)
    torch.testing.assert_close(mean, again)
    torch.testing.assert_close(mean, module.net.decode(L, torch.zeros(L.shape[0], 8)))
    with pytest.raises(ValueError, match="n must be"):
        module.sample(L, 0)


def test_colorize_any_size_and_bad_latent():
    module = tiny_vae().eval()
    L = torch.rand(2, 1, 37, 53) * 2 - 1
    ab = module.colorize(L)
    assert ab.shape == (2, 2, 37, 53) and ab.abs().max() <= 1
    assert module.sample(L, 2).shape == (2, 2, 2, 37, 53)
    with pytest.raises(ValueError, match="z must have shape"):
        module.net.decode(L, torch.zeros(2, 3))


def test_a_timm_encoder_u_net_trains_and_z_reaches_its_output(rgb_uint8, lab_batch_32):
    # the ImageNet EfficientNet-Lite0 pyramid of unet_effnet (random weights here: no file needed)
    torch.manual_seed(0)
    net = VAEUNet(latent_dim=8, encoder_name="efficientnet_lite0", decoder_channels=(32, 24, 16, 16, 8),
                  encoder_kwargs={"frozen_stages": 3})  # fmt: skip
    assert net.multiple == 32
    module = VAEColorizer(net, kl_schedule=KLSchedule("constant", beta_max=1e-3),
                          optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))  # fmt: skip
    recon = fit_fixed_batch(module, rgb_uint8, steps=30, key="train/recon")
    assert sum(recon[-5:]) / 5 < 0.6 * sum(recon[:5]) / 5, recon
    module.eval()
    L = torch.rand(2, 1, 45, 70) * 2 - 1
    with torch.no_grad():
        one, other = net.decode(L, torch.zeros(2, 8)), net.decode(L, torch.full((2, 8), 3.0))
    assert one.shape == (2, 2, 45, 70)
    assert (one - other).abs().mean() > 1e-4  # z is fed to every decoder stage, the full-resolution one too
    with pytest.raises(ValueError, match="decoder_channels needs 5 entries"):
        VAEUNet(encoder_name="efficientnet_lite0", decoder_channels=(16, 8))
