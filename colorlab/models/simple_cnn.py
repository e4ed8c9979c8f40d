"""The plain Conv2D + UpSampling2D colorizer of the CIFAR-100 study (32x32x1 in, 32x32x2 out, tanh)."""

from __future__ import annotations

import torch
from torch import nn

from colorlab.models.blocks import OutputHead, conv_norm_act, crop_padding, pad_to_multiple


class SimpleCNN(nn.Module):
    """Strided convolutions down to 1/8 resolution, then UpSampling2D + Conv2D back up.

    Any H, W: the input is padded to a multiple of 8 (``multiple``) and the output cropped back.

    Args:
        in_channels: input channels (1 for normalised L).
        out_channels: output channels (2 for ab).
        widths: channels of the three downsampling stages; the decoder mirrors them.
        final_activation: ``tanh`` for ab in [-1, 1].
    """

    multiple = 8

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        widths: tuple[int, int, int] = (64, 128, 256),
        final_activation: str | None = "tanh",
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths

        def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
            return conv_norm_act(cin, cout, stride=stride, norm=False)

        self.encoder = nn.Sequential(
            conv(in_channels, w1, 2), conv(w1, w1),
            conv(w1, w2, 2), conv(w2, w2),
            conv(w2, w3, 2), conv(w3, w3),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2), conv(w3, w2),
            nn.Upsample(scale_factor=2), conv(w2, w1),
            nn.Upsample(scale_factor=2), conv(w1, w1 // 2),
        )  # fmt: skip
        self.head = OutputHead(w1 // 2, out_channels, 3, final_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` for any H, W -> ``(B, 2, H, W)``."""
        x, pad = pad_to_multiple(x, self.multiple)
        return crop_padding(self.head(self.decoder(self.encoder(x))), pad)
