"""GAN updates under mixed precision: gradients are clipped after fp16 unscaling, so an update keeps its size.

Clipping the scaled gradients (the old order) clipped them to ``gradient_clip`` and then divided them by the
loss scale, so a clipped SGD step moved the critic by ``clip / scale`` instead of ``clip``.
"""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch.plugins import MixedPrecision

from colorlab.approaches.pix2pix import Pix2PixColorizer
from colorlab.models.critics import PatchGAN
from colorlab.models.unet import UNet
from tests.helpers import fit_fixed_batch

CLIP = 1e-3


def sgd(lr: float):
    return lambda params: torch.optim.SGD(params, lr=lr)


def critic_step_size(rgb_uint8: torch.Tensor, precision: str, scaler: torch.amp.GradScaler | None) -> float:
    """Norm of the change of all critic weights after one batch (1 critic update, SGD lr 1, clipped)."""
    torch.manual_seed(0)
    module = Pix2PixColorizer(
        UNet(base_channels=4, depth=2), PatchGAN(3, base_channels=8, n_layers=2, norm="none"),
        gradient_clip=CLIP, critic_optimizer=sgd(1.0), generator_optimizer=sgd(0.0),
    )  # fmt: skip
    before = [p.detach().clone() for p in module.critic.parameters()]
    fit_fixed_batch(module, rgb_uint8, steps=2, plugins=[MixedPrecision(precision, "cpu", scaler=scaler)])
    return math.sqrt(
        sum(((p.detach() - b) ** 2).sum().item() for p, b in zip(module.critic.parameters(), before))
    )


def test_fp16_grad_scaler_update_has_the_clipped_size(rgb_uint8):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    step = critic_step_size(rgb_uint8, "16-mixed", scaler)
    assert scaler.get_scale() == 2.0**8  # no inf/nan step was skipped, the scale really applied
    # SGD at lr 1 moves the weights by exactly the clipped gradient: norm CLIP (the old order gave CLIP / 256).
    assert step == pytest.approx(CLIP, rel=1e-3)


def test_bf16_update_has_the_clipped_size(rgb_uint8):
    assert critic_step_size(rgb_uint8, "bf16-mixed", None) == pytest.approx(CLIP, rel=1e-3)
