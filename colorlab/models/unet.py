"""U-Nets for colorization: one from scratch, one on a pretrained timm encoder pyramid."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from colorlab.models.blocks import (
    ConvEncoder,
    OutputHead,
    TimmEncoder,
    UNetSkeleton,
    UpBlock,
    input_skip_widths,
)
from colorlab.models.features import ImageNetClassHead


class UNet(UNetSkeleton):
    """Classic U-Net: ConvBlock encoder with max-pooling, bilinear-upsampling decoder with skips.

    Args:
        in_channels: input channels (1 for normalised L).
        out_channels: output channels (2 for ab, 3 for RGB, 261 for Zhang's bins...).
        base_channels: width of the first stage; doubles at each of the ``depth`` downsamplings.
        depth: number of downsamplings (input is padded to a multiple of ``2**depth``).
        final_activation: ``tanh``, ``sigmoid`` or ``none``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        base_channels: int = 32,
        depth: int = 4,
        final_activation: str | None = "tanh",
    ) -> None:
        widths = [base_channels * 2**i for i in range(depth + 1)]
        super().__init__(
            encoder=ConvEncoder(in_channels, widths),
            decoder=[UpBlock(widths[i + 1], widths[i], widths[i]) for i in reversed(range(depth))],
            head=OutputHead(widths[0], out_channels, 1, final_activation),
        )


class SemanticPrior(nn.Module):
    """Adds what the frozen ImageNet classifier makes of the photo to the deepest features: its 1000 class
    probabilities, projected to the feature width and broadcast over every position (Iizuka et al. 2016's
    global-feature fusion, with an ImageNet classifier as the global network).

    The projection starts at zero, so the net starts as the plain U-Net and learns how much to use it.
    """

    def __init__(self, channels: int, encoder_name: str, pretrained: bool, weights_path: str | None) -> None:
        super().__init__()
        self.classes = ImageNetClassHead(encoder_name, pretrained, weights_path)
        if self.classes.in_channels != channels:
            raise ValueError(f"the {encoder_name} head reads {self.classes.in_channels} channels, the encoder's "
                             f"deepest level has {channels}")  # fmt: skip
        self.project = nn.Linear(self.classes.head[-1].out_features, channels)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` -> the same features plus the projected class probabilities."""
        return features + self.project(self.classes(features)).to(features.dtype)[..., None, None]


class TimmUNet(UNetSkeleton):
    """U-Net whose encoder is a timm ``features_only`` pyramid (e.g. ImageNet EfficientNet-Lite0).

    The gray input goes to the encoder as ImageNet-normalised RGB (:class:`colorlab.models.blocks.TimmEncoder`).
    Decoder stages mirror the pyramid; a last stage at full resolution takes the input itself as its skip so
    fine edges follow L.

    Args:
        encoder_name: any timm model that supports ``features_only``.
        pretrained: load local ImageNet weights (see :mod:`colorlab.models.pretrained`).
        weights_path: explicit weight file; otherwise the offline search order applies.
        out_channels: output channels (2 for ab).
        decoder_channels: width of each decoder stage, deepest first; one per encoder level.
        final_activation: ``tanh``, ``sigmoid`` or ``none``.
        freeze_encoder: start with the encoder frozen (``set_encoder_trainable`` changes it later).
        encoder_kwargs: extra :class:`TimmEncoder` arguments, e.g. ``{frozen_stages: 3}``, or arguments for
            ``timm.create_model``, e.g. ``{channels: [32, 64, 128, 256]}`` for a narrower ResNet (pretrained
            weights then no longer fit).
        semantic_prior: add the frozen ImageNet classifier's class probabilities to the deepest features
            (:class:`SemanticPrior`; EfficientNet-family encoders, whose head it reuses).
    """

    def __init__(
        self,
        encoder_name: str = "efficientnet_lite0",
        pretrained: bool = False,
        weights_path: str | None = None,
        out_channels: int = 2,
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
        final_activation: str | None = "tanh",
        freeze_encoder: bool = False,
        encoder_kwargs: dict[str, Any] | None = None,
        semantic_prior: bool = False,
    ) -> None:
        encoder = TimmEncoder(encoder_name, pretrained, weights_path, **(encoder_kwargs or {}))
        channels = encoder.channels
        in_channels, skip_channels = input_skip_widths(channels, decoder_channels, 1)
        super().__init__(
            encoder=encoder,
            decoder=[UpBlock(*c) for c in zip(in_channels, skip_channels, decoder_channels)],
            head=OutputHead(decoder_channels[-1], out_channels, 1, final_activation),
            bottleneck=SemanticPrior(channels[-1], encoder_name, pretrained, weights_path) if semantic_prior else None,
            input_skip=True,
        )
        self.set_encoder_trainable(not freeze_encoder)

    def set_encoder_trainable(self, trainable: bool) -> None:
        """Freeze or unfreeze the encoder (frozen BatchNorm layers also stop updating statistics)."""
        self.encoder_trainable = trainable
        self.encoder.requires_grad_(trainable)
        self.encoder.train(trainable and self.training)

    def train(self, mode: bool = True) -> TimmUNet:
        super().train(mode)
        self.encoder.train(mode and getattr(self, "encoder_trainable", True))
        return self
