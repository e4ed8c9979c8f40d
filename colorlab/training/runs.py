"""Where a run lives and what it logs: run folder, loggers and checkpoint callbacks from the YAML's ``run:``."""

from __future__ import annotations

import csv
import importlib.util
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities import rank_zero_only

from colorlab.runs.folder import (
    BEST_CHECKPOINT,
    DELTA_E00_CHECKPOINT,
    LAST_CHECKPOINT,
    RUNS_ROOT,
    NothingToResume,
    RunFolder,
)
from colorlab.training.rng import RngState

log = logging.getLogger(__name__)

# The run version rank 0 chose, handed to the processes Lightning's DDP launcher starts (they inherit the
# environment); under torchrun or srun, export it to every rank or pass --run.version.
VERSION_ENV = "COLORLAB_RUN_VERSION"
_exported_version: str | None = None  # what this process put in VERSION_ENV (a later run picks a new one)


def is_rank_zero() -> bool:
    """Whether this process is global rank 0; known from the launcher's environment before DDP starts."""
    return rank_zero_only.rank == 0


WandbMode = Literal["online", "offline", "disabled"]


def finish_wandb_run() -> None:
    """End the active W&B run, if any, so that the next phase's logger starts its own run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


class ResumableCSVLogger(CSVLogger):
    """CSVLogger that keeps the rows already in ``metrics.csv`` when a resumed run reopens its folder.

    Lightning's writer deletes an existing ``metrics.csv`` when it starts, which would drop the
    interrupted part of the run; this logger reads the file first and writes it back. The resumed run
    repeats the steps after its checkpoint, so at its first logged step the earlier rows from that step on
    are dropped: every step is in the file once.
    """

    _resumed_rows = False

    @property
    def experiment(self) -> Any:
        if self._experiment is not None or not is_rank_zero():  # only rank 0 writes the log
            return super().experiment
        path = Path(self.log_dir) / RunFolder.METRICS
        previous = path.read_text() if path.is_file() else ""
        writer = super().experiment
        if previous:
            path.write_text(previous)
            writer.metrics_keys = next(csv.reader(previous.splitlines()), [])
            self._resumed_rows = True
        return writer

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if self._resumed_rows and step is not None:
            self._resumed_rows = False
            drop_rows_from_step(Path(self.log_dir) / RunFolder.METRICS, step)
        super().log_metrics(metrics, step)


def drop_rows_from_step(path: Path, step: int) -> None:
    """Remove the rows of ``path`` (a metrics CSV) whose ``step`` is ``step`` or later."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], list(reader)
    kept = [row for row in rows if not (row.get("step") or "").isdigit() or int(row["step"]) < step]
    if len(kept) == len(rows):
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)


HEADLINE_MONITOR = "val/delta_e00"


class HeadlineCheckpoint(ModelCheckpoint):
    """The lowest-val-ΔE00 checkpoint, kept beside a run that selects on another metric (GANs on Fréchet, Zhang on
    the colourfulness gap), so results can compare every family on the checkpoint ΔE00 picks; it does nothing for
    approaches that do not log val ΔE00 (an upscaler scores luminance only)."""

    def __init__(self, dirpath: Path, filename: str) -> None:
        super().__init__(dirpath=dirpath, filename=filename, monitor=HEADLINE_MONITOR, mode="min", save_top_k=1,
                         auto_insert_metric_name=False)  # fmt: skip

    def _save_topk_checkpoint(self, trainer: Any, monitor_candidates: dict[str, torch.Tensor]) -> None:
        # Lightning raises when the monitored key is missing after a validation; here that means "not logged".
        if self.monitor in monitor_candidates:
            super()._save_topk_checkpoint(trainer, monitor_candidates)


