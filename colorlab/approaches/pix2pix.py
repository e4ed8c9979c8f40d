"""pix2pix-style colorization (Isola et al. 2017): U-Net generator, conditional PatchGAN, adversarial + L1.

The critic sees (L, ab) pairs and returns a map of local realism scores, so it judges texture-scale
colour while the L1 term keeps the global colours close to the truth. An optional perceptual term
compares frozen ImageNet features of the colorized and true photos (the DESIGN's "+VGG" term; the offline
default network is EfficientNet-Lite0).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colorlab.approaches.adversarial import AdversarialColorizer
from colorlab.color import lab_normalized_to_rgb
from colorlab.losses import FeatureLoss


class Pix2PixColorizer(AdversarialColorizer):
    """Generator loss ``adversarial + l1_weight * L1(ab) [+ feature_weight * FeatureLoss(rgb)]``.

    Args:
        generator: L ``(B, 1, H, W)`` -> ab ``(B, 2, H, W)``, e.g. :class:`colorlab.models.unet.UNet`.
        critic: conditional critic ``critic(ab, L)``, e.g. ``PatchGAN(in_channels=3)``.
        l1_weight: lambda_L1 (pix2pix uses 100 on [-1, 1] images; ab here is ab / 110, a similar scale).
        feature_loss: optional perceptual loss on sRGB in [0, 1] (:class:`colorlab.losses.FeatureLoss`).
        feature_weight: weight of ``feature_loss``.
        **kwargs: gan_loss, critic_updates, generator_updates, optimizers, schedulers, gradient_clip...
            (see :class:`AdversarialColorizer`).
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        l1_weight: float = 100.0,
        feature_loss: FeatureLoss | None = None,
        feature_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(generator, critic, **kwargs)
        self.l1_weight = l1_weight
        self.feature_loss = feature_loss
        self.feature_weight = feature_weight

    def generator_loss(
        self, batch: dict[str, torch.Tensor], fake_ab: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``loss`` plus its terms ``adversarial``, ``l1`` and (when configured) ``feature``."""
        losses = {"adversarial": self.adversarial(batch, fake_ab), "l1": F.l1_loss(fake_ab, batch["ab"])}
        losses["loss"] = losses["adversarial"] + self.l1_weight * losses["l1"]
        if self.feature_loss is not None:
            fake_rgb = lab_normalized_to_rgb(self.model_input(batch), fake_ab)
            losses["feature"] = self.feature_loss(fake_rgb, batch["rgb"])
            losses["loss"] = losses["loss"] + self.feature_weight * losses["feature"]
        return losses
