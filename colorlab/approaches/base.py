"""The LightningModule every colorization approach inherits: one contract, one set of metrics, one optimizer
builder.

Contract: ``predict_lab(L) -> (L_out, ab)`` maps normalised L ``(B, 1, H, W)`` in [-1, 1] to the normalised
Lab of the output picture (see :mod:`colorlab.color`). Each approach holds its deployable part, a plain
``nn.Module`` from :mod:`colorlab.colorizers` (net plus decode), as ``self.colorizer``; ``predict_lab`` and
``colorize`` delegate to it, and the approach adds losses, optimizers and the training steps around it.
Its weights are saved under ``colorizer.*`` with its class path, so tools rebuild it from a checkpoint
without Lightning (:func:`colorlab.colorizers.loading.load_colorizer`).

Optimizers: :meth:`ColorizationModule.build_optimizer` is the one place that turns a net into parameter
groups (pretrained encoders at ``encoder_lr_mult`` of the base rate, frozen parameters left out), a linear
warm-up and a scheduler; every approach, GAN generators and critics included, uses it.
"""

from __future__ import annotations

import importlib
import os
import warnings
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torchmetrics import MetricCollection

from colorlab.baselines import Baselines, TrivialColorizer
from colorlab.color import float_to_uint8, l_to_gray_rgb
from colorlab.colorizers.base import DeployableColorizer
from colorlab.colorizers.loading import COLORIZER_CLASS_KEY, remap_legacy_keys
from colorlab.guidance import HintMap
from colorlab.losses import ColorLoss
from colorlab.metrics import colorization_metrics
from colorlab.models.blocks import pretrained_encoders
from colorlab.runs.checkpoints import CheckpointError, allowed_globals, checkpoint_class_path, load_checkpoint
from colorlab.visualize import comparison_grid, save_png


