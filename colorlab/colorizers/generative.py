"""Generators as deployed: a GAN generator's ab head, a VAE decoder at z = 0, BigColor's EMA generator."""

from __future__ import annotations

import torch
from torch import nn

from colorlab.color import l_to_gray_rgb
from colorlab.colorizers.base import DeployableColorizer


class GeneratorNet(DeployableColorizer):
    """A GAN generator mapping L to ab (or to a tuple whose first item is ab, as ChromaGAN's two heads)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        out = self.generator(L)
        return out[0] if isinstance(out, tuple) else out


class VAEPriorNet(DeployableColorizer):
    """A conditional VAE U-Net's decoder: deterministic at the prior's mean (z = 0), or sampled."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """Deterministic colorization: the decoder at the prior's mean, z = 0."""
        return self.net.decode(L, L.new_zeros(L.shape[0], self.net.latent_dim))

    def sample(self, L: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` colorizations of each image, z from the prior: L ``(B, 1, H, W)`` -> ab ``(n, B, 2, H, W)``.

        Call in eval mode (BatchNorm running statistics), so the samples of a batch do not interact.
        """
        z = _prior_draws(L, n, self.net.latent_dim, generator)
        ab = self.net.decode(L.repeat(n, 1, 1, 1), z)
        return ab.view(n, L.shape[0], *ab.shape[1:])


class ConditionalGeneratorNet(DeployableColorizer):
    """BigColor's deployed generator (the EMA weights): z-conditioned, optionally class-conditioned by a frozen
    ImageNet classifier's top-1 class of the gray input."""

    def __init__(self, generator: nn.Module, classifier: nn.Module | None = None) -> None:
        super().__init__()
        self.generator = generator
        self.classifier = classifier

    def labels(self, L: torch.Tensor) -> torch.Tensor | None:
        """The class condition: the frozen classifier's top-1 ImageNet class of the gray input, or None."""
        if self.classifier is None:
            return None
        with torch.no_grad():
            return self.classifier(l_to_gray_rgb(L)).argmax(dim=1)

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """Deterministic colorization at z = 0 (the prior's mean)."""
        return self.generator(L, None, self.labels(L))

    def sample(self, L: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` colorizations per image, ``z ~ N(0, I)``: ``(B, 1, H, W)`` -> ``(n, B, 2, H, W)`` (eval mode)."""
        z = _prior_draws(L, n, self.generator.z_dim, generator)
        labels = self.labels(L)
        ab = self.generator(L.repeat(n, 1, 1, 1), z, None if labels is None else labels.repeat(n))
        return ab.view(n, L.shape[0], *ab.shape[1:])


def _prior_draws(L: torch.Tensor, n: int, dim: int, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` draws of ``z ~ N(0, I)`` per image of ``L``, ``(n * B, dim)``, on L's device and dtype."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return torch.randn(n * L.shape[0], dim, generator=generator, device=L.device, dtype=L.dtype)
