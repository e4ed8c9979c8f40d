"""Critics (discriminators) for adversarial colorization."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils import parametrizations, spectral_norm

from colorlab.models.blocks import cat_channels

Norm = Literal["batch", "instance", "spectral", "none"]


class PatchGAN(nn.Module):
    """Conditional PatchGAN (pix2pix): scores overlapping patches of the (condition, colour) pair.

    Args:
        in_channels: channels of the judged image plus its condition (e.g. 1 L + 2 ab = 3).
        base_channels: width of the first layer; doubles per layer up to 8x.
        n_layers: strided layers (3 gives 70x70 receptive fields).
        norm: ``batch``, ``instance`` (use with WGAN-GP, which forbids batch coupling), ``spectral`` or ``none``.
    """

    def __init__(
        self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3, norm: Norm = "batch"
    ) -> None:
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
        x = image if condition is None else cat_channels([condition, image])
        return self.net(x)


# The classes below use the parametrization form of spectral norm: it runs 15 power iterations when built, so
# an untrained critic already scores sensibly in eval mode.


class SelfAttention(nn.Module):
    """SAGAN self-attention over all positions, spectrally normalised; starts as the identity (gamma = 0).

    Args:
        channels: input and output channels (queries and keys use ``channels // 8``, at least 1).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = parametrizations.spectral_norm(nn.Conv1d(channels, inner, 1))
        self.key = parametrizations.spectral_norm(nn.Conv1d(channels, inner, 1))
        self.value = parametrizations.spectral_norm(nn.Conv1d(channels, channels, 1))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        flat = x.flatten(2)
        attention = torch.softmax(torch.bmm(self.query(flat).transpose(1, 2), self.key(flat)), dim=1)
        return (self.gamma * torch.bmm(self.value(flat), attention) + flat).view_as(x)


class DeOldifyCritic(nn.Module):
    """DeOldify's critic (fastai ``gan_critic``): spectral-norm convs with LeakyReLU, dropout and one
    self-attention layer, ending in a 4x4 unpadded conv that scores patches.

    Args:
        in_channels: channels of the judged image plus its condition (1 L + 2 ab = 3).
        base_channels: width of the first layer, doubled by each block (DeOldify used 256).
        n_blocks: stride-2 blocks after the first stride-2 conv; inputs need at least ``4 * 2**(n_blocks + 1)`` px.
        dropout: dropout probability inside the blocks (half of it after the first conv).
        self_attention: add self-attention after the first block.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 256,
        n_blocks: int = 3,
        dropout: float = 0.15,
        self_attention: bool = True,
    ) -> None:
        super().__init__()

        def conv(cin: int, cout: int, kernel: int, stride: int) -> list[nn.Module]:
            layer = parametrizations.spectral_norm(
                nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2 if stride == 1 else 1)
            )
            return [layer, nn.LeakyReLU(0.2, inplace=True)]

        width = base_channels
        layers = [*conv(in_channels, width, 4, 2), nn.Dropout2d(dropout / 2)]
        for i in range(n_blocks):
            layers += [*conv(width, width, 3, 1), nn.Dropout2d(dropout), *conv(width, width * 2, 4, 2)]
            if i == 0 and self_attention:
                layers.append(SelfAttention(width * 2))
            width *= 2
        layers += [
            *conv(width, width, 3, 1),
            parametrizations.spectral_norm(nn.Conv2d(width, 1, 4, padding=0, bias=False)),
        ]
        self.net = nn.Sequential(*layers)
        self.min_size = 4 * 2 ** (n_blocks + 1)

    def forward(self, image: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, H, W)`` image (concatenated with ``condition`` if given) -> ``(B, 1, h, w)`` patch logits."""
        x = image if condition is None else cat_channels([condition, image])
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"DeOldifyCritic needs images of at least {self.min_size} px, got {tuple(x.shape[-2:])}"
            )
        return self.net(x)
