"""Small building blocks shared by the colorization nets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def activation(name: str | None) -> nn.Module:
    """Output activation by name: ``tanh`` (ab in [-1, 1]), ``sigmoid`` (RGB in [0, 1]) or ``None``."""
    layers = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "none": nn.Identity, None: nn.Identity}
    if name not in layers:
        raise ValueError(f"unknown activation {name!r}; choose one of tanh, sigmoid, none")
    return layers[name]()


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """Upsample to the skip's size, concatenate the skip, then a ConvBlock (a U-Net decoder stage)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBlock(in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W up to a multiple (so any photo size fits a strided encoder); returns the pad."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (pad_h, pad_w)


def crop_padding(x: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`."""
    pad_h, pad_w = pad
    return x[..., : x.shape[-2] - pad_h, : x.shape[-1] - pad_w]
