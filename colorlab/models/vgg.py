"""The transfer-learning colorizer of the CIFAR-100 study: frozen VGG16 encoder, UpSampling decoder."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from colorlab.models.blocks import GrayToImageNet, OutputHead, conv_norm_act, crop_padding, pad_to_multiple
from colorlab.models.pretrained import resolve_weights

VGG16_FILE = "vgg16-397923af.pth"
# Output channels of VGG16's five conv blocks (torchvision's `features`, Keras' include_top=False).
VGG16_WIDTHS = (64, 128, 256, 512, 512)


def vgg16_features(
    blocks: int = 5, pretrained: bool = False, weights_path: str | os.PathLike | None = None
) -> nn.Sequential:
    """The first ``blocks`` conv blocks of torchvision's VGG16 ``features``, each ending with its max-pool.

    Layer indices match torchvision's, so the ``features.N.*`` tensors of its ImageNet file load as they are
    (the classifier's tensors are not needed and are ignored).

    Args:
        blocks: how many of the five blocks to keep (1-5); the output is ``1 / 2**blocks`` of the input size.
        pretrained: load the local ImageNet file ``vgg16-397923af.pth`` (see :func:`resolve_weights`).
        weights_path: explicit weight file; else ``$COLORLAB_WEIGHTS`` and torch's hub cache are searched.
    """
    if not 1 <= blocks <= len(VGG16_WIDTHS):
        raise ValueError(f"VGG16 has 5 conv blocks; blocks must be in 1..5, got {blocks}")
    features = make_layers(cfgs["D"])  # VGG16's conv stack without building the 120M-parameter classifier
    if pretrained:
        state = torch.load(resolve_weights(VGG16_FILE, weights_path), map_location="cpu", weights_only=True)
        features.load_state_dict(
            {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        )
    pools = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
    return features[: pools[blocks - 1] + 1]


class VGG16Colorizer(nn.Module):
    """Frozen VGG16 encoder (gray repeated to RGB, ImageNet-normalised) + UpSampling/Conv decoder to ab.

    The encoder depth is configurable so small inputs keep some resolution: on 32x32 CIFAR images
    ``blocks=3`` leaves a 4x4x256 code (all five blocks would leave 1x1).

    Args:
        blocks: VGG16 conv blocks in the encoder (1-5).
        pretrained: load the local ImageNet VGG16 file (``pretrained: false`` keeps random weights).
        weights_path: explicit path of ``vgg16-397923af.pth``.
        decoder_channels: width of each UpSampling+Conv stage, one per encoder block (default: half the
            mirrored VGG widths, e.g. ``(128, 64, 32)`` for 3 blocks).
        out_channels: output channels (2 for ab).
        final_activation: ``tanh`` for ab in [-1, 1].
        freeze_encoder: keep the VGG weights fixed (the transfer-learning setting of the study).
    """

    def __init__(
        self,
        blocks: int = 3,
        pretrained: bool = False,
        weights_path: str | None = None,
        decoder_channels: Sequence[int] | None = None,
        out_channels: int = 2,
        final_activation: str | None = "tanh",
        freeze_encoder: bool = True,
    ) -> None:
        super().__init__()
        self.input = GrayToImageNet()
        self.encoder = vgg16_features(blocks, pretrained, weights_path)
        self.encoder.pretrained = pretrained  # the net protocol's marker (see blocks.pretrained_encoders)
        self.encoder.requires_grad_(not freeze_encoder)
        widths = list(decoder_channels or [VGG16_WIDTHS[i] // 2 for i in reversed(range(blocks))])
        if len(widths) != blocks:
            raise ValueError(
                f"decoder_channels needs {blocks} entries (one per encoder block), got {len(widths)}"
            )
        self.multiple = 2**blocks
        stages: list[nn.Module] = []
        for cin, cout in zip([VGG16_WIDTHS[blocks - 1], *widths[:-1]], widths):
            stages += [nn.Upsample(scale_factor=2), conv_norm_act(cin, cout, norm=False)]
        self.decoder = nn.Sequential(*stages, OutputHead(widths[-1], out_channels, 3, final_activation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised L ``(B, 1, H, W)`` in [-1, 1] -> ``(B, out_channels, H, W)`` for any H, W."""
        x, pad = pad_to_multiple(x, self.multiple)
        return crop_padding(self.decoder(self.encoder(self.input(x))), pad)
