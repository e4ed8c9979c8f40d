"""pix2pix: overfits a fixed batch at the 1 critic : 2 generator ratio; PatchGAN score maps; loss terms."""

from __future__ import annotations

import pytest
import torch

from colorlab.approaches.pix2pix import Pix2PixColorizer
from colorlab.losses import FeatureLoss
from colorlab.models.critics import PatchGAN
from colorlab.models.features import ImageNetFeatures
from colorlab.models.unet import UNet
from tests.helpers import fit_fixed_batch


def adam(lr: float):
    return lambda params: torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


def tiny_pix2pix(**kwargs) -> Pix2PixColorizer:
    torch.manual_seed(0)
    return Pix2PixColorizer(
        UNet(base_channels=8, depth=2), PatchGAN(3, base_channels=8, n_layers=2), **kwargs
    )


def test_overfits_fixed_batch(rgb_uint8):
    module = tiny_pix2pix(critic_updates=1, generator_updates=2,
                          generator_optimizer=adam(3e-3), critic_optimizer=adam(3e-3))  # fmt: skip
    # Manual optimization: every optimizer.step is a global step, so 60 steps are 20 batches of 1 + 2 updates.
    l1 = fit_fixed_batch(module, rgb_uint8, steps=60, key="train/l1")
    assert len(l1) == 20
    assert sum(l1[-3:]) / 3 < 0.5 * sum(l1[:3]) / 3, l1


@pytest.mark.parametrize("n_layers", [2, 3])
def test_patchgan_returns_local_score_map(n_layers):
    torch.manual_seed(0)
    critic = PatchGAN(3, base_channels=8, n_layers=n_layers).eval()
    L, ab = torch.rand(2, 1, 64, 64) * 2 - 1, torch.rand(2, 2, 64, 64) * 2 - 1
    scores = critic(ab, L)
    assert scores.shape[:2] == (2, 1) and min(scores.shape[-2:]) > 1
    changed = ab.clone()
    changed[:, :, :8, :8] = 1.0  # recolour the top-left corner only
    diff = (critic(changed, L) - scores).abs()[0, 0]
    assert diff[0, 0] > 0 and diff[-1, -1] == 0  # a far patch does not see the corner


def test_generator_loss_terms_and_feature_loss(lab_batch_32):
    features = ImageNetFeatures(pretrained=False, levels=(1, 2))
    module = tiny_pix2pix(l1_weight=50.0, feature_loss=FeatureLoss(features), feature_weight=0.5)
    fake = module.generate(lab_batch_32)
    losses = module.generator_loss(lab_batch_32, fake)
    assert set(losses) == {"loss", "adversarial", "l1", "feature"}
    expected = losses["adversarial"] + 50.0 * losses["l1"] + 0.5 * losses["feature"]
    torch.testing.assert_close(losses["loss"], expected)
    losses["feature"].backward()  # the perceptual term trains the generator, never the frozen features
    assert all(p.grad is not None for p in module.generator.parameters())
    assert all(p.grad is None for p in features.parameters())


def test_without_feature_loss(lab_batch_32):
    module = tiny_pix2pix()
    losses = module.training_loss(lab_batch_32)
    assert set(losses) == {"loss", "adversarial", "l1"}
    torch.testing.assert_close(losses["loss"], losses["adversarial"] + 100.0 * losses["l1"])


def test_bf16_mixed_training_step_is_finite(rgb_uint8):
    module = tiny_pix2pix(gradient_clip=1.0)
    fit_fixed_batch(module, rgb_uint8, steps=3, precision="bf16-mixed")
    logged = {k: v for k, v in module.trainer.callback_metrics.items() if k.startswith("train/")}
    assert {"train/loss", "train/critic_loss"} <= set(logged)
    assert all(torch.isfinite(v) for v in logged.values()), logged


def test_colorize_any_size():
    module = tiny_pix2pix().eval()
    L = torch.rand(1, 1, 37, 50) * 2 - 1
    assert module.colorize(L).shape == (1, 2, 37, 50)
    rgb = module.colorize_rgb(L)
    assert rgb.shape == (1, 3, 37, 50) and 0 <= rgb.min() and rgb.max() <= 1
