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

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from colorlab.approaches.base import ColorizationModule
from colorlab.guidance import HintMap, refuse_guidance
from colorlab.losses import PixelLoss, pixel_loss

Stage = Literal["restore", "colorize"]
# A tanh output times 2 spans [-2, 2]: enough to move any L in [-1, 1] to any other (e.g. a black
# impulse on a white wall).
RESIDUAL_SCALE = 2.0


class _RestorationModule(ColorizationModule):
    """Shared by the restoration approaches: the restored L and the loss on L and ab.

    Args:
        loss: pixel loss for both L and ab: ``l1``, ``mse`` or ``huber``.
        huber_delta: where Huber switches from quadratic to linear (normalised units).
        l_weight: weight of the loss on the restored L.
        ab_weight: weight of the loss on ab.
        residual: the net predicts a correction added to the degraded L (as in DnCNN) rather than L itself.
        **kwargs: optimizer, scheduler, grid_images (see :class:`ColorizationModule`).
    """

    restores_l = True

    def __init__(
        self,
        loss: PixelLoss = "l1",
        huber_delta: float = 0.1,
        l_weight: float = 1.0,
        ab_weight: float = 1.0,
        residual: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.criterion = pixel_loss(loss, huber_delta)
        self.l_weight = l_weight
        self.ab_weight = ab_weight
        self.residual = residual

    def restored_l(self, L_input: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The restored normalised L from a net's tanh output ``out`` ``(B, 1, H, W)``; not clamped, so
        the loss keeps its gradient where the estimate overshoots [-1, 1]."""
        return L_input + RESIDUAL_SCALE * out if self.residual else out

    @abstractmethod
    def forward_lab(self, L_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Degraded normalised L ``(B, 1, H, W)`` -> (restored L, unclamped; ab ``(B, 2, H, W)``)."""

    def predict_lab(
        self, L: torch.Tensor, hints: HintMap | None = None, reference: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Degraded normalised L -> (restored L in [-1, 1], ab): the final picture (no guidance)."""
        refuse_guidance(self, hints, reference)
        L_out, ab = self.forward_lab(L)
        return L_out.clamp(-1.0, 1.0), ab

    def lab_losses(
        self, L_out: torch.Tensor, ab: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Unweighted pixel losses of the restored L (``loss_L``) and ab (``loss_ab``) vs the clean truth."""
        return {"loss_L": self.criterion(L_out, batch["L"]), "loss_ab": self.criterion(ab, batch["ab"])}


class RestoreColorizer(_RestorationModule):
    """One network from the degraded L to the clean L and ab: ``(B, 1, H, W)`` -> ``(B, 3, H, W)`` (tanh).

    Args:
        net: e.g. :class:`colorlab.models.unet.UNet` with ``out_channels: 3``; channel 0 is the L (or its
            correction when ``residual``), channels 1-2 are ab.
        **kwargs: loss, huber_delta, l_weight, ab_weight, residual (see :class:`_RestorationModule`),
            optimizer, scheduler, grid_images.
    """

    def __init__(self, net: nn.Module, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.net = net

    def forward_lab(self, L_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(L_input)
        if out.shape[1] != 3:
            raise ValueError(f"RestoreColorizer's net must output 3 channels (L, a, b), not {out.shape[1]}")
        return self.restored_l(L_input, out[:, :1]), out[:, 1:]

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        losses = self.lab_losses(*self.forward_lab(self.model_input(batch)), batch)
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
        colorizer: net ``(B, 1, H, W)`` -> ab ``(B, 2, H, W)``, tanh output.
        train_stages: the stages trained in this run.
        **kwargs: loss, huber_delta, l_weight, ab_weight, residual (see :class:`_RestorationModule`),
            optimizer, scheduler, grid_images.
    """

    def __init__(
        self,
        restorer: nn.Module,
        colorizer: nn.Module,
        train_stages: Sequence[Stage] = ("restore", "colorize"),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        stages = set(train_stages)
        if not stages or not stages <= {"restore", "colorize"}:
            raise ValueError(f"train_stages: pick one or both of restore, colorize; got {list(train_stages)}")
        self.restorer = restorer
        self.colorizer = colorizer
        self.train_stages = stages
        self.restorer.requires_grad_("restore" in stages)
        self.colorizer.requires_grad_("colorize" in stages)
        self.train(self.training)  # the Trainer keeps the modes it finds, so set the frozen stage's now

    def train(self, mode: bool = True) -> RestoreThenColorize:
        super().train(mode)
        # A frozen stage stays in eval mode so its BatchNorm statistics do not drift either.
        self.restorer.train(mode and "restore" in self.train_stages)
        self.colorizer.train(mode and "colorize" in self.train_stages)
        return self

    def forward_lab(self, L_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L_out = self.restored_l(L_input, self.restorer(L_input))
        # The colorizer sees the clamped L it will see at inference.
        return L_out, self.colorizer(L_out.clamp(-1.0, 1.0))

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        losses = self.lab_losses(*self.forward_lab(self.model_input(batch)), batch)
        weights = {"loss_L": self.l_weight * ("restore" in self.train_stages),
                   "loss_ab": self.ab_weight * ("colorize" in self.train_stages)}  # fmt: skip
        return {"loss": sum(weights[k] * losses[k] for k in losses), **losses}
