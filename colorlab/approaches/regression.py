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
from colorlab.color import (
    TARGET_CHANNELS,
    TargetSpace,
    l_to_gray_rgb,
    rgb_to_lab_normalized,
    rgb_to_target,
    target_to_rgb,
)
from colorlab.guidance import HintMap, refuse_guidance
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
        if target_space not in TARGET_CHANNELS:
            choices = ", ".join(TARGET_CHANNELS)
            raise ValueError(f"unknown target_space {target_space!r}; choose one of {choices}")
        self.net = net
        self.criterion = pixel_loss(loss, huber_delta)
        self.target_space = target_space
        self.keep_input_l = keep_input_l

    def predict_target(self, L: torch.Tensor) -> torch.Tensor:
        """Normalised L ``(B, 1, H, W)`` -> the prediction in the target space ``(B, C, H, W)``: the net's
        output, plus the input's gray picture for ``rgb`` (so a zero output is gray, as in the other spaces)."""
        pred = self.net(L)
        channels = TARGET_CHANNELS[self.target_space]
        if pred.shape[1] != channels:
            raise ValueError(
                f"target_space {self.target_space!r} needs a net with {channels} output channels "
                f"(e.g. out_channels: {channels}), got {pred.shape[1]}"
            )
        if self.target_space == "rgb":
            pred = pred + rgb_to_target(l_to_gray_rgb(L), "rgb")
        return pred

    def predict_lab(
        self, L: torch.Tensor, hints: HintMap | None = None, reference: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (L, ab) of the picture: the prediction converted to Lab; L is the input's unless
        ``target_space`` is ``rgb`` with ``keep_input_l`` off. No guidance."""
        refuse_guidance(self, hints, reference)
        pred = self.predict_target(L)
        if self.target_space == "lab":
            return L, pred
        L_pred, ab = rgb_to_lab_normalized(target_to_rgb(pred, L, self.target_space))
        keep_predicted = self.target_space == "rgb" and not self.keep_input_l
        return (L_pred if keep_predicted else L), ab

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pred = self.predict_target(self.model_input(batch))
        target = batch["ab"] if self.target_space == "lab" else rgb_to_target(batch["rgb"], self.target_space)
        return {"loss": self.criterion(pred, target)}
