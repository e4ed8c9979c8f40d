"""Shared GAN training: a generator (L -> ab) and a critic, with Lightning's manual optimization.

Each batch: the fake is generated once and detached for the critic's ``critic_updates`` steps, then the
generator takes ``generator_updates`` steps (each after the first regenerates, since the weights moved).
Every update is toggle -> zero_grad -> manual_backward -> step. Under fp16 mixed precision Lightning scales
the loss in ``manual_backward`` and unscales the gradients inside ``step`` before it calls
``on_before_optimizer_step``, which is where the gradients are clipped: clipping earlier would clip the
scaled gradients and shrink every update by the loss scale. Schedulers step once per epoch.
Subclasses define :meth:`generator_loss` and may override :meth:`critic_scores` / :meth:`critic_loss`.

Under DDP, each update's backward reaches only one of the two nets (the critic learns from a detached fake;
NoGAN's phases freeze one net or an encoder for whole epochs), so :meth:`setup` asks Lightning's DDP strategy
to look for unused parameters. Making every parameter take part instead would cost a backward through the
generator on every critic step; the search is a walk over the autograd graph, cheap next to that.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.strategies import DDPStrategy
from torch import nn

from colorlab.approaches.base import ColorizationModule
from colorlab.colorizers.generative import GeneratorNet
from colorlab.losses import GANKind, GANLoss, gradient_penalty


class AdversarialColorizer(ColorizationModule):
    """Base for generator + critic approaches.

    Args:
        generator: net mapping normalised L ``(B, 1, H, W)`` to ab ``(B, 2, H, W)``.
        critic: net scoring ``critic(ab, L)`` (see :class:`colorlab.models.critics.PatchGAN`).
        gan_loss: ``vanilla``, ``lsgan``, ``hinge`` or ``wgan``.
        gp_weight: weight of the WGAN-GP gradient penalty (0 disables it).
        critic_updates: critic steps per batch.
        generator_updates: generator steps per batch (pix2pix's seed project used 1 critic : 2 generator).
        gradient_clip: max gradient norm for both nets (None: no clipping).
        generator_optimizer / critic_optimizer: optimizer factories.
        generator_scheduler / critic_scheduler: optional LR scheduler factories, stepped each epoch.
        **kwargs: grid_images (see :class:`ColorizationModule`).
    """

    colorizer_class = GeneratorNet
    legacy_keys = (("generator.", "colorizer.generator."),)

    def __init__(
        self,
        generator: nn.Module,
        critic: nn.Module,
        gan_loss: GANKind = "vanilla",
        gp_weight: float = 0.0,
        critic_updates: int = 1,
        generator_updates: int = 1,
        gradient_clip: float | None = None,
        generator_optimizer: OptimizerCallable = torch.optim.Adam,
        critic_optimizer: OptimizerCallable = torch.optim.Adam,
        generator_scheduler: LRSchedulerCallable | None = None,
        critic_scheduler: LRSchedulerCallable | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.colorizer = GeneratorNet(generator)
        self.critic = critic
        self.gan = GANLoss(gan_loss)
        if gp_weight > 0 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules()):
            raise ValueError("the gradient penalty is per sample, and a BatchNorm critic couples the samples of a "
                             "batch; build the critic with norm 'instance' or 'none'")  # fmt: skip
        self.gp_weight = gp_weight
        self.critic_updates = critic_updates
        self.generator_updates = generator_updates
        self.gradient_clip = gradient_clip
        self.generator_optimizer = generator_optimizer
        self.critic_optimizer = critic_optimizer
        self.generator_scheduler = generator_scheduler
        self.critic_scheduler = critic_scheduler

    @property
    def generator(self) -> nn.Module:
        """The generator that the generator optimizer trains (the deployed one, unless an EMA copy is)."""
        return self.colorizer.generator

    # ---- what subclasses define -------------------------------------------------------------------

    def generate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The generator's output for a training batch: ab, or a tuple starting with ab for multi-head generators.

        :meth:`generator_loss` receives it whole; the critic sees :meth:`fake_ab` of it.
        """
        return self.generator(self.model_input(batch))

    def fake_ab(self, fake: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The ab ``(B, 2, H, W)`` inside :meth:`generate`'s output (its first item when it is a tuple)."""
        return fake[0] if isinstance(fake, tuple) else fake

    @abstractmethod
    def generator_loss(
        self, batch: dict[str, torch.Tensor], fake_ab: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Generator loss terms (``"loss"`` is optimised), usually reconstruction + ``self.adversarial(...)``."""

    def critic_scores(self, L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """The critic's realism scores of the colorization ``ab`` of ``L``."""
        return self.critic(ab, L)

    def adversarial(self, batch: dict[str, torch.Tensor], fake_ab: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial term: fool the critic on ``fake_ab``."""
        return self.gan.generator_loss(self.critic_scores(self.model_input(batch), fake_ab))

    def critic_loss(self, batch: dict[str, torch.Tensor], fake_ab: torch.Tensor) -> dict[str, torch.Tensor]:
        """Critic loss terms on real vs (detached) fake, with the gradient penalty when enabled."""
        L = self.model_input(batch)
        real_scores = self.critic_scores(L, batch["ab"])
        fake_scores = self.critic_scores(L, fake_ab.detach())
        losses = {
            "loss": self.gan.critic_loss(real_scores, fake_scores),
            "real_score": real_scores.detach().mean(),
            "fake_score": fake_scores.detach().mean(),
        }
        if self.gp_weight > 0:
            losses["gradient_penalty"] = gradient_penalty(self.critic, batch["ab"], fake_ab, L)
            losses["loss"] = losses["loss"] + self.gp_weight * losses["gradient_penalty"]
        return losses

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Generator losses on one batch (used for logging and by tools that score a batch)."""
        return self.generator_loss(batch, self.generate(batch))

    # ---- the update loop --------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Under DDP, let the strategy find the parameters a backward did not reach (see the module docstring)."""
        super().setup(stage)
        strategy = self.trainer.strategy
        if isinstance(strategy, DDPStrategy):
            # Read when the strategy wraps the model, after this hook; an explicit user choice is kept.
            strategy._ddp_kwargs.setdefault("find_unused_parameters", True)

    def _update(self, optimizer: Any, loss: torch.Tensor) -> None:
        self.toggle_optimizer(optimizer)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()  # unscales fp16 gradients, then on_before_optimizer_step clips them, then steps
        self.untoggle_optimizer(optimizer)

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        """Clip the (already unscaled) gradients of the net about to step."""
        if self.gradient_clip is not None:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.gradient_clip, gradient_clip_algorithm="norm"
            )

    def train_critic(self, batch: dict[str, torch.Tensor], fake_ab: torch.Tensor) -> dict[str, torch.Tensor]:
        """``critic_updates`` critic steps on the detached fake; returns the last step's terms."""
        _, opt_critic = self.optimizers()
        losses: dict[str, torch.Tensor] = {}
        for _ in range(self.critic_updates):
            losses = self.critic_loss(batch, fake_ab.detach())
            self._update(opt_critic, losses["loss"])
        return losses

    def train_generator(
        self, batch: dict[str, torch.Tensor], fake_ab: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``generator_updates`` generator steps (regenerating after the first); returns the last terms."""
        opt_generator, _ = self.optimizers()
        losses: dict[str, torch.Tensor] = {}
        for i in range(self.generator_updates):
            if i > 0:
                fake_ab = self.generate(batch)
            losses = self.generator_loss(batch, fake_ab)
            self._update(opt_generator, losses["loss"])
        return losses

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        fake = self.generate(batch)
        critic = self.train_critic(batch, self.fake_ab(fake))
        generator = self.train_generator(batch, fake)
        self.log_training({**{f"critic_{k}": v for k, v in critic.items()}, **generator}, batch)

    def log_training(self, losses: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
        """Log loss terms under ``train/``; ``train/loss`` (the generator's) goes to the progress bar."""
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=batch["L"].shape[0])

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if scheduler is not None:
                scheduler.step()

    def configure_optimizers(self) -> Any:
        return [
            self.build_optimizer(self.generator_optimizer, self.generator, self.generator_scheduler),
            self.build_optimizer(self.critic_optimizer, self.critic, self.critic_scheduler),
        ]