class ColorizationModule(L.LightningModule):
    """Shared training/evaluation behaviour; subclasses set ``self.colorizer`` (an instance of their
    ``colorizer_class``) and define ``training_loss``.

    Args:
        optimizer: optimizer factory, e.g. ``{class_path: torch.optim.AdamW, init_args: {lr: 1e-3}}``.
        scheduler: optional LR scheduler factory, stepped once per epoch.
        grid_images: how many validation images the logged image grid shows.
        encoder_lr_mult: learning rate of pretrained encoders (modules with ``pretrained = True``, see
            :func:`colorlab.models.blocks.pretrained_encoders`) as a fraction of the optimizer's rate, so
            the ImageNet features are adapted, not overwritten, while the fresh decoder learns fast.
        warmup_steps: optimizer steps over which every parameter group's rate rises linearly to its full
            value (0: none); a group added mid-run (an encoder unfrozen later) warms up from its own start.
    """

    colorizer: DeployableColorizer
    colorizer_class: ClassVar[type[DeployableColorizer]]
    # State-dict prefixes of checkpoints written before the colorizers split -> today's (``colorizer.``...).
    legacy_keys: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(
        self,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        grid_images: int = 8,
        encoder_lr_mult: float = 1.0,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(getattr(type(self), "colorizer_class", None), type):
            raise TypeError(f"{type(self).__name__} must name its deployable colorizer_class (see colorlab.colorizers)")
        if encoder_lr_mult < 0 or warmup_steps < 0:
            raise ValueError(
                f"need encoder_lr_mult >= 0 and warmup_steps >= 0, got {encoder_lr_mult}, {warmup_steps}"
            )
        # Collects the init args of the whole subclass chain; under LightningCLI these are the YAML's
        # class_path/init_args, so `load_colorizer` can rebuild any approach from its checkpoint alone.
        with warnings.catch_warnings():
            # Nets passed as objects (outside the CLI) are saved in the state dict anyway; no need to warn.
            warnings.filterwarnings("ignore", message="Attribute '.*' is an instance of `nn.Module`")
            self.save_hyperparameters()
        # Nets passed as objects are in the state dict already; pickled whole in the hyper-parameters they
        # would turn the checkpoint into code, which the weights-only loader refuses.
        for name in [key for key, value in self.hparams.items() if isinstance(value, torch.nn.Module)]:
            del self.hparams[name]
            self._hparams_initial.pop(name, None)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.grid_images = grid_images
        self.encoder_lr_mult = encoder_lr_mult
        self.warmup_steps = warmup_steps
        self.val_metrics = self.new_metrics("val/")
        self.test_metrics = self.new_metrics("test/")
        self._grid: dict[str, list[torch.Tensor]] = {}

    # ---- the contract -------------------------------------------------------------------------------

    @property
    def net(self) -> nn.Module:
        """The colorizer's net (for colorizers built around one ``net``)."""
        return self.colorizer.net

    @property
    def restores_l(self) -> bool:
        """True when ``predict_lab`` returns a restored L (inference then keeps it, not the input's)."""
        return self.colorizer.restores_l

    def predict_lab(
        self, L: torch.Tensor, hints: HintMap | None = None, reference: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """THE contract, by the colorizer: normalised L ``(B, 1, H, W)`` with optional guidance (see
        :meth:`colorlab.colorizers.base.DeployableColorizer.predict_lab`) -> normalised ``(L_out, ab)``."""
        return self.colorizer.predict_lab(L, hints, reference)

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """Normalised L ``(B, 1, H, W)`` -> ab ``(B, 2, H, W)``, for colorizers that keep the input's L."""
        return self.colorizer.colorize(L)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        colorizer = type(self.colorizer)
        checkpoint[COLORIZER_CLASS_KEY] = f"{colorizer.__module__}.{colorizer.__qualname__}"

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if COLORIZER_CLASS_KEY not in checkpoint:  # written before the colorizers split
            checkpoint["state_dict"] = remap_legacy_keys(checkpoint["state_dict"], dict(self.legacy_keys))

    @abstractmethod
    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms for one batch; the ``"loss"`` entry is optimised, every entry is logged."""

    def model_input(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The L the model sees: the degraded ``L_input`` when the data provides one, else ``L``."""
        return batch.get("L_input", batch["L"])

    def colorize_rgb(self, L: torch.Tensor) -> torch.Tensor:
        """Normalised L -> the colorized sRGB picture in [0, 1], clipped to the gamut."""
        return self.colorizer.colorize_rgb(L)

    # ---- what evaluation compares ------------------------------------------------------------------

    def new_metrics(self, prefix: str, sync: bool = True) -> MetricCollection:
        """The metrics this approach is scored with (the shared colorization set); ``sync=False`` for an
        evaluation that runs on one process alone."""
        return colorization_metrics(prefix, sync=sync)

    def evaluation_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The sRGB picture ``(B, 3, H, W)`` in [0, 1] a prediction is scored against: the clean truth."""
        return batch["rgb"]

    def input_preview(self, model_in: torch.Tensor) -> torch.Tensor:
        """The model's input as the sRGB picture the image grid shows in its first column."""
        return l_to_gray_rgb(model_in)

    def trivial_baselines(self, fitted: Baselines) -> dict[str, TrivialColorizer]:
        """The trivial answers reports score beside this approach, by key (see :mod:`colorlab.baselines`)."""
        return fitted.colorizers()

    # ---- training -----------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Before fitting, read the rebalancing weights of every colour loss from its prior file (not saved)."""
        if stage == "fit":
            for module in self.modules():
                if isinstance(module, ColorLoss):
                    module.load_prior()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = self.training_loss(batch)
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=batch["L"].shape[0])
        return losses["loss"]

    def configure_optimizers(self) -> Any:
        return self.build_optimizer(self.optimizer_factory, self, self.scheduler_factory)

    # ---- optimizers ---------------------------------------------------------------------------------

    def parameter_groups(self, module: nn.Module, exclude: set[int] = frozenset()) -> list[dict[str, Any]]:
        """``module``'s trainable parameters (not in ``exclude``, by id) as optimizer groups: the rest at the
        base rate first, then pretrained encoders with ``lr_mult = encoder_lr_mult``. Frozen ones are left out."""
        encoder = {id(p) for m in pretrained_encoders(module) for p in m.parameters()}
        trainable = [p for p in module.parameters() if p.requires_grad and id(p) not in exclude]
        groups = [
            {"params": [p for p in trainable if id(p) not in encoder], "name": "net", "lr_mult": 1.0},
            {"params": [p for p in trainable if id(p) in encoder], "name": "pretrained_encoder",
             "lr_mult": self.encoder_lr_mult},
        ]  # fmt: skip
        return [
            {**group, "warmup_steps": self.warmup_steps, "warmup_done": 0}
            for group in groups
            if group["params"]
        ]

    def build_optimizer(
        self, factory: OptimizerCallable, module: nn.Module, scheduler: LRSchedulerCallable | None = None
    ) -> dict[str, Any]:
        """The one optimizer builder: ``module``'s :meth:`parameter_groups`, each group's rate scaled by its
        ``lr_mult``, the linear warm-up attached, and the scheduler (stepped per epoch) when given."""
        groups = self.parameter_groups(module)
        if not groups:
            raise ValueError(f"{type(module).__name__} has no trainable parameters to optimise")
        optimizer = factory(groups)
        for group in optimizer.param_groups:
            group["lr"] *= group["lr_mult"]
        attach_warmup(optimizer)
        config: dict[str, Any] = {"optimizer": optimizer}
        if scheduler is not None:
            config["lr_scheduler"] = {"scheduler": scheduler(optimizer), "interval": "epoch"}
        return config

    def add_trainable_parameters(self, optimizer: torch.optim.Optimizer, module: nn.Module) -> int:
        """Add ``module``'s trainable parameters that ``optimizer`` does not hold yet (an encoder unfrozen
        mid-run) as new groups: their rate follows the first group's current (scheduled) rate times their
        ``lr_mult``, and they warm up from their own first step. Returns the number of parameters added."""
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        names = {group.get("name") for group in optimizer.param_groups}
        reference = next(g for g in optimizer.param_groups if g.setdefault("lr_mult", 1.0) > 0)
        added = 0
        for group in self.parameter_groups(module, exclude=held):
            # a randomly initialised encoder joins as another "net" group: Lightning's LearningRateMonitor
            # refuses two groups of one name, so the later one is numbered
            base, number = group["name"], 2
            while group["name"] in names:
                group["name"], number = f"{base}_{number}", number + 1
            names.add(group["name"])
            group["lr"] = reference["lr"] / reference["lr_mult"] * group["lr_mult"]
            if "initial_lr" in reference:  # set by schedulers; keeps their per-group base rates in step
                group["initial_lr"] = reference["initial_lr"] / reference["lr_mult"] * group["lr_mult"]
            optimizer.add_param_group(group)
            for config in self.trainer.lr_scheduler_configs if self._trainer is not None else []:
                if config.scheduler.optimizer is optimizer and hasattr(config.scheduler, "base_lrs"):
                    config.scheduler.base_lrs.append(group.get("initial_lr", group["lr"]))
            added += sum(p.numel() for p in group["params"])
        return added

    # ---- evaluation ---------------------------------------------------------------------------------

    def _evaluate(self, batch: dict[str, torch.Tensor], batch_idx: int, stage: str) -> torch.Tensor:
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        model_in = self.model_input(batch)
        pred, target = self.colorize_rgb(model_in), self.evaluation_target(batch)
        # Scored in fp32 whatever the training precision, so mixed-precision runs compare with fp32 runs.
        with torch.autocast(pred.device.type, enabled=False):
            metrics.update(pred.float(), target.float())
        self.log_dict(metrics, batch_size=pred.shape[0])
        if batch_idx == 0:
            n = self.grid_images
            self._grid[stage] = [self.input_preview(model_in[:n]), pred[:n], target[:n]]
        return pred

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Scores the batch; returns the sRGB prediction (callbacks such as the Fréchet distance reuse it)."""
        return self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Scores the batch; returns the sRGB prediction."""
        return self._evaluate(batch, batch_idx, "test")

    def grid_image(self, stage: str = "val") -> Any:
        """The last ``gray | prediction | truth`` grid of ``stage`` as an ``(H, W, 3)`` uint8 array."""
        return comparison_grid(self._grid[stage], labels=["input", "prediction", "truth"])

    def _log_grid(self, stage: str) -> None:
        if stage not in self._grid or self.trainer.sanity_checking:
            return
        image = self.grid_image(stage)
        for logger in self.loggers:
            log_image(logger, f"{stage}/grid", image, self.global_step, caption="input | prediction | truth")

    def on_validation_epoch_end(self) -> None:
        self._log_grid("val")

    def on_test_epoch_end(self) -> None:
        self._log_grid("test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """uint8 colorized RGB ``(B, 3, H, W)``."""
        return float_to_uint8(self.colorize_rgb(self.model_input(batch)))


@rank_zero_only
def log_image(logger: object, key: str, image: np.ndarray, step: int, caption: str = "") -> None:
    """Send an image to a Lightning logger: W&B and TensorBoard natively, file loggers as PNG files.

    Under DDP only rank 0 logs, like Lightning's loggers themselves."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    if isinstance(logger, WandbLogger):
        logger.log_image(key=key, images=[image], caption=[caption] if caption else None)
    elif isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(key, image, step, dataformats="HWC")
    elif getattr(logger, "log_dir", None):
        save_png(image, Path(logger.log_dir) / "images" / f"{key.replace('/', '_')}_step{step:06d}.png")


def load_approach(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> ColorizationModule:
    """The whole approach (LightningModule) stored in ``path``, for Lightning's own ``test``/``validate`` or
    further training; tools that only colorize load the deployable part with
    :func:`colorlab.colorizers.loading.load_colorizer` instead. The file is read as data."""
    class_path = checkpoint_class_path(load_checkpoint(path), path)
    module_name, _, class_name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name, None) if module_name.startswith("colorlab.") else None
    if not (isinstance(cls, type) and issubclass(cls, ColorizationModule)):
        raise CheckpointError(f"{path} holds {class_path}, which is not a colorlab approach")
    with allowed_globals():
        return cls.load_from_checkpoint(path, map_location=map_location, weights_only=True).eval()


# ---- warm-up ------------------------------------------------------------------------------------------


def _warm_up(optimizer: torch.optim.Optimizer, *_: Any) -> None:
    for group in optimizer.param_groups:
        steps, done = group.get("warmup_steps", 0), group.get("warmup_done", 0)
        if done < steps:
            group["lr_before_warmup"] = group["lr"]
            group["lr"] *= (done + 1) / steps


def _after_warm_up(optimizer: torch.optim.Optimizer, *_: Any) -> None:
    for group in optimizer.param_groups:
        if "lr_before_warmup" in group:
            group["lr"] = group.pop("lr_before_warmup")
        group["warmup_done"] = group.get("warmup_done", 0) + 1


def attach_warmup(optimizer: torch.optim.Optimizer) -> None:
    """Linear warm-up per parameter group: step ``t`` (0-based, counted in the group's ``warmup_done``)
    runs at ``(t + 1) / warmup_steps`` of the group's rate until ``warmup_steps`` steps are done.

    The factor is applied around each ``step()`` and undone after it, so any scheduler (which reads and
    writes ``lr``) composes with it exactly, a step that mixed precision skips does not count, and the
    counters, kept in the param groups, resume with the optimizer's state.
    """
    optimizer.register_step_pre_hook(_warm_up)
    optimizer.register_step_post_hook(_after_warm_up)
