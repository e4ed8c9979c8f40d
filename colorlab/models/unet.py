"""U-Nets for colorization: one from scratch, one on a pretrained timm encoder pyramid."""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn

from colorlab.models.blocks import ConvBlock, UpBlock, activation, crop_padding, pad_to_multiple
from colorlab.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, load_pretrained_timm


class UNet(nn.Module):
    """Classic U-Net: ConvBlock encoder with max-pooling, bilinear-upsampling decoder with skips.

    Args:
        in_channels: input channels (1 for normalised L).
        out_channels: output channels (2 for ab, 3 for RGB, 313 for Zhang's bins...).
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
        super().__init__()
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.multiple = 2**depth
        self.stem = ConvBlock(in_channels, widths[0])
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), ConvBlock(widths[i], widths[i + 1])) for i in range(depth)
        )
        self.ups = nn.ModuleList(UpBlock(widths[i + 1], widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Sequential(nn.Conv2d(widths[0], out_channels, 1), activation(final_activation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)`` for any H, W."""
        x, pad = pad_to_multiple(x, self.multiple)
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return crop_padding(self.head(y), pad)


class TimmUNet(nn.Module):
    """U-Net whose encoder is a timm ``features_only`` pyramid (e.g. ImageNet EfficientNet-Lite0).

    The gray input (normalised L in [-1, 1]) is repeated to three channels and normalised with the
    ImageNet statistics the encoder was trained with. Decoder stages mirror the pyramid; a last stage
    at full resolution takes the input itself as its skip so fine edges follow L.

    Args:
        encoder_name: any timm model that supports ``features_only``.
        pretrained: load local ImageNet weights (see :mod:`colorlab.models.pretrained`).
        weights_path: explicit weight file; otherwise the offline search order applies.
        out_channels: output channels (2 for ab).
        decoder_channels: width of each decoder stage, deepest first; one per encoder level.
        final_activation: ``tanh``, ``sigmoid`` or ``none``.
        freeze_encoder: start with the encoder frozen (``set_encoder_trainable`` changes it later).
        encoder_kwargs: extra arguments for ``timm.create_model``, e.g. ``{channels: [32, 64, 128, 256]}`` for a
            narrower ResNet (pretrained weights then no longer fit).
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
    ) -> None:
        super().__init__()
        self.encoder = timm.create_model(encoder_name, pretrained=False, features_only=True, **(encoder_kwargs or {}))
        if pretrained:
            load_pretrained_timm(self.encoder, encoder_name, weights_path)
        channels = self.encoder.feature_info.channels()
        if len(decoder_channels) != len(channels):
            raise ValueError(f"decoder_channels needs {len(channels)} entries (one per encoder level)")
        self.multiple = max(self.encoder.feature_info.reduction())
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        skip_channels = channels[-2::-1] + [1]
        in_channels = [channels[-1], *decoder_channels[:-1]]
        self.ups = nn.ModuleList(
            UpBlock(cin, skip, cout) for cin, skip, cout in zip(in_channels, skip_channels, decoder_channels)
        )
        self.head = nn.Sequential(nn.Conv2d(decoder_channels[-1], out_channels, 1), activation(final_activation))
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` normalised L -> ``(B, out_channels, H, W)`` for any H, W."""
        x, pad = pad_to_multiple(x, self.multiple)
        rgb = ((x + 1) / 2).expand(-1, 3, -1, -1)
        features = self.encoder((rgb - self.mean) / self.std)
        y = features[-1]
        for up, skip in zip(self.ups, [*features[-2::-1], x]):
            y = up(y, skip)
        return crop_padding(self.head(y), pad)
