"""Load any colorlab approach from its checkpoint alone (the YAML's classes are stored inside)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch

from colorlab.approaches.base import ColorizationModule


def checkpoint_class_path(path: str | os.PathLike) -> str:
    """The ``module.Class`` of the approach a checkpoint was trained with."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as exc:  # torch raises several types for a file that is not a checkpoint
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({exc})") from exc
    class_path = checkpoint.get("hyper_parameters", {}).get("_class_path") if isinstance(checkpoint, dict) else None
    if not class_path:
        raise ValueError(f"{path} was not written by a colorlab run (no approach class stored in it)")
    return class_path


def load_colorizer(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> ColorizationModule:
    """Rebuild the approach stored in ``path`` with its weights, in eval mode."""
    class_path = checkpoint_class_path(path)
    module_name, _, class_name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, ColorizationModule)):
        raise TypeError(f"{path} holds {class_path}, which is not a colorlab ColorizationModule")
    model = cls.load_from_checkpoint(path, map_location=map_location)
    return model.eval()
