"""Logs ``val/frechet_effnet`` and ``test/frechet_effnet`` (:class:`colorlab.metrics.FrechetEffNetDistance`).

A callback rather than a member of the approaches' metric set: the feature network then stays out of every
checkpoint and out of inference, and only runs whose YAML sets ``run.frechet_effnet: true`` pay for it.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from colorlab.metrics import FRECHET_KEY, FrechetEffNetDistance


class FrechetEffNetCallback(Callback):
    """Scores every validation and test epoch with the Fréchet EfficientNet-Lite0 feature distance.

    The validation images are the same every epoch (center crops, seeded degradations), so the truth's
    features are computed in the first real validation epoch only.

    Args:
        input_size: side the images are resized to for the feature net (small keeps CPU validation cheap).
        pretrained: ImageNet weights (local files only); ``False`` only for tests.
    """

    def __init__(self, input_size: int = 128, pretrained: bool = True) -> None:
        self.input_size = input_size
        self.pretrained = pretrained
        self.metrics: dict[str, FrechetEffNetDistance] = {}

    def _metric(self, stage: str, device: torch.device) -> FrechetEffNetDistance:
        if stage not in self.metrics:
            from colorlab.models.features import PooledImageNetFeatures

            features = PooledImageNetFeatures(pretrained=self.pretrained, input_size=self.input_size)
            self.metrics[stage] = FrechetEffNetDistance(features)
        return self.metrics[stage].to(device)

    def _update(self, stage: str, pl_module: L.LightningModule, outputs: Any, batch: dict[str, Any]) -> None:
        # The approaches' validation/test steps return their sRGB prediction; recompute it for any that do not.
        pred = outputs if torch.is_tensor(outputs) else pl_module.colorize_rgb(pl_module.model_input(batch))
        with torch.autocast(pred.device.type, enabled=False):  # fp32 features, as in an fp32 run
            self._metric(stage, pl_module.device).update(pred.detach().float(), batch["rgb"].float())

    def _log(self, stage: str, pl_module: L.LightningModule) -> None:
        metric = self.metrics.get(stage)
        if metric is None:
            return
        value = metric.compute()  # already reduced over DDP ranks by torchmetrics: sync_dist averages equals
        pl_module.log(f"{stage}/{FRECHET_KEY}", value.float(), sync_dist=True)
        if stage == "val":
            metric.freeze_target()
        metric.reset()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        self._update("val", pl_module, outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:  # a few batches only: neither a score nor the truth's full statistics
            self.metrics.pop("val", None)
            return
        self._log("val", pl_module)

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        self._update("test", pl_module, outputs, batch)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log("test", pl_module)
