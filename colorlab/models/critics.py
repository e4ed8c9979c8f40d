"""Critics (discriminators) for adversarial colorization."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils import spectral_norm

Norm = Literal["batch", "instance", "spectral", "none"]


class PatchGAN(nn.Module):
    """Conditional PatchGAN (pix2pix): scores overlapping patches of the (condition, colour) pair.

    Args:
        in_channels: channels of the judged image plus its condition (e.g. 1 L + 2 ab = 3).
        base_channels: width of the first layer; doubles per layer up to 8x.
        n_layers: strided layers (3 gives 70x70 receptive fields).
        norm: ``batch``, ``instance`` (use with WGAN-GP, which forbids batch coupling), ``spectral`` or ``none``.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3, norm: Norm = "batch") -> None:
        super().__init__()

        def conv(cin: int, cout: int, stride: int, normed: bool) -> list[nn.Module]:
            layer = nn.Conv2d(cin, cout, 4, stride=stride, padding=1, bias=not normed or norm == "spectral")
            if norm == "spectral":
                return [spectral_norm(layer), nn.LeakyReLU(0.2, inplace=True)]
            layers: list[nn.Module] = [layer]
            if normed and norm == "batch":
                layers.append(nn.BatchNorm2d(cout))
            elif normed and norm == "instance":
                layers.append(nn.InstanceNorm2d(cout, affine=True))
            return [*layers, nn.LeakyReLU(0.2, inplace=True)]

        widths = [base_channels * min(2**i, 8) for i in range(n_layers + 1)]
        layers = conv(in_channels, widths[0], 2, normed=False)
        for i in range(1, n_layers + 1):
            layers += conv(widths[i - 1], widths[i], 2 if i < n_layers else 1, normed=True)
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, H, W)`` image (concatenated with ``condition`` if given) -> ``(B, 1, h, w)`` scores."""
        x = image if condition is None else torch.cat([condition, image], dim=1)
        return self.net(x)
