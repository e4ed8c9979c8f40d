"""Losses shared by the approaches: pixel, colour (CIEDE2000, rebalanced), perceptual, adversarial, gradient
penalty, KL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from colorlab.color import ab_gamut_bins, denormalize_ab, denormalize_l, quantize_ab
from colorlab.data.prior import class_weights
from colorlab.metrics import delta_e_ciede2000
from colorlab.models.features import ImageNetFeatures

PixelLoss = Literal["l1", "mse", "huber"]
ColorLossName = PixelLoss | Literal["delta_e00"]
GANKind = Literal["vanilla", "lsgan", "hinge", "wgan"]


def pixel_loss(name: PixelLoss, huber_delta: float = 0.1, reduction: str = "mean") -> nn.Module:
    """Per-pixel regression loss by name: ``l1``, ``mse`` or ``huber`` (smooth L1 beyond ``huber_delta``)."""
    losses = {"l1": nn.L1Loss, "mse": nn.MSELoss}
    if name == "huber":
        return nn.HuberLoss(delta=huber_delta, reduction=reduction)
    if name not in losses:
        raise ValueError(f"unknown pixel loss {name!r}; choose l1, mse or huber")
    return losses[name](reduction=reduction)


class DeltaE00Loss(nn.Module):
    """CIEDE2000 between predicted and true colour per pixel ``(B, H, W)``: the headline metric as a loss,
    plus ``l1_weight`` times the L1 ab error (both in Lab units).

    It weighs an ab error the way the metric does (less for saturated colours, more near gray), where L1
    on ab weighs every unit alike. The small L1 term is there because CIEDE2000's gradient is zero at a
    gray prediction (chroma is a cone there), which is where every net starts. Computed in float32 on Lab
    (bf16 would round small differences away).
    """

    def __init__(self, l1_weight: float = 0.1) -> None:
        super().__init__()
        self.l1_weight = l1_weight

    def forward(self, L_n: torch.Tensor, pred_ab_n: torch.Tensor, target_ab_n: torch.Tensor) -> torch.Tensor:
        L = denormalize_l(L_n.float())
        pred_ab, target_ab = denormalize_ab(pred_ab_n.float()), denormalize_ab(target_ab_n.float())
        delta_e = delta_e_ciede2000(torch.cat([L, pred_ab], dim=1), torch.cat([L, target_ab], dim=1), eps=1e-8)
        return delta_e + self.l1_weight * (pred_ab - target_ab).abs().mean(dim=1)


class ColorLoss(nn.Module):
    """The loss on a predicted colour, per pixel, optionally weighted by how rare the pixel's true colour is.

    Against the sepia pull (a pixel loss is smallest for the desaturated average of the colours a gray value
    could have), ``prior_path`` weighs each pixel by the weight of its true ab bin in an ab prior: Zhang et
    al.'s class rebalancing, applied to regression. The weights are not saved with a model: they are read
    from the prior file by :meth:`load_prior` when fitting starts.

    Args:
        loss: ``l1``, ``mse``, ``huber`` (on the normalised target, any colour space) or ``delta_e00``
            (:class:`DeltaE00Loss`, in Lab units; Lab ab targets only).
        huber_delta: where Huber switches from quadratic to linear (normalised units).
        prior_path: ``.npy`` ab prior (``python -m colorlab prior``); None weighs every pixel alike. Lab ab
            targets only.
        rebalance_lambda: weight of the uniform distribution mixed into the prior (Zhang et al.: 0.5; 1 is
            no rebalancing).
        prior_sigma: Gaussian smoothing of the prior over ab, in Lab units.
    """

    def __init__(
        self,
        loss: ColorLossName = "l1",
        huber_delta: float = 0.1,
        prior_path: str | None = None,
        rebalance_lambda: float = 0.5,
        prior_sigma: float = 5.0,
    ) -> None:
        super().__init__()
        self.criterion = DeltaE00Loss() if loss == "delta_e00" else pixel_loss(loss, huber_delta, reduction="none")
        self.prior_path = prior_path
        self.rebalance_lambda = rebalance_lambda
        self.prior_sigma = prior_sigma
        if prior_path is not None:
            self.register_buffer("bin_centers", ab_gamut_bins(), persistent=False)
            self.register_buffer("bin_weights", torch.ones(len(self.bin_centers)), persistent=False)

    def load_prior(self) -> None:
        """Read the rebalancing weights from ``prior_path`` (nothing to do without one)."""
        if self.prior_path is not None:
            self.bin_weights.copy_(class_weights(self.prior_path, self.bin_centers, self.rebalance_lambda,
                                                 self.prior_sigma))  # fmt: skip

    def forward(self, L_n: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``loss`` (the mean, rebalanced when there is a prior) and, with a prior, ``unweighted_loss``."""
        if isinstance(self.criterion, DeltaE00Loss):
            per_pixel = self.criterion(L_n, pred, target)
        else:
            per_pixel = self.criterion(pred, target).mean(dim=1)
        if self.prior_path is None:
            return {"loss": per_pixel.mean()}
        weights = self.bin_weights[quantize_ab(denormalize_ab(target), self.bin_centers)]
        return {"loss": (weights * per_pixel).mean(), "unweighted_loss": per_pixel.mean()}


