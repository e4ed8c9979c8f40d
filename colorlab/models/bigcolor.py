"""A BigColor-style generator (Kim et al. 2022): gray encoder + BigGAN-like generator with latent z.

An encoder maps L to a spatial feature pyramid (BigColor's key change to BigGAN: a feature map instead
of a 4x4 latent, so the layout follows the input). Residual generator blocks upsample it back to full
resolution; every normalisation is *conditional* (BigGAN's conditional BatchNorm), its gain and bias
predicted from the condition ``[z, class embedding]``, so z (and, optionally, an ImageNet class)
restyles the colours at every scale and several z give several colorizations. Unlike BigColor, the
generator also takes the encoder's features as U-Net skips, which keeps colours inside edges at the
small sizes this project trains on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colorlab.models.blocks import ConvEncoder, OutputHead, UNetSkeleton, cat_channels


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose per-channel gain ``1 + g(c)`` and bias ``b(c)`` come from a condition vector c.

    Args:
        channels: feature channels.
        cond_dim: size of the condition vector.
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels)
        self.bias = nn.Linear(cond_dim, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` features and ``(B, cond_dim)`` condition -> ``(B, C, H, W)``."""
        gain = 1 + self.gain(cond)[:, :, None, None]
        if self.training or not self.norm.track_running_stats:
            normed = self.norm(x)
        else:  # the same eval-mode BatchNorm written out: ONNX cannot export one without affine weights
            norm = self.norm
            normed = (x - norm.running_mean[:, None, None]) * torch.rsqrt(norm.running_var[:, None, None] + norm.eps)
        return normed * gain + self.bias(cond)[:, :, None, None]


class GeneratorBlock(nn.Module):
    """BigGAN residual up-block with a U-Net skip: upsample x2, concat skip, (CBN -> ReLU -> conv) x2 + shortcut."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, cond_dim: int) -> None:
        super().__init__()
        channels = in_channels + skip_channels
        self.norm1 = ConditionalBatchNorm2d(channels, cond_dim)
        self.conv1 = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.norm2 = ConditionalBatchNorm2d(out_channels, cond_dim)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = cat_channels([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip])
        h = self.conv1(F.relu(self.norm1(x, cond)))
        h = self.conv2(F.relu(self.norm2(h, cond)))
        return h + self.shortcut(x)


class BigColorGenerator(UNetSkeleton):
    """Encoder + z/class-conditioned generator: ``(L, z, labels) -> ab``.

    Args:
        in_channels: input channels (1 for normalised L).
        out_channels: output channels (2 for ab).
        base_channels: width of the first encoder stage; doubles at each of the ``depth`` downsamplings.
        depth: number of downsamplings (inputs are padded to a multiple of ``2**depth``).
        z_dim: size of the latent z (drawn from ``N(0, I)`` in training).
        num_classes: classes of the optional class embedding (0: z only; 1000 for ImageNet labels).
        class_dim: size of the class embedding.
        final_activation: ``tanh`` (ab in [-1, 1]), ``sigmoid`` or ``none``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        base_channels: int = 32,
        depth: int = 4,
        z_dim: int = 64,
        num_classes: int = 0,
        class_dim: int = 64,
        final_activation: str | None = "tanh",
    ) -> None:
        if z_dim < 1:
            raise ValueError(f"z_dim must be >= 1, got {z_dim}")
        widths = [base_channels * 2**i for i in range(depth + 1)]
        cond_dim = z_dim + (class_dim if num_classes > 0 else 0)
        super().__init__(
            encoder=ConvEncoder(in_channels, widths),
            decoder=[
                GeneratorBlock(widths[i + 1], widths[i], widths[i], cond_dim) for i in reversed(range(depth))
            ],
            head=nn.Sequential(
                nn.BatchNorm2d(widths[0]), nn.ReLU(), OutputHead(widths[0], out_channels, 3, final_activation)
            ),
        )
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.class_embedding = nn.Embedding(num_classes, class_dim) if num_classes > 0 else None

    def condition(
        self, batch: int, z: torch.Tensor | None, labels: torch.Tensor | None, like: torch.Tensor
    ) -> torch.Tensor:
        """The condition vector ``[z, embedding(labels)]`` ``(B, cond_dim)``; z defaults to 0, the prior's mean."""
        if z is None:
            z = like.new_zeros(batch, self.z_dim)
        if z.shape != (batch, self.z_dim):
            raise ValueError(f"z must have shape ({batch}, {self.z_dim}), got {tuple(z.shape)}")
        if self.class_embedding is None:
            if labels is not None:
                raise ValueError("class labels given to a generator built with num_classes=0")
            return z
        if labels is None:
            raise ValueError(
                f"this generator is class-conditional (num_classes={self.num_classes}): pass labels"
            )
        return torch.cat([z, self.class_embedding(labels)], dim=1)

    def forward(
        self, L: torch.Tensor, z: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """L ``(B, 1, H, W)`` (any H, W), z ``(B, z_dim)``, labels ``(B,)`` int -> ab ``(B, 2, H, W)``."""
        return super().forward(L, self.condition(L.shape[0], z, labels, L))
