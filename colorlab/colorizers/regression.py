"""Direct regression: a net predicts the colour target (Lab ab, or RGB / YUV / YCbCr / HSV chroma)."""

from __future__ import annotations

import torch
from torch import nn

from colorlab.color import (
    TARGET_CHANNELS,
    TargetSpace,
    l_to_gray_rgb,
    rgb_to_lab_normalized,
    rgb_to_target,
    target_to_rgb,
)
from colorlab.colorizers.base import DeployableColorizer


class RegressionNet(DeployableColorizer):
    """A net mapping L ``(B, 1, H, W)`` to a colour target; ``predict_lab`` always answers in Lab.

    Args:
        net: e.g. :class:`colorlab.models.unet.TimmUNet`; its output channels match the target space.
        target_space: ``lab``, ``rgb``, ``yuv``, ``ycbcr`` or ``hsv`` (see :func:`colorlab.color.rgb_to_target`).
        keep_input_l: ``rgb`` only: True replaces the predicted picture's lightness by the input's L.
    """

    def __init__(self, net: nn.Module, target_space: TargetSpace = "lab", keep_input_l: bool = True) -> None:
        super().__init__()
        if target_space not in TARGET_CHANNELS:
            choices = ", ".join(TARGET_CHANNELS)
            raise ValueError(f"unknown target_space {target_space!r}; choose one of {choices}")
        self.net = net
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

    def automatic_lab(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (L, ab) of the picture: the prediction converted to Lab; L is the input's unless
        ``target_space`` is ``rgb`` with ``keep_input_l`` off."""
        pred = self.predict_target(L)
        if self.target_space == "lab":
            return L, pred
        L_pred, ab = rgb_to_lab_normalized(target_to_rgb(pred, L, self.target_space))
        keep_predicted = self.target_space == "rgb" and not self.keep_input_l
        return (L_pred if keep_predicted else L), ab
