"""Reading an experiment's config without running it: the one entry point for parse-only reads.

The YAMLs and dotted overrides are parsed by the same parser as ``python -m colorlab fit`` (later files and
overrides win, defaults filled in, types checked), so every tool sees the values a run would see::

    config = load_config(["experiments/unet_l1.yaml"], ["--trainer.max_epochs=2"])
    config["model.init_args.optimizer.init_args.lr"]   # 0.001
    config.run.name                                    # "unet_l1"
    config.build_data()                                # only the DataModule, nothing else is built

An experiment YAML may start from another one: ``config: colorspace_lab.yaml`` (a path relative to the
YAML) followed by dotted keys that override it, e.g. ``model.init_args.target_space: rgb``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from jsonargparse import ArgumentParser, Namespace

from colorlab.data.datamodule import LabDataModule


class ExperimentConfig:
    """An experiment's parsed config (a jsonargparse Namespace) with dotted reads, a dump and the DataModule."""

    def __init__(self, namespace: Namespace, parser: ArgumentParser) -> None:
        self.namespace = namespace
        self._parser = parser

    def __getitem__(self, key: str) -> Any:
        """The value at a dotted key, e.g. ``"model.init_args.loss"`` (KeyError when the config has none)."""
        value = self.namespace.get(key, KeyError)
        if value is KeyError:
            raise KeyError(f"the config has no {key!r}")
        return value.as_dict() if isinstance(value, Namespace) else value

    def get(self, key: str, default: Any = None) -> Any:
        """The value at a dotted key, or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "namespace":
            raise AttributeError(name)
        return getattr(self.namespace, name)

    def as_dict(self) -> dict[str, Any]:
        """The whole config as plain dicts and lists (without the ``config`` paths it was read from)."""
        config = self.namespace.as_dict()
        config.pop("config", None)
        return config

    def dump(self) -> str:
        """The whole config as YAML that ``--config`` reads back (every value explicit)."""
        return self._parser.dump(self.namespace, skip_none=False)

    def build_data(self) -> LabDataModule:
        """Build the ``data`` section only (the model, trainer and run folder are not built)."""
        parser = ArgumentParser()
        parser.add_subclass_arguments(LabDataModule, "data")
        return parser.instantiate_classes(parser.parse_object({"data": self.namespace.data.as_dict()})).data


def config_args(configs: Sequence[str | os.PathLike]) -> list[str]:
    """``--config A --config B ...`` for LightningCLI."""
    return [arg for config in configs for arg in ("--config", str(config))]


def override_args(values: dict[str, Any]) -> list[str]:
    """``{dotted.key: value}`` -> command-line overrides ``--dotted.key=value`` (non-strings as JSON)."""
    return [
        f"--{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in values.items()
    ]


def load_config(configs: Sequence[str | os.PathLike], overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Parse experiment YAMLs (later ones override earlier ones) and ``--dotted.key=value`` overrides."""
    from colorlab.training.cli import ColorlabCLI

    cli = ColorlabCLI(args=[*config_args(configs), *overrides], run=False, parse_only=True)
    return ExperimentConfig(cli.config, cli.parser)
