"""Restoration + colorization: a degraded gray photo in, the clean colour photo out.

Both approaches read ``L_input`` (the degraded picture, see :mod:`colorlab.data.degraded`) and are
scored on the final picture, restored L + predicted ab, against the clean truth: ``predict_lab``
returns the restored L, so the shared metrics, grids and full-resolution inference all use it.

* :class:`RestoreColorizer`: one network predicts the clean L and ab together (3 output channels).
* :class:`RestoreThenColorize`: a restorer cleans L, a colorizer colours the restored L; trained jointly
  or stage by stage (``train_stages`` freezes the others; the experiment's ``run.phases`` chain the stages).

Both start neutral: the nets' heads are zero at initialisation (:class:`colorlab.models.blocks.OutputHead`),
so the residual leaves the input's L as it is and ab is 0 until training moves them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from colorlab.approaches.base import ColorizationModule
from colorlab.colorizers.restoration import RestorationNet, RestoreThenColorizeNet
from colorlab.losses import ColorLoss, ColorLossName, PixelLoss, pixel_loss

Stage = Literal["restore", "colorize"]


class _RestorationModule(ColorizationModule):
    """Shared by the restoration approaches: the loss on the restored L and on ab.

    Args:
        loss: pixel loss on L (and on ab unless ``ab_loss`` says otherwise): ``l1``, ``mse`` or ``huber``.
        huber_delta: where Huber switches from quadratic to linear (normalised units).
        l_weight: weight of the loss on the restored L.
        ab_weight: weight of the loss on ab.
        ab_loss: the loss on ab (:class:`colorlab.losses.ColorLoss`): a pixel loss or ``delta_e00``; None is
            ``loss``.
        prior_path: ``.npy`` ab prior to rebalance the ab loss by colour rarity (None: every pixel alike).
        rebalance_lambda: weight of the uniform distribution mixed into the prior.
        prior_sigma: Gaussian smoothing of the prior over ab, in Lab units.
        **kwargs: optimizer, scheduler, grid_images (see :class:`ColorizationModule`).
    """

    colorizer: RestorationNet | RestoreThenColorizeNet

    def __init__(
        self,
        loss: PixelLoss = "l1",
        huber_delta: float = 0.1,
        l_weight: float = 1.0,
        ab_weight: float = 1.0,
        ab_loss: ColorLossName | None = None,
        prior_path: str | None = None,
        rebalance_lambda: float = 0.5,
        prior_sigma: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.criterion = pixel_loss(loss, huber_delta)
        self.ab_criterion = ColorLoss(ab_loss or loss, huber_delta, prior_path, rebalance_lambda, prior_sigma)
        self.l_weight = l_weight
        self.ab_weight = ab_weight

    def lab_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The losses of the restored L (``loss_L``, unclamped) and of ab (``loss_ab``) against the truth,
        before ``l_weight`` and ``ab_weight``."""
        L_out, ab = self.colorizer.forward_lab(self.model_input(batch))
        return {"loss_L": self.criterion(L_out, batch["L"]),
                "loss_ab": self.ab_criterion(batch["L"], ab, batch["ab"])["loss"]}  # fmt: skip


class RestoreColorizer(_RestorationModule):
    """One network from the degraded L to the clean L and ab: ``(B, 1, H, W)`` -> ``(B, 3, H, W)`` (tanh).

    Args:
        net: e.g. :class:`colorlab.models.unet.UNet` with ``out_channels: 3``; channel 0 is the L (or its
            correction when ``residual``), channels 1-2 are ab.
        residual: the net predicts a correction added to the degraded L (as in DnCNN) rather than L itself.
        **kwargs: loss, huber_delta, l_weight, ab_weight (see :class:`_RestorationModule`), optimizer,
            scheduler, grid_images.
    """

    colorizer_class = RestorationNet
    legacy_keys = (("net.", "colorizer.net."),)

    def __init__(self, net: nn.Module, residual: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.colorizer = RestorationNet(net, residual)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        losses = self.lab_losses(batch)
        return {"loss": self.l_weight * losses["loss_L"] + self.ab_weight * losses["loss_ab"], **losses}


class RestoreThenColorize(_RestorationModule):
    """Two chained stages: ``restorer`` cleans the degraded L, ``colorizer`` predicts ab from the restored L.

    ``train_stages`` picks what is trained: ``[restore, colorize]`` trains both with the joint loss (the
    ab loss also reaches the restorer through the chain); ``[restore]`` or ``[colorize]`` trains one stage
    and freezes the other (weights and BatchNorm statistics). Stage-wise training is two phases of one
    experiment (``run.phases`` in ``experiments/restore_then_colorize.yaml``): ``[restore]``, then
    ``[colorize]``, which starts from the first phase's checkpoint.

    Args:
        restorer: net ``(B, 1, H, W)`` -> ``(B, 1, H, W)``, tanh output (the L, or its correction).
        colorizer: net ``(B, 1, H, W)`` -> ab ``(B, 2, H, W)``, tanh output (the colorizer's ``colorizer_net``).
        residual: the restorer predicts a correction added to the degraded L rather than L itself.
        train_stages: the stages trained in this run.
        **kwargs: loss, huber_delta, l_weight, ab_weight (see :class:`_RestorationModule`),
            optimizer, scheduler, grid_images.
    """

    colorizer_class = RestoreThenColorizeNet
    legacy_keys = (
        ("restorer.", "colorizer.restorer."),
        ("colorizer.", "colorizer.colorizer_net."),
    )

    def __init__(
        self,
        restorer: nn.Module,
        colorizer: nn.Module,
        residual: bool = True,
        train_stages: Sequence[Stage] = ("restore", "colorize"),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        stages = set(train_stages)
        if not stages or not stages <= {"restore", "colorize"}:
            raise ValueError(f"train_stages: pick one or both of restore, colorize; got {list(train_stages)}")
        self.colorizer = RestoreThenColorizeNet(restorer, colorizer, residual)
        self.train_stages = stages
        restorer.requires_grad_("restore" in stages)
        colorizer.requires_grad_("colorize" in stages)
        self.train(self.training)  # the Trainer keeps the modes it finds, so set the frozen stage's now

    def train(self, mode: bool = True) -> RestoreThenColorize:
        super().train(mode)
        # A frozen stage stays in eval mode so its BatchNorm statistics do not drift either.
        self.colorizer.restorer.train(mode and "restore" in self.train_stages)
        self.colorizer.colorizer_net.train(mode and "colorize" in self.train_stages)
        return self

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        losses = self.lab_losses(batch)
        weights = {"loss_L": self.l_weight * ("restore" in self.train_stages),
                   "loss_ab": self.ab_weight * ("colorize" in self.train_stages)}  # fmt: skip
        return {"loss": sum(weights[k] * losses[k] for k in losses), **losses}
