"""Zhang et al. 2016's decode: bin logits over the in-gamut ab bins, decoded by annealed mean, mode or mean."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from colorlab.color import ab_gamut_bins, decode_ab_logits, normalize_ab, upsample_ab
from colorlab.colorizers.base import DeployableColorizer

Decode = Literal["annealed_mean", "mode", "mean"]


def downsample_mean(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Area mean ``(B, C, H, W)`` -> ``(B, C, H // factor, W // factor)`` (any H, W; at least 1x1)."""
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    if h % factor == 0 and w % factor == 0:
        # The same numbers, as a fixed-kernel pooling ONNX can export at any size (adaptive pooling it cannot).
        return F.avg_pool2d(x, factor)
    return F.adaptive_avg_pool2d(x, (max(1, h // factor), max(1, w // factor)))


class BinClassifierNet(DeployableColorizer):
    """A net mapping L ``(B, 1, H, W)`` to ``Q`` bin logits, decoded to ab at the input's size.

    Args:
        net: e.g. :class:`colorlab.models.unet.TimmUNet` with ``out_channels`` = the bin count.
        downsample: the logits are area-averaged to ``1 / downsample`` resolution (as in training).
        decode: ``annealed_mean``, ``mode`` or ``mean``.
        temperature: annealed-mean temperature (1 = mean, -> 0 = mode).
    """

    def __init__(
        self, net: nn.Module, downsample: int = 4, decode: Decode = "annealed_mean", temperature: float = 0.38
    ) -> None:
        super().__init__()
        if decode not in ("annealed_mean", "mode", "mean"):
            raise ValueError(f"unknown decode {decode!r}; choose annealed_mean, mode or mean")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if downsample < 1:
            raise ValueError(f"downsample must be >= 1, got {downsample}")
        self.net = net
        self.downsample = downsample
        self.decode = decode
        self.temperature = temperature
        self.register_buffer("bin_centers", ab_gamut_bins(), persistent=False)

    @property
    def num_bins(self) -> int:
        """Number of ab classes ``Q``."""
        return self.bin_centers.shape[0]

    def logits(self, L: torch.Tensor) -> torch.Tensor:
        """Bin logits ``(B, Q, H / downsample, W / downsample)`` for normalised L ``(B, 1, H, W)``."""
        logits = self.net(L)
        if logits.shape[1] != self.num_bins:
            raise ValueError(
                f"the net outputs {logits.shape[1]} channels but there are {self.num_bins} ab bins; "
                f"set the net's out_channels to {self.num_bins}"
            )
        return downsample_mean(logits, self.downsample)

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        ab = decode_ab_logits(self.logits(L), self.bin_centers, self.decode, self.temperature)
        return upsample_ab(normalize_ab(ab), L.shape[-2:])
