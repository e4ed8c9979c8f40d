"""Lightning callbacks that make a W&B project compare approaches side by side.

:class:`WandbRunInfo` logs the whole experiment YAML as the run's config, fills in default tags (approach
family and dataset) and optionally uploads the best checkpoint; :class:`WandbValidationTable` logs a
``wandb.Table`` of per-image metrics from the first validation batch. Both do nothing without a
:class:`~lightning.pytorch.loggers.WandbLogger`, so they are safe in any run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from colorlab.color import float_to_uint8, l_to_gray_rgb


def wandb_loggers(trainer: L.Trainer) -> list[WandbLogger]:
    """The trainer's W&B loggers (usually none or one)."""
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


def approach_tag(module: L.LightningModule) -> str:
    """The approach family: the module's file in ``colorlab.approaches`` (``regression``, ``nogan``...)."""
    return type(module).__module__.rsplit(".", 1)[-1]


def dataset_tag(datamodule: L.LightningDataModule | None) -> str | None:
    """A dataset name: a CIFAR variant, an image folder's name, else the DataModule's name (``samples``)."""
    if datamodule is None:
        return None
    variant = getattr(datamodule, "variant", None)
    if isinstance(variant, str):
        return variant
    if hasattr(datamodule, "root"):
        from colorlab.data.datamodule import DATA_ENV

        root = datamodule.root or os.environ.get(DATA_ENV)
        if root:
            return Path(root).expanduser().resolve().name
    return type(datamodule).__name__.removesuffix("DataModule").lower() or None


def experiment_config(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
    """The whole experiment config as LightningCLI parsed it (YAMLs + overrides), else the hyperparameters."""
    for callback in trainer.callbacks:
        if isinstance(callback, SaveConfigCallback):
            return yaml.safe_load(callback.parser.dump(callback.config, skip_none=False))
    config: dict[str, Any] = {"model": dict(pl_module.hparams)}
    if trainer.datamodule is not None:
        config["data"] = dict(getattr(trainer.datamodule, "hparams", {}))
    return config


class WandbRunInfo(L.Callback):
    """Full config, default tags and (optionally) the best checkpoint as an artifact, for every W&B logger.

    Args:
        tags: the YAML's ``run.wandb_tags``; when empty, ``[approach family, dataset]`` are used.
        log_model: upload the best checkpoint (``type="model"``, alias ``best``) when fitting ends.
    """

    def __init__(self, tags: list[str] | None = None, log_model: bool = False) -> None:
        self.tags = list(tags or [])
        self.log_model = log_model

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        loggers = wandb_loggers(trainer)
        if not loggers or not trainer.is_global_zero:
            return
        config = experiment_config(trainer, pl_module)
        tags = self.tags or [t for t in (approach_tag(pl_module), dataset_tag(trainer.datamodule)) if t]
        for logger in loggers:
            run = logger.experiment
            run.config.update(config, allow_val_change=True)
            run.tags = tuple(dict.fromkeys([*run.tags, *tags]))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if not (self.log_model and best and trainer.is_global_zero):
            return
        import wandb

        for logger in wandb_loggers(trainer):
            run = logger.experiment
            artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata={
                "score": float(trainer.checkpoint_callback.best_model_score or float("nan")),
                "monitor": trainer.checkpoint_callback.monitor, "step": trainer.global_step})  # fmt: skip
            artifact.add_file(best, name=Path(best).name)
            run.log_artifact(artifact, aliases=["best", "latest"])


class WandbValidationTable(L.Callback):
    """A ``wandb.Table`` (``val/per_image``) of input | prediction | truth and per-image metrics, from the
    first validation batch of every validation run.

    Args:
        max_images: rows in the table.
    """

    def __init__(self, max_images: int = 8) -> None:
        self.max_images = max_images

    @torch.no_grad()
    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        loggers = wandb_loggers(trainer)
        if batch_idx != 0 or dataloader_idx != 0 or trainer.sanity_checking or not loggers:
            return
        import wandb

        from colorlab.metrics import image_scores

        n = self.max_images
        truth = batch["rgb"][:n]
        model_in = pl_module.model_input(batch)[:n]
        pred = pl_module.colorize_rgb(model_in).float()
        scores = image_scores(pred, truth.float())
        pictures = [float_to_uint8(x).permute(0, 2, 3, 1).cpu().numpy() for x in (l_to_gray_rgb(model_in), pred, truth)]
        columns = ["epoch", "index", "input", "prediction", "truth", *scores]
        data = [
            [trainer.current_epoch, i, *(wandb.Image(p[i]) for p in pictures), *(float(s[i]) for s in scores.values())]
            for i in range(pred.shape[0])
        ]
        for logger in loggers:
            logger.log_table(key="val/per_image", columns=columns, data=data, step=trainer.global_step)
