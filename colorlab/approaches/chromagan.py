"""ChromaGAN (Vitoria, Raad & Ballester, WACV 2020): colour + semantic class distribution + WGAN-GP.

Generator loss ``mse_weight * MSE(ab) + kl_weight * KL(teacher || class head) + adversarial_weight * WGAN``,
where the teacher is a frozen ImageNet classifier. The official Keras code uses the weights
1 / 0.003 / 0.1, a gradient-penalty weight of 10, Adam(2e-5, beta1 0.5) for both nets, one critic update per
generator update, a PatchGAN critic without normalisation, and a VGG16 teacher fed the gray image repeated
to RGB (``teacher_input: gray``); this implementation's default feeds the teacher the real colour photo.
Note the scale: ab here is ab / 110, the original's ab is ab / 255 (+0.5), so our MSE is ~5.4x theirs for
the same colour error, which shifts the balance towards the MSE term at the same weights.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from colorlab.approaches.adversarial import AdversarialColorizer
from colorlab.color import l_to_gray_rgb
from colorlab.losses import GANKind
from colorlab.models.features import ImageNetClassifier


class ChromaGANColorizer(AdversarialColorizer):
    """A two-headed generator (ab, class log-probabilities) against a WGAN-GP critic.

    Args:
        generator: L -> (ab, class log-probabilities), e.g.
            :class:`colorlab.models.chromagan.ChromaGANGenerator`.
        critic: conditional critic ``critic(ab, L)`` without BatchNorm (the gradient penalty is per sample),
            e.g. ``PatchGAN(in_channels=3, norm="none")``.
        teacher: frozen classifier, sRGB in [0, 1] -> logits over the generator's classes; defaults to
            ImageNet EfficientNet-Lite0 (``ImageNetClassifier(model_name="vgg16", weights_path=...)`` with a
            local VGG16 file is the paper's teacher).
        teacher_input: what the teacher classifies: ``rgb`` (the real colour photo) or ``gray`` (its L as
            gray RGB, as in the official code).
        mse_weight: weight of the MSE on ab.
        kl_weight: weight of ``KL(teacher distribution || class head)``.
        adversarial_weight: weight of the generator's adversarial term.
        gan_loss: critic objective; ``wgan`` as in the paper.
        gp_weight: WGAN-GP gradient-penalty weight.
        **kwargs: critic_updates, generator_updates, optimizers, schedulers, gradient_clip...
            (see :class:`AdversarialColorizer`).
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        teacher: nn.Module | None = None,
        teacher_input: Literal["rgb", "gray"] = "rgb",
        mse_weight: float = 1.0,
        kl_weight: float = 0.003,
        adversarial_weight: float = 0.1,
        gan_loss: GANKind = "wgan",
        gp_weight: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(generator, critic, gan_loss=gan_loss, gp_weight=gp_weight, **kwargs)
        if teacher_input not in ("rgb", "gray"):
            raise ValueError(f"teacher_input must be 'rgb' or 'gray', got {teacher_input!r}")
        self.teacher = teacher if teacher is not None else ImageNetClassifier()
        self.teacher.requires_grad_(False)
        self.teacher_input = teacher_input
        self.mse_weight = mse_weight
        self.kl_weight = kl_weight
        self.adversarial_weight = adversarial_weight

    def train(self, mode: bool = True) -> ChromaGANColorizer:
        super().train(mode)
        self.teacher.eval()  # a frozen teacher keeps its BatchNorm statistics, whatever the stage
        return self

    @torch.no_grad()
    def teacher_distribution(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The frozen teacher's class probabilities ``(B, num_classes)`` for the batch's photos."""
        image = batch["rgb"] if self.teacher_input == "rgb" else l_to_gray_rgb(self.model_input(batch))
        return self.teacher(image).float().softmax(dim=1)

    def generator_loss(
        self, batch: dict[str, torch.Tensor], fake: tuple[torch.Tensor, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """``loss`` and its terms ``mse``, ``kl``, ``adversarial``; ``fake`` is (ab, class log-probs)."""
        ab, class_log_probs = fake
        target = self.teacher_distribution(batch)
        losses = {
            "mse": F.mse_loss(ab.float(), batch["ab"]),
            "kl": F.kl_div(class_log_probs.float(), target, reduction="batchmean"),
            "adversarial": self.adversarial(batch, ab),
        }
        losses["loss"] = (
            self.mse_weight * losses["mse"]
            + self.kl_weight * losses["kl"]
            + self.adversarial_weight * losses["adversarial"]
        )
        return losses
