"""Rebuild an approach's deployable colorizer from its checkpoint alone, without importing Lightning.

A checkpoint written by a colorlab run stores the approach's hyper-parameters (LightningCLI's
``class_path`` / ``init_args`` dicts) and, since the colorizers split, the class path of the approach's
deployable colorizer (``colorizer_class``) with its weights under ``colorizer.*``. Checkpoints written
before the split hold neither: for those the approach class is imported once (Lightning included) to read
its ``colorizer_class`` and ``legacy_keys``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import torch

from colorlab.colorizers.base import DeployableColorizer
from colorlab.runs.checkpoints import CheckpointError, checkpoint_class_path, load_checkpoint

COLORIZER_CLASS_KEY = "colorizer_class"
COLORIZER_PREFIX = "colorizer."


def _import_class(class_path: str, path: str | os.PathLike) -> type:
    module_name, _, class_name = class_path.rpartition(".")
    if not module_name.startswith("colorlab."):
        raise CheckpointError(f"{path} names {class_path}, which is not a colorlab class")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not isinstance(cls, type):
        raise CheckpointError(f"{path} names {class_path}, which does not exist in this colorlab version")
    return cls


def remap_legacy_keys(state_dict: dict[str, Any], legacy_keys: dict[str, str]) -> dict[str, Any]:
    """``state_dict`` with each key's old prefix replaced by its new one (the longest matching old prefix)."""
    remapped = {}
    for key, value in state_dict.items():
        old = max((p for p in legacy_keys if key.startswith(p)), key=len, default=None)
        remapped[legacy_keys[old] + key[len(old):] if old is not None else key] = value
    return remapped


def deployable_state(checkpoint: dict[str, Any], path: str | os.PathLike) -> tuple[type, dict[str, Any]]:
    """The deployable colorizer class a loaded checkpoint holds and that colorizer's own state dict."""
    approach_path = checkpoint_class_path(checkpoint, path)
    state_dict = checkpoint["state_dict"]
    if COLORIZER_CLASS_KEY in checkpoint:
        cls = _import_class(str(checkpoint[COLORIZER_CLASS_KEY]), path)
    else:  # written before the colorizers split: the approach class knows its colorizer and old key names
        approach = _import_class(approach_path, path)
        cls = getattr(approach, "colorizer_class", None)
        state_dict = remap_legacy_keys(state_dict, dict(getattr(approach, "legacy_keys", ())))
    if not (isinstance(cls, type) and issubclass(cls, DeployableColorizer)):
        raise CheckpointError(f"{path} holds {approach_path}, which has no deployable colorizer")
    own = {k[len(COLORIZER_PREFIX):]: v for k, v in state_dict.items() if k.startswith(COLORIZER_PREFIX)}
    return cls, own


def load_colorizer(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> DeployableColorizer:
    """The deployable colorizer stored in ``path`` with its weights, in eval mode (the file is read as data)."""
    checkpoint = load_checkpoint(path, map_location=map_location)
    cls, state_dict = deployable_state(checkpoint, path)
    hparams = checkpoint.get("hyper_parameters") or {}
    try:
        colorizer = cls(**cls.init_args_from(hparams))
    except (TypeError, ValueError, ImportError, AttributeError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild its {cls.__name__} from the stored config ({exc})") from exc
    try:
        colorizer.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: its weights do not fit the {cls.__name__} its config describes ({first})") from exc
    return colorizer.to(map_location).eval()