class RunSettings:
    """The ``run:`` section of an experiment YAML.

    Args:
        name: experiment name; runs go to ``{root}/{name}/{version}``.
        root: folder that holds all runs.
        version: run folder name; a new timestamp when unset.
        resume: continue the latest run of ``name`` from its ``last.ckpt`` (same folder, same loggers).
        monitor: validation metric that picks the best checkpoint (the val split; the test split never selects).
        monitor_mode: ``min`` or ``max`` for ``monitor``.
        frechet_effnet: also log ``val/frechet_effnet`` and ``test/frechet_effnet``, the Fréchet distance on
            offline EfficientNet-Lite0 features (:mod:`colorlab.training.frechet`); costs a small CNN pass
            per validation image, so it is off unless the YAML asks.
        save_top_k: how many best checkpoints to keep.
        checkpoint_every_n_steps: also refresh ``last.ckpt`` every N optimizer steps (mid-epoch resume).
        wandb: ``offline`` (default: no account, ``wandb sync`` later), ``online`` or ``disabled``;
            ``$WANDB_MODE`` overrides ``offline``/``online`` when set, never an explicit ``disabled``.
        wandb_project: W&B project.
        wandb_group: W&B group (defaults to ``name``, so runs of one experiment sit together).
        wandb_tags: W&B tags; when empty, the approach family and the dataset (e.g. ``regression``,
            ``photos``) are derived from the model and data classes.
        wandb_log_model: upload the best checkpoint to W&B as a ``model`` artifact when fitting ends.
        phases: fits that ``python -m colorlab experiment`` runs in order, each ``{name, overrides}``
            (see :mod:`colorlab.training.phases`); other commands ignore them.
    """

    def __init__(
        self,
        name: str = "default",
        root: str = str(RUNS_ROOT),
        version: str | None = None,
        resume: bool = False,
        monitor: str = "val/delta_e00",
        monitor_mode: Literal["min", "max"] = "min",
        frechet_effnet: bool = False,
        save_top_k: int = 1,
        checkpoint_every_n_steps: int | None = None,
        wandb: WandbMode = "offline",
        wandb_project: str = "colorlab",
        wandb_group: str | None = None,
        wandb_tags: list[str] | None = None,
        wandb_log_model: bool = False,
        phases: list[dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.root = root
        self.version = version
        self.resume = resume
        self.monitor = monitor
        self.monitor_mode = monitor_mode
        self.frechet_effnet = frechet_effnet
        if monitor.endswith("/frechet_effnet") and not frechet_effnet:
            raise ValueError(f"run.monitor is {monitor} but run.frechet_effnet is false: set it to true")
        self.save_top_k = save_top_k
        self.checkpoint_every_n_steps = checkpoint_every_n_steps
        # The environment switches every run offline (CI) or online, but a run configured without W&B stays so.
        self.wandb = wandb if wandb == "disabled" else os.environ.get("WANDB_MODE", wandb)
        self.wandb_project = wandb_project
        self.wandb_group = wandb_group or name
        self.wandb_tags = list(wandb_tags or [])
        self.wandb_log_model = wandb_log_model
        self.phases = phases

    @property
    def run_dir(self) -> Path:
        """``{root}/{name}/{version}``."""
        if self.version is None:
            raise ValueError("run version is not set yet")
        return Path(self.root) / self.name / self.version

    @property
    def checkpoint_dir(self) -> Path:
        """Where ``best-*.ckpt`` and ``last.ckpt`` go."""
        return RunFolder(self.run_dir).checkpoint_dir

    def new_version(self) -> str:
        """A fresh, sortable run folder name (timestamp; suffixed if taken), claimed by creating the folder:
        ``os.mkdir`` succeeds for exactly one process, so two runs started in one second get two folders."""
        base = time.strftime("%Y%m%d-%H%M%S")
        parent = Path(self.root) / self.name
        parent.mkdir(parents=True, exist_ok=True)
        version, i = base, 1
        while True:
            try:
                os.mkdir(parent / version)
                return version
            except FileExistsError:
                version, i = f"{base}-{i}", i + 1

    def shared_version(self) -> str:
        """The version every rank of this launch agrees on: ``$COLORLAB_RUN_VERSION`` when the user or rank 0
        set it, else (on rank 0) a new one, exported for the processes Lightning's DDP launcher starts."""
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # A later run in processes DDP already joined (e.g. a script running several): rank 0 decides.
            box = [self._rank_zero_version() if dist.get_rank() == 0 else None]
            dist.broadcast_object_list(box, src=0)
            return box[0]
        return self._rank_zero_version()

    def _rank_zero_version(self) -> str:
        global _exported_version
        inherited = os.environ.get(VERSION_ENV)
        if inherited and inherited != _exported_version:
            return inherited
        if not is_rank_zero():
            raise RuntimeError(f"rank {rank_zero_only.rank} does not know the run version: under torchrun or "
                               f"srun pass --run.version=NAME (or export {VERSION_ENV}) to every rank")  # fmt: skip
        _exported_version = os.environ[VERSION_ENV] = self.new_version()
        return _exported_version

    def latest_resumable(self) -> Path:
        """The checkpoint to resume from: the newest readable one of the newest interrupted run of this
        experiment (never a finished run's). Raises :class:`NothingToResume` saying why there is none."""
        run = RunFolder.interrupted(self.root, self.name)
        if run.phases is not None:
            raise NothingToResume(f"{run.path} is a multi-phase run; continue it with "
                                  "python -m colorlab experiment --resume")  # fmt: skip
        checkpoint = run.resume_checkpoint()
        if checkpoint is None:
            raise NothingToResume(f"nothing to resume: the newest unfinished run of {self.name!r}, {run.path}, "
                                  "was interrupted before it saved a readable checkpoint; start a new run")  # fmt: skip
        return checkpoint

    def use_wandb(self) -> bool:
        """Whether runs log to W&B: not disabled, and the package is installed (else a warning)."""
        if self.wandb == "disabled":
            return False
        if importlib.util.find_spec("wandb") is None:
            log.warning("wandb is not installed (pip install 'colorlab[wandb]'); logging to CSV only")
            return False
        return True

    def loggers(self) -> list[Logger]:
        """A CSV logger that always writes, plus W&B unless disabled or not installed."""
        loggers: list[Logger] = [ResumableCSVLogger(save_dir=self.root, name=self.name, version=self.version)]
        if not self.use_wandb():
            return loggers
        from lightning.pytorch.loggers import WandbLogger

        if is_rank_zero():  # W&B writes only on rank 0; other ranks must not create folders
            self.run_dir.mkdir(parents=True, exist_ok=True)
        loggers.append(
            WandbLogger(
                project=self.wandb_project,
                name=f"{self.name}/{self.version}",
                id=f"{self.name}-{self.version}".replace("/", "-"),
                group=self.wandb_group,
                tags=self.wandb_tags,
                save_dir=str(self.run_dir),
                mode=self.wandb,
                resume="allow",
            )
        )
        return loggers

    def callbacks(self) -> list[Callback]:
        """Best-by-metric checkpoints, an always-fresh ``last.ckpt`` (for resume), the LR monitor and, unless
        W&B is disabled, the W&B run's config/tags/model artifact and its per-image validation table."""
        callbacks: list[Callback] = [
            ModelCheckpoint(
                dirpath=self.checkpoint_dir,
                filename=BEST_CHECKPOINT,
                monitor=self.monitor,
                mode=self.monitor_mode,
                save_top_k=self.save_top_k,
                auto_insert_metric_name=False,
            ),
            # Lightning only refreshes save_last when a top-k file is written; resume needs the latest state.
            ModelCheckpoint(
                dirpath=self.checkpoint_dir,
                filename=LAST_CHECKPOINT,
                save_top_k=1,
                every_n_train_steps=self.checkpoint_every_n_steps,
                enable_version_counter=False,
            ),
            LearningRateMonitor(logging_interval="epoch"),
            RngState(),
        ]
        if self.monitor != HEADLINE_MONITOR:
            callbacks.append(HeadlineCheckpoint(dirpath=self.checkpoint_dir, filename=DELTA_E00_CHECKPOINT))
        if self.frechet_effnet:
            from colorlab.training.frechet import FrechetEffNetCallback

            callbacks.append(FrechetEffNetCallback())
        if self.wandb != "disabled":  # both do nothing when no WandbLogger is attached
            from colorlab.training.callbacks import WandbRunInfo, WandbValidationTable

            callbacks += [
                WandbRunInfo(self.wandb_tags, log_model=self.wandb_log_model),
                WandbValidationTable(),
            ]
        return callbacks
