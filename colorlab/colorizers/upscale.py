"""Super-resolution of L as deployed: the net adds detail to bicubic (or predicts the whole picture)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colorlab.color import l_to_gray_rgb, rgb_to_gray_l
from colorlab.colorizers.base import DeployableColorizer
from colorlab.models.blocks import crop_padding, pad_to_multiple


def bicubic_l(L: torch.Tensor, scale: int) -> torch.Tensor:
    """Normalised L ``(B, 1, H, W)`` -> its bicubic ×``scale`` enlargement, clamped to [-1, 1]."""
    return F.interpolate(L, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1.0, 1.0)


class UpscaleNet(DeployableColorizer):
    """Pad, run the net on gray, add the bicubic base, crop: normalised L -> L ``scale`` times larger.

    Args:
        net: e.g. :class:`colorlab.models.rrdb.RRDBNet`; it must have a ``scale`` attribute.
        residual: the net predicts detail added to the bicubic upscaling.
    """

    restores_l = True

    def __init__(self, net: nn.Module, residual: bool = True) -> None:
        super().__init__()
        self.net = net
        self.residual = residual

    @classmethod
    def init_args_from(cls, hparams: dict[str, Any]) -> dict[str, Any]:
        # The Upscaler approach stores its net as ``net``, its GAN stage (AdversarialUpscaler) as ``generator``.
        if "net" not in hparams and "generator" in hparams:
            hparams = {**hparams, "net": hparams["generator"]}
        return super().init_args_from(hparams)

    @property
    def scale(self) -> int:
        """The upscaling factor (the net's ``scale``)."""
        return int(self.net.scale)

    def upscale_l(self, L: torch.Tensor) -> torch.Tensor:
        """Normalised L ``(B, 1, H, W)`` -> upscaled normalised L ``(B, 1, s*H, s*W)`` (not clamped).

        A 1-channel net reads L / 100 in [0, 1]; a 3-channel net (published RGB weights) reads the gray
        sRGB picture and its output's luminance is kept. With ``residual`` the net adds detail to bicubic.
        """
        rgb_net = getattr(self.net, "num_in_ch", 1) == 3

        def net_input(L: torch.Tensor) -> torch.Tensor:
            return l_to_gray_rgb(L) if rgb_net else (L + 1.0) / 2.0

        padded, pad = pad_to_multiple(L, getattr(self.net, "multiple", 1))
        out = crop_padding(self.net(net_input(padded)), (pad[0] * self.scale, pad[1] * self.scale))
        if self.residual:  # bicubic of the unpadded input: the padding must not leak into the baseline
            out = out + F.interpolate(
                net_input(L), scale_factor=self.scale, mode="bicubic", align_corners=False
            )
        return rgb_to_gray_l(out.clamp(0.0, 1.0)) if out.shape[1] == 3 else out * 2.0 - 1.0

    def automatic_lab(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution normalised L -> (upscaled L in [-1, 1], ab = 0): the gray upscaled picture."""
        L_out = self.upscale_l(L).clamp(-1.0, 1.0)
        return L_out, torch.zeros_like(L_out).expand(-1, 2, -1, -1)

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """An upscaler leaves colour to the colorizer: ab = 0 at the input's size."""
        return torch.zeros_like(L).expand(-1, 2, -1, -1)
