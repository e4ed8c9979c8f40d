"""Super-resolution of the gray picture: a low-resolution, degraded L in, the L at ``scale`` times the size out.

Detail lives in L (colour is smooth and is upsampled bilinearly by the pipeline), so the upscaler works on
luminance only and is scored on it: PSNR and SSIM of the gray picture of the upscaled L against the gray
picture of the clean high-resolution truth, beside the bicubic baseline (see :meth:`Upscaler.trivial_baselines`).
The data comes from :class:`colorlab.data.DegradedFolderDataModule` with ``scale`` set, which shrinks each
crop and degrades the small copy (blur, noise, JPEG...), seeded for validation and test.

* :class:`Upscaler`: a pixel loss (+ optional perceptual loss), one optimizer.
* :class:`AdversarialUpscaler`: the same generator plus a critic (ESRGAN's GAN stage), on the shared
  :class:`colorlab.approaches.adversarial.AdversarialColorizer` loop.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection

from colorlab.approaches.adversarial import AdversarialColorizer
from colorlab.approaches.base import ColorizationModule
from colorlab.baselines import Baselines, BicubicUpscaler, TrivialColorizer, bicubic_l
from colorlab.color import l_to_gray_rgb, rgb_to_gray_l
from colorlab.guidance import HintMap, refuse_guidance
from colorlab.losses import FeatureLoss, PixelLoss, pixel_loss
from colorlab.metrics import luminance_metrics
from colorlab.models.blocks import crop_padding, pad_to_multiple
from colorlab.models.rrdb import load_rrdb_weights


class _UpscaleMixin:
    """The upscaling shared by both approaches: pad, run the net on gray, add the bicubic base, crop."""

    net: nn.Module
    residual: bool
    weights: str | None

    @property
    def scale(self) -> int:
        """The upscaling factor (the net's ``scale``)."""
        return int(self.net.scale)

    def upscale_l(self, L: torch.Tensor) -> torch.Tensor:
        """Normalised L ``(B, 1, H, W)`` -> upscaled normalised L ``(B, 1, s*H, s*W)`` (not clamped).

        A 1-channel net reads L / 100 in [0, 1]; a 3-channel net (published RGB weights) reads the gray
        sRGB picture and its output's luminance is kept. With ``residual`` the net adds detail to bicubic.
        """
        rgb_net = getattr(self.net, "num_in_ch", 1) == 3

        def net_input(L: torch.Tensor) -> torch.Tensor:
            return l_to_gray_rgb(L) if rgb_net else (L + 1.0) / 2.0

        padded, pad = pad_to_multiple(L, getattr(self.net, "multiple", 1))
        out = crop_padding(self.net(net_input(padded)), (pad[0] * self.scale, pad[1] * self.scale))
        if self.residual:  # bicubic of the unpadded input: the padding must not leak into the baseline
            out = out + F.interpolate(
                net_input(L), scale_factor=self.scale, mode="bicubic", align_corners=False
            )
        return rgb_to_gray_l(out.clamp(0.0, 1.0)) if out.shape[1] == 3 else out * 2.0 - 1.0

    def predict_lab(
        self, L: torch.Tensor, hints: HintMap | None = None, reference: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution normalised L -> (upscaled L in [-1, 1], ab = 0): the gray upscaled picture."""
        refuse_guidance(self, hints, reference)
        L_out = self.upscale_l(L).clamp(-1.0, 1.0)
        return L_out, torch.zeros_like(L_out).expand(-1, 2, -1, -1)

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """An upscaler leaves colour to the colorizer: ab = 0 at the input's size."""
        return torch.zeros_like(L).expand(-1, 2, -1, -1)

    def new_metrics(self, prefix: str, sync: bool = True) -> MetricCollection:
        """PSNR and SSIM only: an upscaler is scored on luminance."""
        return luminance_metrics(prefix, sync=sync)

    def evaluation_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The gray picture of the clean high-resolution L: upscaling is scored on luminance."""
        return l_to_gray_rgb(batch["L"])

    def input_preview(self, model_in: torch.Tensor) -> torch.Tensor:
        """The small input enlarged with nearest neighbours, so the grid's columns share one size."""
        return l_to_gray_rgb(F.interpolate(model_in, scale_factor=self.scale, mode="nearest"))

    def setup(self, stage: str) -> None:
        super().setup(stage)  # type: ignore[misc]  # the adversarial base's DDP settings, when mixed into it
        # Published weights are a starting point for fitting only: a saved checkpoint holds its own weights,
        # so loading one never needs the .pth file again.
        if stage == "fit" and self.weights is not None:
            load_rrdb_weights(self.net, self.weights)

    def trivial_baselines(self, fitted: Baselines) -> dict[str, TrivialColorizer]:
        """Bicubic ×``scale`` of the low-resolution input: what an upscaler must beat (colour ones say nothing)."""
        return {"bicubic": BicubicUpscaler(self.scale)}


class Upscaler(_UpscaleMixin, ColorizationModule):
    """Super-resolution of L with a pixel loss and an optional perceptual loss.

    Args:
        net: e.g. :class:`colorlab.models.rrdb.RRDBNet`; it must have a ``scale`` attribute.
        residual: the net predicts detail added to the bicubic upscaling (with ``zero_last`` it starts
            exactly at bicubic); false for published ESRGAN weights, which predict the whole picture.
        loss: pixel loss on the upscaled L: ``l1``, ``mse`` or ``huber``.
        feature_loss: optional perceptual loss on the gray pictures (offline EfficientNet features).
        feature_weight: weight of ``feature_loss``.
        weights: a local ESRGAN / Real-ESRGAN ``.pth`` file loaded into ``net`` when fitting starts (a
            missing file: an error naming it).
        **kwargs: optimizer, scheduler, grid_images (see :class:`ColorizationModule`).
    """

    def __init__(
        self,
        net: nn.Module,
        residual: bool = True,
        loss: PixelLoss = "l1",
        feature_loss: FeatureLoss | None = None,
        feature_weight: float = 0.1,
        weights: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.net = net
        self.residual = residual
        self.criterion = pixel_loss(loss)
        self.feature_loss = feature_loss
        self.feature_weight = feature_weight
        self.weights = weights

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        L_out = self.upscale_l(self.model_input(batch))
        losses = {"pixel": self.criterion(L_out, batch["L"])}
        losses["loss"] = losses["pixel"]
        if self.feature_loss is not None:
            losses["feature"] = self.feature_loss(
                l_to_gray_rgb(L_out.clamp(-1, 1)), l_to_gray_rgb(batch["L"])
            )
            losses["loss"] = losses["loss"] + self.feature_weight * losses["feature"]
        return losses


class AdversarialUpscaler(_UpscaleMixin, AdversarialColorizer):
    """ESRGAN's GAN stage: pixel (+ perceptual) loss plus an adversarial term from a critic on the upscaled L.

    The shared adversarial loop scores "ab" against the batch's truth; here the upscaled L takes that
    role (the batch's clean ``L`` is the real sample) and the critic is conditioned on the bicubic
    upscaling of the input, so it judges the added detail: ``critic(L_hr, bicubic)``, e.g.
    ``PatchGAN(in_channels=2)``.

    Args:
        generator: the upscaling net (e.g. :class:`colorlab.models.rrdb.RRDBNet`), typically initialised
            from an :class:`Upscaler` run with ``weights`` or the phase handover.
        critic: conditional critic ``critic(L_hr, L_bicubic)``.
        residual / loss / feature_loss / feature_weight / weights: as for :class:`Upscaler`.
        pixel_weight: weight of the pixel loss against the adversarial term (ESRGAN: 1e-2 / 5e-3 = 2).
        **kwargs: gan_loss, critic_updates, optimizers... (see :class:`AdversarialColorizer`).
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        residual: bool = True,
        loss: PixelLoss = "l1",
        pixel_weight: float = 100.0,
        feature_loss: FeatureLoss | None = None,
        feature_weight: float = 1.0,
        weights: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(generator, critic, **kwargs)
        self.residual = residual
        self.criterion = pixel_loss(loss)
        self.pixel_weight = pixel_weight
        self.feature_loss = feature_loss
        self.feature_weight = feature_weight
        self.weights = weights

    @property
    def net(self) -> nn.Module:
        return self.generator

    def _as_adversarial_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # The real sample the shared loop reads as "ab" is the clean L.
        return {**batch, "ab": batch["L"]}

    def generate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.upscale_l(self.model_input(batch))

    def critic_scores(self, L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """Realism of the upscaled L ``ab`` given the low-resolution input ``L`` (seen as its bicubic)."""
        return self.critic(ab, bicubic_l(L, self.scale))

    def critic_loss(self, batch: dict[str, torch.Tensor], fake_ab: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.gp_weight > 0:  # the shared penalty conditions the critic on the small L directly
            raise ValueError(
                "AdversarialUpscaler does not support gp_weight > 0; use gan_loss vanilla/lsgan/hinge"
            )
        return super().critic_loss(self._as_adversarial_batch(batch), fake_ab)

    def generator_loss(
        self, batch: dict[str, torch.Tensor], fake_ab: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``loss`` plus its terms ``adversarial``, ``pixel`` and (when configured) ``feature``."""
        losses = {
            "adversarial": self.adversarial(batch, fake_ab),
            "pixel": self.criterion(fake_ab, batch["L"]),
        }
        losses["loss"] = losses["adversarial"] + self.pixel_weight * losses["pixel"]
        if self.feature_loss is not None:
            losses["feature"] = self.feature_loss(
                l_to_gray_rgb(fake_ab.clamp(-1, 1)), l_to_gray_rgb(batch["L"])
            )
            losses["loss"] = losses["loss"] + self.feature_weight * losses["feature"]
        return losses
