"""Regression colorizers: a net predicts the colour directly, trained with L1 / MSE / Huber or CIEDE2000.

The target is Lab ab by default; ``target_space`` switches it to full RGB or to the chroma of YUV,
YCbCr or HSV (see :func:`colorlab.color.rgb_to_target`). The loss is computed in that space, while
``predict_lab`` always answers in Lab, so the shared metrics compare every space on the same footing.
In every space a net output of 0 means the gray picture of the input (the neutral start, since nets
start at 0): chroma targets are 0 for gray anyway; for ``rgb`` the net predicts the change from it.

Against the sepia pull, ``prior_path`` weighs each pixel by how rare its true colour is (Zhang et al.'s class
rebalancing, applied to regression: :class:`colorlab.losses.ColorLoss`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from colorlab.approaches.base import ColorizationModule
from colorlab.color import TargetSpace, rgb_to_target
from colorlab.colorizers.regression import RegressionNet
from colorlab.losses import ColorLoss, ColorLossName


class RegressionColorizer(ColorizationModule):
    """Any net mapping L ``(B, 1, H, W)`` to a colour target (tanh output), with a pixel loss on it.

    Args:
        net: the network, e.g. :class:`colorlab.models.unet.UNet` or
            :class:`colorlab.models.simple_cnn.SimpleCNN`; its output channels must match the target space
            (2, or 3 for ``rgb``).
        loss: ``l1``, ``mse``, ``huber`` (on the normalised target) or ``delta_e00`` (CIEDE2000 plus a small L1
            term, in Lab units: :class:`colorlab.losses.DeltaE00Loss`; ``lab`` target only).
        huber_delta: where Huber switches from quadratic to linear (in normalised target units).
        target_space: what the net predicts: ``lab`` (ab / 110), ``rgb`` (2 * rgb - 1), ``yuv`` or ``ycbcr``
            (chroma scaled to [-1, 1]; luma from the input) or ``hsv`` (s * (cos h, sin h); V from the input).
        keep_input_l: ``rgb`` only: True replaces the predicted picture's lightness by the input's L,
            False keeps the predicted RGB as it is.
        prior_path: ``.npy`` ab prior (``python -m colorlab prior``) to rebalance the loss by colour rarity;
            None weighs every pixel alike. ``lab`` target only.
        rebalance_lambda: weight of the uniform distribution mixed into the prior (Zhang et al.: 0.5).
        prior_sigma: Gaussian smoothing of the prior over ab, in Lab units.
        **kwargs: optimizer, scheduler, grid_images (see :class:`ColorizationModule`).
    """

    colorizer_class = RegressionNet
    legacy_keys = (("net.", "colorizer.net."),)

    def __init__(
        self,
        net: nn.Module,
        loss: ColorLossName = "l1",
        huber_delta: float = 0.1,
        target_space: TargetSpace = "lab",
        keep_input_l: bool = True,
        prior_path: str | None = None,
        rebalance_lambda: float = 0.5,
        prior_sigma: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for option, used in (("loss: delta_e00", loss == "delta_e00"), ("prior_path", prior_path is not None)):
            if used and target_space != "lab":
                raise ValueError(f"{option} needs target_space lab (ab bins, Lab units), got {target_space!r}")
        self.colorizer = RegressionNet(net, target_space, keep_input_l)
        self.criterion = ColorLoss(loss, huber_delta, prior_path, rebalance_lambda, prior_sigma)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pred = self.colorizer.predict_target(self.model_input(batch))
        space = self.colorizer.target_space
        target = batch["ab"] if space == "lab" else rgb_to_target(batch["rgb"], space)
        return self.criterion(batch["L"], pred, target)
