"""DeOldify's NoGAN: most of the training without a GAN, then a short adversarial finish.

One module, three phases (``phase``), each run as its own fit that starts from the previous phase's weights
(``python -m colorlab experiment`` chains them, see :mod:`colorlab.training.phases`):

1. ``generator``: the U-Net learns ab with L1 + a perceptual feature loss; its pretrained encoder can stay
   frozen for the first epochs (``unfreeze_at_epoch``). A frozen encoder is not in the optimizer: its
   parameter group is added when it unfreezes (at ``encoder_lr_mult`` of the rate, with its own warm-up),
   and the state is saved so a resumed run rebuilds the same groups.
2. ``critic``: the generator is frozen (eval mode, no gradients); the critic learns real vs generated.
3. ``gan``: both train, one net per batch, switched by loss thresholds as in DeOldify's
   ``AdaptiveGANSwitcher``: the critic trains until its loss falls below ``critic_threshold``, then the
   generator trains (one batch, or until its loss falls below ``generator_threshold``), and so on. On the
   critic's turns the generator runs frozen as in phase 2. Under DDP the loss compared with a threshold is
   the mean over the ranks, so every rank switches at the same batch.

DeOldify's feature loss used VGG16 features; here ``feature_loss`` is :class:`colorlab.losses.FeatureLoss`,
whose offline ImageNet EfficientNet-Lite0 features stand in for VGG's.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from colorlab.approaches.adversarial import AdversarialColorizer
from colorlab.color import lab_normalized_to_rgb
from colorlab.losses import GANKind

Phase = Literal["generator", "critic", "gan"]
PHASES = ("generator", "critic", "gan")


class NoGANColorizer(AdversarialColorizer):
    """Generator (L -> ab) + critic trained in DeOldify's NoGAN phases.

    Args:
        generator: net mapping normalised L ``(B, 1, H, W)`` to ab ``(B, 2, H, W)``, e.g.
            :class:`colorlab.models.unet.TimmUNet` (needs ``set_encoder_trainable`` for ``unfreeze_at_epoch``).
        critic: net scoring ``critic(ab, L)``, e.g. :class:`colorlab.models.critics.DeOldifyCritic`.
        phase: ``generator`` (pretrain), ``critic`` (pretrain on real vs generated) or ``gan``.
        feature_loss: perceptual loss on sRGB in [0, 1], e.g. :class:`colorlab.losses.FeatureLoss`; None: L1 only.
        pixel_weight: weight of the L1 loss on ab.
        feature_weight: weight of ``feature_loss``.
        adversarial_weight: weight of the adversarial term in the ``gan`` phase.
        unfreeze_at_epoch: the generator's encoder is frozen before this epoch and trainable from it on
            (None leaves it as built).
        critic_threshold: in the ``gan`` phase, the critic keeps training until its loss is below this
            (DeOldify used 0.65 with the BCE loss); None: one critic batch per turn.
        generator_threshold: the generator keeps training until its loss is below this; None: one batch per turn.
        gan_loss: ``vanilla`` (DeOldify's BCE), ``lsgan``, ``hinge`` or ``wgan``.
        **kwargs: see :class:`colorlab.approaches.adversarial.AdversarialColorizer` (optimizers, clipping...).
    """

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        phase: Phase = "generator",
        feature_loss: nn.Module | None = None,
        pixel_weight: float = 1.0,
        feature_weight: float = 1.0,
        adversarial_weight: float = 1.0,
        unfreeze_at_epoch: int | None = None,
        critic_threshold: float | None = 0.65,
        generator_threshold: float | None = None,
        gan_loss: GANKind = "vanilla",
        **kwargs: Any,
    ) -> None:
        super().__init__(generator, critic, gan_loss=gan_loss, **kwargs)
        if phase not in PHASES:
            raise ValueError(f"unknown NoGAN phase {phase!r}; choose one of {', '.join(PHASES)}")
        if unfreeze_at_epoch is not None and not hasattr(generator, "set_encoder_trainable"):
            name = type(generator).__name__
            raise ValueError(f"unfreeze_at_epoch needs a generator with set_encoder_trainable, not {name}")
        self.phase = phase
        self.feature_loss = feature_loss
        self.pixel_weight = pixel_weight
        self.feature_weight = feature_weight
        self.adversarial_weight = adversarial_weight
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.critic_threshold = critic_threshold
        self.generator_threshold = generator_threshold
        # Whose turn it is in the gan phase (DeOldify starts with the critic); kept in checkpoints for resume.
        self.critic_turn = True
        self.switches = 0

    # ---- losses -----------------------------------------------------------------------------------

    def trains_critic(self) -> bool:
        """Whether the next training batch updates the critic (then the fake needs no gradients)."""
        return self.phase == "critic" or (self.phase == "gan" and self.critic_turn)

    def generate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The generator's ab. When only the critic learns from it, the generator runs as a frozen net: no
        gradients, eval mode (its BatchNorm statistics change only when the generator itself trains)."""
        if not self.trains_critic():
            return self.generator(self.model_input(batch))
        training = self.generator.training
        self.generator.eval()
        try:
            with torch.no_grad():
                return self.generator(self.model_input(batch))
        finally:
            self.generator.train(training)

    def generator_loss(
        self, batch: dict[str, torch.Tensor], fake_ab: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """L1 on ab + feature loss on the sRGB picture, + the adversarial term in the ``gan`` phase."""
        losses = {"l1": (fake_ab - batch["ab"]).abs().mean()}
        total = self.pixel_weight * losses["l1"]
        if self.feature_loss is not None:
            # Unclipped sRGB keeps gradients alive for out-of-gamut predictions.
            fake_rgb = lab_normalized_to_rgb(self.model_input(batch), fake_ab, clip=False)
            losses["feature"] = self.feature_loss(fake_rgb, batch["rgb"])
            total = total + self.feature_weight * losses["feature"]
        if self.phase == "gan":
            losses["adversarial"] = self.adversarial(batch, fake_ab)
            total = total + self.adversarial_weight * losses["adversarial"]
        return {"loss": total, **losses}

    def critic_accuracy(self, L: torch.Tensor, real_ab: torch.Tensor, fake_ab: torch.Tensor) -> torch.Tensor:
        """Share of images the critic classifies right (mean patch score vs the loss's decision point)."""
        threshold = 0.5 if self.gan.kind == "lsgan" else 0.0
        real = self.critic_scores(L, real_ab).flatten(1).mean(1) > threshold
        fake = self.critic_scores(L, fake_ab).flatten(1).mean(1) <= threshold
        return torch.cat([real, fake]).float().mean()

    def critic_loss(self, batch: dict[str, torch.Tensor], fake_ab: torch.Tensor) -> dict[str, torch.Tensor]:
        """The base critic loss terms plus ``accuracy`` on this batch."""
        losses = super().critic_loss(batch, fake_ab)
        with torch.no_grad():
            losses["accuracy"] = self.critic_accuracy(self.model_input(batch), batch["ab"], fake_ab.detach())
        return losses

    # ---- training ---------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        fake_ab = self.generate(batch)
        if self.phase == "generator":
            losses = self.train_generator(batch, fake_ab)
        elif self.phase == "critic":
            losses = {f"critic_{k}": v for k, v in self.train_critic(batch, fake_ab).items()}
        else:
            losses = self._gan_step(batch, fake_ab)
        self.log_training(losses, batch)

    def _gan_step(self, batch: dict[str, torch.Tensor], fake_ab: torch.Tensor) -> dict[str, torch.Tensor]:
        """Train the net whose turn it is, then hand over when its loss is below its threshold."""
        critic_turn = self.critic_turn
        if critic_turn:
            losses = {f"critic_{k}": v for k, v in self.train_critic(batch, fake_ab).items()}
            threshold, loss = self.critic_threshold, losses["critic_loss"]
        else:
            losses = self.train_generator(batch, fake_ab)
            threshold, loss = self.generator_threshold, losses["loss"]
        if threshold is None or self._mean_over_ranks(loss) < threshold:
            self.critic_turn = not critic_turn
            self.switches += 1
        ones = torch.ones((), device=fake_ab.device)
        return {**losses, "critic_turn": ones * critic_turn, "switches": ones * self.switches}

    def _mean_over_ranks(self, loss: torch.Tensor) -> float:
        """``loss`` averaged over the DDP ranks: every rank must take the same turn, or the replicas step
        different optimizers on the same synced gradients and drift apart."""
        loss = loss.detach()
        if self._trainer is not None:
            loss = self.trainer.strategy.reduce(loss, reduce_op="mean")
        return loss.item()

    def encoder_trainable_at(self, epoch: int) -> bool:
        """Whether the generator's encoder trains in ``epoch`` under ``unfreeze_at_epoch``."""
        return epoch >= self.unfreeze_at_epoch

    def setup(self, stage: str) -> None:
        super().setup(stage)  # the adversarial base's DDP settings
        # The encoder state the optimizer is built for: epoch 0's (a resumed fit's saved state replaces it in
        # on_load_checkpoint, which runs after this and before configure_optimizers).
        self._encoder_trainable_at_start = self.unfreeze_at_epoch is not None and self.encoder_trainable_at(0)

    def configure_optimizers(self) -> Any:
        # Freeze here, not in setup: under DDP the net is wrapped before this hook, so the encoder is
        # registered for gradient sync and its gradients are averaged once it unfreezes.
        if self.unfreeze_at_epoch is None:
            return super().configure_optimizers()
        self.generator.set_encoder_trainable(self.encoder_trainable_at(0))
        configs = super().configure_optimizers()
        if self._encoder_trainable_at_start and not self.encoder_trainable_at(0):
            # Resumed after a mid-run unfreeze: the encoder joins as the later group it was when saved, so the
            # saved optimizer state (loaded after this hook) fits the rebuilt optimizer group by group.
            self.generator.set_encoder_trainable(True)
            self.add_trainable_parameters(configs[0]["optimizer"], self.generator)
        return configs

    def on_train_epoch_start(self) -> None:
        if self.unfreeze_at_epoch is None:
            return
        trainable = self.encoder_trainable_at(self.current_epoch)
        self.generator.set_encoder_trainable(trainable)
        if trainable:
            self.add_trainable_parameters(self.trainer.optimizers[0], self.generator)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["nogan"] = {"critic_turn": self.critic_turn, "switches": self.switches}
        if self.unfreeze_at_epoch is not None:
            checkpoint["nogan"]["encoder_trainable"] = self.generator.encoder_trainable

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("nogan", {})
        self.critic_turn = state.get("critic_turn", True)
        self.switches = state.get("switches", 0)
        if "encoder_trainable" in state and self.unfreeze_at_epoch is not None:
            self._encoder_trainable_at_start = state["encoder_trainable"]

    # ---- evaluation -------------------------------------------------------------------------------

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        if self.phase != "generator":  # the critic is untrained before its own phase
            L = self.model_input(batch)
            accuracy = self.critic_accuracy(L, batch["ab"], self.generator(L))
            self.log("val/critic_accuracy", accuracy, batch_size=L.shape[0])