class FeatureLoss(nn.Module):
    """Perceptual loss: weighted L1 between frozen ImageNet features of prediction and target.

    Defaults to EfficientNet-Lite0 (real ImageNet weights, offline). Inputs are sRGB in [0, 1].

    Args:
        features: the frozen feature pyramid (built with ``pretrained=False`` only in tests).
        weights: one weight per returned level (default all 1).
    """

    def __init__(self, features: ImageNetFeatures | None = None, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.features = features if features is not None else ImageNetFeatures()
        self.weights = list(weights) if weights is not None else None

    def forward(self, pred_rgb: torch.Tensor, target_rgb: torch.Tensor) -> torch.Tensor:
        pred, target = self.features(pred_rgb), self.features(target_rgb)
        weights = self.weights or [1.0] * len(pred)
        return sum(w * F.l1_loss(p, t) for w, p, t in zip(weights, pred, target))


class GANLoss(nn.Module):
    """Adversarial objectives on critic outputs (any shape, e.g. PatchGAN maps).

    ``vanilla`` = non-saturating BCE, ``lsgan`` = least squares, ``hinge``, ``wgan`` = Wasserstein
    (pair it with :func:`gradient_penalty`).
    """

    def __init__(self, kind: GANKind = "vanilla") -> None:
        super().__init__()
        if kind not in ("vanilla", "lsgan", "hinge", "wgan"):
            raise ValueError(f"unknown GAN loss {kind!r}; choose vanilla, lsgan, hinge or wgan")
        self.kind = kind

    def generator_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        """Loss for the generator, from the critic's scores on generated images."""
        if self.kind == "vanilla":
            return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
        if self.kind == "lsgan":
            return F.mse_loss(fake_scores, torch.ones_like(fake_scores))
        return -fake_scores.mean()

    def critic_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        """Loss for the critic, from its scores on real and (detached) generated images."""
        if self.kind == "vanilla":
            real = F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
            fake = F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores))
            return 0.5 * (real + fake)
        if self.kind == "lsgan":
            return 0.5 * (F.mse_loss(real_scores, torch.ones_like(real_scores)) + fake_scores.pow(2).mean())
        if self.kind == "hinge":
            return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
        return fake_scores.mean() - real_scores.mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, *condition: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad critic(x_hat)||_2 - 1)^2]`` on random interpolates of real and fake.

    Computed in float32 with autocast off: under fp16 the input gradient underflows or overflows,
    which silently breaks the Lipschitz constraint.
    """
    with torch.autocast(device_type=real.device.type, enabled=False):
        alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
        x_hat = (alpha * real.float() + (1 - alpha) * fake.float().detach()).requires_grad_(True)
        scores = critic(x_hat, *(c.float() for c in condition))
        (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
        return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)), summed over latent dims and averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).flatten(1).sum(1).mean()
