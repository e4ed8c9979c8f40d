"""ChromaGAN's generator (Vitoria, Raad & Ballester, WACV 2020): ab plus a semantic class distribution.

A stride-8 trunk (VGG16 up to conv4_3 in the paper) feeds two branches. The global branch downsamples
twice more and ends in two heads: a distribution over the 1000 ImageNet classes, and a global code that
is repeated over the mid-level map and fused into the colour branch. The decoder upsamples the fused map
back to the input size as ab.

Departures from the Keras original, so that any input size works and the net fits a laptop:
the global map is average-pooled instead of flattened at a fixed 7x7 (the paper's net only takes 224 px),
the MLPs have ReLUs between their layers (the original's stacked Dense layers are linear), upsampling is
bilinear, ab goes through ``tanh`` (ab / 110 lies in [-1, 1]) instead of ``sigmoid``, and the trunk is
either a VGG-like stack from scratch or a pretrained timm pyramid level (EfficientNet-Lite0 offline).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from colorlab.models.blocks import (
    ConvEncoder,
    OutputHead,
    TimmEncoder,
    conv_norm_act,
    crop_padding,
    pad_to_multiple,
)

TRUNK_STRIDE = 8

# ---- helpers ----------------------------------------------------------------------------------------


def mlp(widths: Sequence[int]) -> nn.Sequential:
    """Linear layers through ``widths`` (input first) with ReLUs between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(pairwise(widths)):
        layers += (
            [nn.Linear(cin, cout)] if i == len(widths) - 2 else [nn.Linear(cin, cout), nn.ReLU(inplace=True)]
        )
    return nn.Sequential(*layers)


# ---- trunks -----------------------------------------------------------------------------------------


class ScratchTrunk(nn.Module):
    """VGG-like stride-8 feature extractor trained from scratch: the deepest level of a 4-level
    :class:`colorlab.models.blocks.ConvEncoder` (a ConvBlock per stage, max-pool between)."""

    def __init__(self, channels: Sequence[int] = (64, 128, 256, 512)) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"the trunk needs 4 stages (stride 8), got channels={tuple(channels)}")
        self.encoder = ConvEncoder(1, channels)
        self.out_channels = channels[-1]

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` normalised L -> ``(B, out_channels, H/8, W/8)``."""
        return self.encoder(L)[-1]


class TimmTrunk(nn.Module):
    """The stride-8 level of a pretrained timm pyramid (:class:`colorlab.models.blocks.TimmEncoder`)."""

    def __init__(
        self,
        encoder_name: str = "efficientnet_lite0",
        pretrained: bool = False,
        weights_path: str | None = None,
    ) -> None:
        super().__init__()
        self.encoder = TimmEncoder(encoder_name, pretrained, weights_path, out_indices=(2,))
        if self.encoder.reductions[-1] != TRUNK_STRIDE:
            raise ValueError(f"{encoder_name}'s feature level 2 is not at stride {TRUNK_STRIDE}")
        self.out_channels = self.encoder.channels[-1]

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` normalised L -> ``(B, out_channels, H/8, W/8)``."""
        return self.encoder(L)[-1]


# ---- the generator ----------------------------------------------------------------------------------


class ChromaGANGenerator(nn.Module):
    """L -> (ab, class log-probabilities). Paper widths are the defaults; shrink them for CPU runs.

    Any H, W: the input is padded to a multiple of 8 (``multiple``), the trunk's stride.

    Args:
        encoder: ``scratch`` (VGG-like trunk) or a timm model name whose feature level 2 has stride 8.
        pretrained: load local ImageNet weights into a timm trunk (see :mod:`colorlab.models.pretrained`).
        weights_path: explicit weight file for the timm trunk.
        trunk_channels: widths of the 4 stages of the scratch trunk (VGG16 to conv4_3: 64, 128, 256, 512).
        mid_channels: the two convolutions of the mid-level colour branch.
        global_channels: width of the four global-branch convolutions (two of them stride 2).
        fusion_hidden: hidden widths of the MLP that makes the fused global code.
        fusion_channels: size of the global code repeated over the mid-level map.
        class_hidden: hidden widths of the class head's MLP.
        num_classes: classes of the distribution head (1000 for an ImageNet teacher).
        decoder_channels: 1x1 fusion conv, 3x3 conv, then (x2 up) two convs, then (x2 up) one conv, then
            the 2-channel ab conv and a last x2 upsampling.
    """

    def __init__(
        self,
        encoder: str = "scratch",
        pretrained: bool = False,
        weights_path: str | None = None,
        trunk_channels: Sequence[int] = (64, 128, 256, 512),
        mid_channels: tuple[int, int] = (512, 256),
        global_channels: int = 512,
        fusion_hidden: Sequence[int] = (1024, 512),
        fusion_channels: int = 256,
        class_hidden: Sequence[int] = (4096, 4096),
        num_classes: int = 1000,
        decoder_channels: tuple[int, int, int, int] = (256, 128, 64, 32),
    ) -> None:
        super().__init__()
        self.multiple = TRUNK_STRIDE
        if encoder == "scratch":
            self.trunk: nn.Module = ScratchTrunk(trunk_channels)
        else:
            self.trunk = TimmTrunk(encoder, pretrained, weights_path)
        width = self.trunk.out_channels
        self.mid = nn.Sequential(conv_norm_act(width, mid_channels[0]), conv_norm_act(*mid_channels))
        self.global_features = nn.Sequential(
            conv_norm_act(width, global_channels, stride=2),
            conv_norm_act(global_channels, global_channels),
            conv_norm_act(global_channels, global_channels, stride=2),
            conv_norm_act(global_channels, global_channels),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fusion_code = mlp([global_channels, *fusion_hidden, fusion_channels])
        self.class_head = mlp([global_channels, *class_hidden, num_classes])
        c1, c2, c3, c4 = decoder_channels

        def conv_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
            return conv_norm_act(cin, cout, kernel, norm=False)

        up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.decoder = nn.Sequential(
            conv_relu(mid_channels[1] + fusion_channels, c1, kernel=1),
            conv_relu(c1, c2),
            up,
            conv_relu(c2, c3),
            conv_relu(c3, c3),
            up,
            conv_relu(c3, c4),
            OutputHead(c4, 2, 3, "tanh"),
            up,
        )

    def forward(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised L ``(B, 1, H, W)`` (any H, W) -> ab ``(B, 2, H, W)`` in [-1, 1] and class
        log-probabilities ``(B, num_classes)`` (``exp`` sums to 1 per image)."""
        x, pad = pad_to_multiple(L, self.multiple)
        features = self.trunk(x)
        mid = self.mid(features)
        global_vector = self.global_features(features)
        code = self.fusion_code(global_vector)[:, :, None, None].expand(-1, -1, *mid.shape[-2:])
        ab = self.decoder(torch.cat([mid, code], dim=1))
        return crop_padding(ab, pad), F.log_softmax(self.class_head(global_vector), dim=1)
