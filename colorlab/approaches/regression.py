"""Regression colorizers: a net predicts ab directly, trained with L1 / MSE / Huber."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from colorlab.approaches.base import ColorizationModule
from colorlab.losses import PixelLoss, pixel_loss


class RegressionColorizer(ColorizationModule):
    """Any net mapping L ``(B, 1, H, W)`` to ab ``(B, 2, H, W)`` (tanh output), with a pixel loss on ab.

    Args:
        net: the network, e.g. :class:`colorlab.models.unet.UNet` or :class:`colorlab.models.simple_cnn.SimpleCNN`.
        loss: ``l1``, ``mse`` or ``huber``.
        huber_delta: where Huber switches from quadratic to linear (in normalised ab units).
        **kwargs: optimizer, scheduler, grid_images (see :class:`ColorizationModule`).
    """

    def __init__(self, net: nn.Module, loss: PixelLoss = "l1", huber_delta: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.net = net
        self.criterion = pixel_loss(loss, huber_delta)

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        return self.net(L)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pred = self.net(self.model_input(batch))
        return {"loss": self.criterion(pred, batch["ab"])}
