"""A U-Net that also reads colour hints (Zhang et al. 2017): hint ab + mask as extra input channels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colorlab.models.blocks import UNetSkeleton, crop_padding, pad_to_multiple

HINT_CHANNELS = 3  # ab (zero outside hints) and the mask
SPREAD_CHANNELS = 6  # see spread_hints
HINT_HEAD_WIDTH = 32


def _zero_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _pool(x: torch.Tensor, size: tuple[int, int], kind: str) -> torch.Tensor:
    """Average or max pooling of ``x`` to ``size``: a fixed kernel when the sizes divide (the encoder's levels
    always do; ONNX exports that at any input size, adaptive pooling it cannot), else adaptive pooling."""
    h, w = x.shape[-2:]
    if h % size[0] == 0 and w % size[1] == 0:
        kernel = (int(h) // int(size[0]), int(w) // int(size[1]))  # constants in a traced graph: the ratio is fixed
        return F.avg_pool2d(x, kernel) if kind == "avg" else F.max_pool2d(x, kernel)
    return F.adaptive_avg_pool2d(x, size) if kind == "avg" else F.adaptive_max_pool2d(x, size)


def pool_hints(hints: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Hint channels ``(B, 3, H, W)`` at a coarser ``size``: the mean hint ab of each cell (not diluted by the
    cell's unhinted pixels) and whether the cell holds any hint."""
    if tuple(hints.shape[-2:]) == tuple(size):
        return hints
    ab_sum, coverage = _pool(hints[:, :2], size, "avg"), _pool(hints[:, 2:], size, "avg")
    present = _pool(hints[:, 2:], size, "max")
    return torch.cat([ab_sum / coverage.clamp_min(1e-6) * present, present], dim=1)


def spread_hints(hints: torch.Tensor, factor: int = 8, blur: int = 5, passes: int = 3) -> torch.Tensor:
    """Dense guesses from sparse hint channels ``(B, 3, H, W)`` -> ``(B, 6, H, W)``: the local hint colour (masked
    mean over a neighbourhood of about ``factor * blur * passes`` pixels, by normalised convolution at 1/``factor``
    scale) and where it reaches, then the mean of all hints and whether there is any (Zhang et al.'s global hint).
    The net learns when to trust them; they let a few hints reach far within a short training."""
    ab, mask = hints[:, :2], hints[:, 2:]
    small_ab = F.avg_pool2d(ab, factor, ceil_mode=True)
    small_mask = F.avg_pool2d(mask, factor, ceil_mode=True)
    for _ in range(passes):
        small_ab = F.avg_pool2d(small_ab, blur, stride=1, padding=blur // 2, count_include_pad=False)
        small_mask = F.avg_pool2d(small_mask, blur, stride=1, padding=blur // 2, count_include_pad=False)
    reach = (small_mask > 0).to(hints.dtype)
    local = F.interpolate(torch.cat([small_ab / small_mask.clamp_min(1e-12) * reach, reach], 1),
                          size=hints.shape[-2:], mode="bilinear", align_corners=False)  # fmt: skip
    count = mask.sum(dim=(2, 3), keepdim=True)
    present = (count > 0).to(hints.dtype)
    overall = torch.cat([ab.sum(dim=(2, 3), keepdim=True) / count.clamp_min(1e-12), present], 1)
    return torch.cat([local, overall.expand(-1, -1, *hints.shape[-2:])], 1)


class HintUNet(nn.Module):
    """Any colorlab U-Net (``base``, e.g. :class:`colorlab.models.unet.TimmUNet`) with hint input channels.

    The hint channels join the gray input and reach every level of the encoder pyramid, each through a
    zero-initialised 3x3 convolution added to that level's features. Adding ``conv(hints)`` to a level equals
    concatenating the hints to its input channels with zero-initialised weights; doing it at every level (not only
    the stem, as in Zhang's net) lets a pretrained encoder with frozen early stages still route hints to its deep,
    global levels. At full resolution a small hint head reads the last decoder features, the hints and their
    :func:`spread_hints` and adds its answer to the output layer's pre-activation; its last convolution is
    zero-initialised too, so a net built from an automatic checkpoint starts *exactly* equal to it.

    Args:
        base: the automatic U-Net (input normalised L, output ab); its weights load unchanged into ``base``.
    """

    def __init__(self, base: UNetSkeleton) -> None:
        super().__init__()
        self.base = base
        self.multiple: int = base.multiple
        with torch.no_grad():
            skips, head_in = self._shapes(torch.zeros(1, 1, 2 * self.multiple, 2 * self.multiple))
        self.level_hints = nn.ModuleList(_zero_conv(HINT_CHANNELS, c) for c in skips)
        self.hint_head = nn.Sequential(
            nn.Conv2d(head_in + HINT_CHANNELS + SPREAD_CHANNELS, HINT_HEAD_WIDTH, 3, padding=1),
            nn.ReLU(inplace=True),
            _zero_conv(HINT_HEAD_WIDTH, base.head[0].out_channels),
        )

    def _shapes(self, L: torch.Tensor) -> tuple[list[int], int]:
        skips = self.base.encode(L)
        channels = [s.shape[1] for s in skips]
        y = skips.pop()
        for stage in self.base.decoder:
            y = stage(y, skips.pop())
        return channels, y.shape[1]

    def encode(self, L: torch.Tensor) -> list[torch.Tensor]:
        """The base's feature pyramid of normalised L (H, W multiples of ``multiple``), shallow to deep."""
        return self.base.encode(L)

    def forward(self, L: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised L ``(B, 1, H, W)`` and hint channels ``(B, 3, H, W)`` (None: no hints) -> ab ``(B, 2, H, W)``."""
        if hints is None:
            hints = L.new_zeros(L.shape[0], HINT_CHANNELS, *L.shape[-2:])
        x, pad = pad_to_multiple(torch.cat([L, hints], dim=1), self.multiple)
        L, hints = x[:, :1], x[:, 1:]
        skips = [
            feature + conv(pool_hints(hints, feature.shape[-2:]))
            for feature, conv in zip(self.encode(L), self.level_hints)
        ]
        y = skips.pop()
        if self.base.bottleneck is not None:
            y = self.base.bottleneck(y)
        for stage in self.base.decoder:
            y = stage(y, skips.pop())
        conv, activation = self.base.head
        logits = conv(y) + self.hint_head(torch.cat([y, hints, spread_hints(hints)], dim=1))
        return crop_padding(activation(logits), pad)
