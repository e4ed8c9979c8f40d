"""A conditional VAE U-Net for diverse colorization: z holds the colour choices that L leaves open.

Training (CVAE, Sohn et al. 2015): a recognition encoder sees L *and* the true ab and gives the
posterior ``q(z | L, ab) = N(mu, exp(logvar))``; a sample of it (reparameterization trick) is
broadcast and concatenated at the bottleneck and at every decoder stage of a U-Net on L, whose skips
carry the structure. The KL term pulls the posterior to the prior ``N(0, I)``, so at inference
``z ~ N(0, I)`` gives different, plausible colorizations and ``z = 0`` (the prior's mean) a
deterministic one. With z at the bottleneck only, the skips let the decoder ignore it: in an 800-step
test on the photos (64 px crops) its KL sat at 0 for ~550 steps; fed to every stage, z kept 4-7 nats
throughout and samples differed twice as much.

Why not a plain VAE on L: its posterior would be a function of L only, which the skip connections
already carry in full, so the decoder learns to ignore z and every sample looks the same.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from colorlab.models.blocks import (
    ConvEncoder,
    OutputHead,
    TimmEncoder,
    UNetSkeleton,
    cat_channels,
    conv_norm_act,
    input_skip_widths,
    pad_to_multiple,
)


def broadcast(z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A vector ``(B, D)`` as a constant ``(B, D, H, W)`` map of ``like``'s size."""
    return z[:, :, None, None].expand(-1, -1, *like.shape[-2:])


class LatentInjection(nn.Module):
    """The bottleneck: concatenate the broadcast z to the deepest features, fuse with Conv+BN+LeakyReLU."""

    def __init__(self, channels: int, latent_dim: int) -> None:
        super().__init__()
        self.fuse = conv_norm_act(channels + latent_dim, channels, act="leaky_relu")

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.fuse(cat_channels([x, broadcast(z, x)]))


class TransposedUpBlock(nn.Module):
    """Double the resolution with a transposed convolution, concatenate the skip and the broadcast z,
    fuse with Conv+BN+LeakyReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, latent_dim: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.fuse = conv_norm_act(out_channels + skip_channels + latent_dim, out_channels, act="leaky_relu")

    def forward(self, x: torch.Tensor, skip: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.fuse(cat_channels([self.up(x), skip, broadcast(z, skip)]))


class VAEUNet(UNetSkeleton):
    """U-Net on L with a latent code z at the bottleneck and a recognition encoder for ``q(z | L, ab)``.

    The recognition encoder is a strided :class:`colorlab.models.blocks.ConvEncoder` pyramid with LeakyReLU;
    so is the U-Net's, unless ``encoder_name`` names a timm pyramid (e.g. the ImageNet EfficientNet-Lite0,
    as :class:`colorlab.models.unet.TimmUNet`: a last decoder stage at full resolution takes L as its skip).

    Args:
        in_channels: channels of the condition (1 for normalised L).
        out_channels: channels of the target and output (2 for ab).
        base_channels: width of the first stage; doubles at each of the ``depth`` downsamplings.
        depth: number of downsamplings (inputs are padded to a multiple of ``2**depth``).
        latent_dim: size of z.
        final_activation: ``tanh`` (ab in [-1, 1]), ``sigmoid`` or ``none``.
        encoder_name: the U-Net's encoder as a timm ``features_only`` pyramid
            (:class:`colorlab.models.blocks.TimmEncoder`); None: a ConvEncoder of ``base_channels``, ``depth``.
        pretrained: load the timm encoder's local ImageNet weights.
        encoder_kwargs: extra :class:`TimmEncoder` arguments, e.g. ``{frozen_stages: 3}``.
        decoder_channels: with ``encoder_name``, the width of each decoder stage, deepest first (one per level).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        base_channels: int = 32,
        depth: int = 4,
        latent_dim: int = 64,
        final_activation: str | None = "tanh",
        encoder_name: str | None = None,
        pretrained: bool = False,
        encoder_kwargs: dict[str, Any] | None = None,
        decoder_channels: tuple[int, ...] = (128, 64, 48, 32, 16),
    ) -> None:
        widths = [base_channels * 2**i for i in range(depth + 1)]
        if encoder_name is None:
            encoder: nn.Module = ConvEncoder(in_channels, widths, downsample="stride", act="leaky_relu")
            stages = widths[-2::-1]
            ins, skips = [widths[-1], *stages[:-1]], stages
        else:
            encoder = TimmEncoder(encoder_name, pretrained, **(encoder_kwargs or {}))
            stages = list(decoder_channels)
            ins, skips = input_skip_widths(encoder.channels, stages, in_channels)
        super().__init__(
            encoder=encoder,
            bottleneck=LatentInjection(ins[0], latent_dim),
            decoder=[TransposedUpBlock(i, s, o, latent_dim) for i, s, o in zip(ins, skips, stages)],
            head=OutputHead(stages[-1], out_channels, 1, final_activation),
            input_skip=encoder_name is not None,
        )
        self.latent_dim = latent_dim
        self.recognition = ConvEncoder(
            in_channels + out_channels, widths, downsample="stride", act="leaky_relu"
        )
        self.posterior_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(widths[-1], 2 * latent_dim, 1))

    def posterior(self, L: torch.Tensor, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z | L, ab)``: ``(B, 1, H, W)`` and ``(B, 2, H, W)`` -> ``(mu, logvar)``, each ``(B, latent_dim)``."""
        x, _ = pad_to_multiple(torch.cat([L, ab], dim=1), self.multiple)
        mu, logvar = self.posterior_head(self.recognition(x)[-1]).flatten(1).chunk(2, dim=1)
        return mu, logvar

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``: a sample that gradients flow through."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, L: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Colorize L ``(B, 1, H, W)`` (any H, W) given z ``(B, latent_dim)``: ab ``(B, 2, H, W)``."""
        if z.shape != (L.shape[0], self.latent_dim):
            raise ValueError(f"z must have shape ({L.shape[0]}, {self.latent_dim}), got {tuple(z.shape)}")
        return super().forward(L, z)

    def forward(self, L: torch.Tensor, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: ``(predicted ab, mu, logvar)`` with z drawn from the posterior given the true ab."""
        mu, logvar = self.posterior(L, ab)
        return self.decode(L, self.reparameterize(mu, logvar)), mu, logvar
