"""The LightningModule every colorization approach inherits: one contract, one set of metrics.

Contract: ``colorize(L) -> ab`` maps normalised L ``(B, 1, H, W)`` in [-1, 1] to normalised ab
``(B, 2, H, W)`` (see :mod:`colorlab.color`). Evaluation, inference, export and the web page only use it
(through :meth:`ColorizationModule.predict_lab`, which restoration approaches extend to also return a
restored L), so any approach can be compared with any other.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import MetricCollection

from colorlab.baselines import Baselines, TrivialColorizer
from colorlab.color import float_to_uint8, l_to_gray_rgb, lab_normalized_to_rgb
from colorlab.metrics import colorization_metrics
from colorlab.visualize import comparison_grid, log_image


class ColorizationModule(L.LightningModule):
    """Shared training/evaluation behaviour; subclasses define ``colorize`` and ``training_loss``.

    Args:
        optimizer: optimizer factory, e.g. ``{class_path: torch.optim.AdamW, init_args: {lr: 1e-3}}``.
        scheduler: optional LR scheduler factory, stepped once per epoch.
        grid_images: how many validation images the logged image grid shows.
    """

    # True for approaches whose predict_lab returns a restored L (inference then keeps it, not the input's).
    restores_l = False

    def __init__(
        self,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        grid_images: int = 8,
    ) -> None:
        super().__init__()
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
        self.val_metrics = self.new_metrics("val/")
        self.test_metrics = self.new_metrics("test/")
        self._grid: dict[str, list[torch.Tensor]] = {}

    # ---- the contract -------------------------------------------------------------------------------

    @abstractmethod
    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """Normalised L ``(B, 1, H, W)`` -> normalised ab ``(B, 2, H, W)``."""

    @abstractmethod
    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms for one batch; the ``"loss"`` entry is optimised, every entry is logged."""

    def model_input(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The L the model sees: the degraded ``L_input`` when the data provides one, else ``L``."""
        return batch.get("L_input", batch["L"])

    def predict_lab(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (L, ab) of the output picture; plain colorizers keep the input's L."""
        return L, self.colorize(L)

    def colorize_rgb(self, L: torch.Tensor) -> torch.Tensor:
        """Normalised L -> the colorized sRGB picture in [0, 1], clipped to the gamut."""
        L_out, ab = self.predict_lab(L)
        return lab_normalized_to_rgb(L_out, ab)

    # ---- what evaluation compares ------------------------------------------------------------------

    def new_metrics(self, prefix: str) -> MetricCollection:
        """The metrics this approach is scored with (the shared colorization set)."""
        return colorization_metrics(prefix)

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

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = self.training_loss(batch)
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=batch["L"].shape[0])
        return losses["loss"]

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer)}}

    # ---- evaluation ---------------------------------------------------------------------------------

    def _evaluate(self, batch: dict[str, torch.Tensor], batch_idx: int, stage: str) -> torch.Tensor:
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        model_in = self.model_input(batch)
        pred, target = self.colorize_rgb(model_in), self.evaluation_target(batch)
        metrics.update(pred, target)
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
