"""Regression colorizers: a net predicts the colour directly, trained with L1 / MSE / Huber.

The target is Lab ab by default; ``target_space`` switches it to full RGB or to the chroma of YUV,
YCbCr or HSV (see :func:`colorlab.color.rgb_to_target`). The loss is computed in that space, while
``predict_lab`` always answers in Lab, so the shared metrics compare every space on the same footing.
In every space a net output of 0 means the gray picture of the input (the neutral start, since nets
start at 0): chroma targets are 0 for gray anyway; for ``rgb`` the net predicts the change from it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from colorlab.approaches.base import ColorizationModule
from colorlab.color import TargetSpace, rgb_to_target
from colorlab.colorizers.regression import RegressionNet
from colorlab.losses import PixelLoss, pixel_loss


class RegressionColorizer(ColorizationModule):
    """Any net mapping L ``(B, 1, H, W)`` to a colour target (tanh output), with a pixel loss on it.

    Args:
        net: the network, e.g. :class:`colorlab.models.unet.UNet` or
            :class:`colorlab.models.simple_cnn.SimpleCNN`; its output channels must match the target space
            (2, or 3 for ``rgb``).
        loss: ``l1``, ``mse`` or ``huber``.
        huber_delta: where Huber switches from quadratic to linear (in normalised target units).
        target_space: what the net predicts: ``lab`` (ab / 110), ``rgb`` (2 * rgb - 1), ``yuv`` or ``ycbcr``
            (chroma scaled to [-1, 1]; luma from the input) or ``hsv`` (s * (cos h, sin h); V from the input).
        keep_input_l: ``rgb`` only: True replaces the predicted picture's lightness by the input's L,
            False keeps the predicted RGB as it is.
        **kwargs: optimizer, scheduler, grid_images (see :class:`ColorizationModule`).
    """

    colorizer_class = RegressionNet
    legacy_keys = (("net.", "colorizer.net."),)

    def __init__(
        self,
        net: nn.Module,
        loss: PixelLoss = "l1",
        huber_delta: float = 0.1,
        target_space: TargetSpace = "lab",
        keep_input_l: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.colorizer = RegressionNet(net, target_space, keep_input_l)
        self.criterion = pixel_loss(loss, huber_delta)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pred = self.colorizer.predict_target(self.model_input(batch))
        space = self.colorizer.target_space
        target = batch["ab"] if space == "lab" else rgb_to_target(batch["rgb"], space)
        return {"loss": self.criterion(pred, target)}
