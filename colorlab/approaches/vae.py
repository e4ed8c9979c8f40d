"""VAE-UNet colorization: reconstruction + beta * KL with beta annealed, several z -> several colorizations.

The net is a conditional VAE (see :mod:`colorlab.models.vae_unet`): during training z comes from the
posterior given the true colours, at inference from the prior ``N(0, I)``. ``colorize`` decodes the
prior's mean (z = 0) so evaluation is deterministic; ``sample`` draws ``n`` different colorizations.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from colorlab.approaches.base import ColorizationModule
from colorlab.colorizers.generative import VAEPriorNet
from colorlab.losses import ColorLoss, ColorLossName, kl_divergence
from colorlab.models.vae_unet import VAEUNet

ScheduleKind = Literal["constant", "linear", "cyclical"]


class KLSchedule:
    """The KL weight beta as a function of the optimizer step.

    - ``constant``: ``beta_max`` throughout.
    - ``linear``: warm-up from 0 to ``beta_max`` over ``warmup_steps``, then flat.
    - ``cyclical`` (Fu et al. 2019, "Cyclical Annealing Schedule"): cycles of ``cycle_steps`` steps
      (their T/M); in each, beta rises linearly from 0 to ``beta_max`` over the first ``ratio`` of the
      cycle (their R) and stays there for the rest. After ``cycles`` cycles (None: never) it stays at
      ``beta_max``.

    Args:
        kind: ``constant``, ``linear`` or ``cyclical``.
        beta_max: the largest (final) weight of the KL term.
        warmup_steps: length of the linear warm-up.
        cycle_steps: length of one cycle of the cyclical schedule.
        ratio: share of each cycle spent increasing, in (0, 1].
        cycles: number of cycles before beta stays at ``beta_max`` (None: cycle until the end).
    """

    def __init__(
        self,
        kind: ScheduleKind = "linear",
        beta_max: float = 1.0,
        warmup_steps: int = 1000,
        cycle_steps: int = 1000,
        ratio: float = 0.5,
        cycles: int | None = None,
    ) -> None:
        if kind not in ("constant", "linear", "cyclical"):
            raise ValueError(f"unknown KL schedule {kind!r}; choose constant, linear or cyclical")
        if beta_max < 0:
            raise ValueError(f"beta_max must be >= 0, got {beta_max}")
        if kind == "linear" and warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if kind == "cyclical" and (cycle_steps < 1 or not 0 < ratio <= 1):
            raise ValueError(
                f"cyclical schedule needs cycle_steps >= 1 and 0 < ratio <= 1, got {cycle_steps}, {ratio}"
            )
        self.kind = kind
        self.beta_max = beta_max
        self.warmup_steps = warmup_steps
        self.cycle_steps = cycle_steps
        self.ratio = ratio
        self.cycles = cycles

    def __call__(self, step: int) -> float:
        """beta at optimizer step ``step`` (0-based)."""
        if self.kind == "constant":
            return self.beta_max
        if self.kind == "linear":
            return self.beta_max * min(1.0, step / self.warmup_steps) if self.warmup_steps else self.beta_max
        if self.cycles is not None and step >= self.cycles * self.cycle_steps:
            return self.beta_max
        tau = (step % self.cycle_steps) / self.cycle_steps
        return self.beta_max * min(1.0, tau / self.ratio)

    def __repr__(self) -> str:
        return (f"KLSchedule(kind={self.kind!r}, beta_max={self.beta_max}, warmup_steps={self.warmup_steps}, "
                f"cycle_steps={self.cycle_steps}, ratio={self.ratio}, cycles={self.cycles})")  # fmt: skip


class VAEColorizer(ColorizationModule):
    """Trains a :class:`VAEUNet` with ``recon(ab_pred, ab) + beta(step) * KL(q(z | L, ab) || N(0, I))``.

    Logs ``train/recon``, ``train/kl``, ``train/beta`` (every step) and ``train/loss``.

    Args:
        net: the conditional VAE U-Net.
        loss: reconstruction loss (:class:`colorlab.losses.ColorLoss`): ``l1``, ``mse``, ``huber`` or
            ``delta_e00``.
        kl_schedule: the KL weight per step (default: linear warm-up to 1 over 1000 steps).
        prior_path: ``.npy`` ab prior to rebalance the reconstruction loss by colour rarity (None: every pixel
            alike).
        rebalance_lambda: weight of the uniform distribution mixed into the prior.
        prior_sigma: Gaussian smoothing of the prior over ab, in Lab units.
        **kwargs: optimizer, scheduler, grid_images (see :class:`ColorizationModule`).
    """

    colorizer_class = VAEPriorNet
    legacy_keys = (("net.", "colorizer.net."),)

    def __init__(
        self,
        net: VAEUNet,
        loss: ColorLossName = "l1",
        kl_schedule: KLSchedule | None = None,
        prior_path: str | None = None,
        rebalance_lambda: float = 0.5,
        prior_sigma: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.colorizer = VAEPriorNet(net)
        self.criterion = ColorLoss(loss, prior_path=prior_path, rebalance_lambda=rebalance_lambda,
                                   prior_sigma=prior_sigma)  # fmt: skip
        self.kl_schedule = kl_schedule if kl_schedule is not None else KLSchedule()

    def sample(self, L: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` colorizations of each image, z drawn from the prior (see :meth:`VAEPriorNet.sample`)."""
        return self.colorizer.sample(L, n, generator)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pred, mu, logvar = self.net(self.model_input(batch), batch["ab"])
        recon = self.criterion(batch["L"], pred, batch["ab"])["loss"]
        kl = kl_divergence(mu, logvar)
        beta = self.kl_schedule(self.global_step)
        return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "beta": torch.tensor(beta)}
