"""Lightning's fit/validate/test/predict on experiment YAMLs: :class:`ColorlabCLI` and :func:`lightning_main`
(``python -m colorlab fit ...``; the command dispatch itself is :mod:`colorlab.cli`)."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from colorlab.approaches.base import ColorizationModule
from colorlab.data.datamodule import LabDataModule
from colorlab.runs.folder import RunFolder
from colorlab.training.devices import check_gpu_usable, default_devices
from colorlab.training.performance import PerformanceSettings, resolve_accelerator
from colorlab.training.runs import RunSettings


class ColorlabCLI(LightningCLI):
    """LightningCLI whose YAMLs also carry a ``run:`` section (run folder, loggers, checkpoints) and a
    ``performance:`` section (threads, channels_last, bf16, compile: :mod:`colorlab.training.performance`).

    With ``parse_only`` it stops after parsing: no seeding, no run folder, nothing built (see
    :func:`colorlab.training.config.load_config`, the one way to read a config without running it).
    """

    def __init__(self, *args: Any, parse_only: bool = False, **kwargs: Any) -> None:
        self.parse_only = parse_only
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        # args IS the command line here (minus colorlab's own command word); Lightning's warning is moot.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        super().__init__(ColorizationModule, LabDataModule, *args, subclass_mode_model=True, subclass_mode_data=True,
                         **kwargs)  # fmt: skip

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_class_arguments(RunSettings, "run")
        parser.add_class_arguments(PerformanceSettings, "performance")

    def _run_section(self) -> Any:
        return self.config[self.subcommand] if self.subcommand else self.config

    def _set_seed(self) -> None:
        if not self.parse_only:
            super()._set_seed()

    def instantiate_classes(self) -> None:
        if not self.parse_only:
            super().instantiate_classes()

    def before_instantiate_classes(self) -> None:
        """Fix the run folder before anything is built: a new version, or the latest one when resuming."""
        if self.parse_only:
            return
        section = self._run_section()
        run = section["run"]
        if run.resume:
            last = RunSettings(name=run.name, root=run.root).latest_resumable()
            run.version = RunFolder.of(last).version
            if "ckpt_path" in section and section.get("ckpt_path") is None:
                section["ckpt_path"] = str(last)
        elif run.version is None:
            run.version = RunSettings(name=run.name, root=run.root).shared_version()

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
        run: RunSettings = self._get(self.config_init, "run")
        # Where Lightning writes when loggers are off (fast_dev_run, smoke): the run folder, never the cwd.
        config["default_root_dir"] = config.get("default_root_dir") or str(run.run_dir)
        if config.get("logger") in (None, True):
            config["logger"] = run.loggers()
        if config.get("enable_checkpointing", True) is not False:
            callbacks = [*callbacks, *run.callbacks()]
        performance: PerformanceSettings = self._get(self.config_init, "performance")
        check_gpu_usable(config.get("accelerator"))
        accelerator = resolve_accelerator(config.get("accelerator"))
        config["devices"] = default_devices(config.get("devices"), accelerator)
        if config.get("precision") is None:
            config["precision"] = performance.precision(accelerator)
        if config.get("benchmark") is None and accelerator in ("cuda", "gpu"):
            config["benchmark"] = True  # cuDNN picks the fastest kernels for the fixed crop size
        callbacks = [*callbacks, performance.callback()]
        return super()._instantiate_trainer(config, callbacks)


def lightning_main(argv: list[str], run: bool = True) -> ColorlabCLI:
    """Run (or with ``run=False`` only build) the Lightning CLI on ``argv``."""
    torch.set_float32_matmul_precision("high")
    return ColorlabCLI(args=argv, run=run)
