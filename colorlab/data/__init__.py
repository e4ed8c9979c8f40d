"""Data: datasets yield uint8 RGB; DataModules turn batches into Lab on the device.

The DataModules load on first use (``colorlab.data.FolderDataModule``), so the picture helpers in
:mod:`colorlab.data.images` import without Lightning (``colorize --onnx`` starts in about half the time).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CIFARDataModule": "colorlab.data.datamodule",
    "FolderDataModule": "colorlab.data.datamodule",
    "LabDataModule": "colorlab.data.datamodule",
    "SamplesDataModule": "colorlab.data.datamodule",
    "DegradedFolderDataModule": "colorlab.data.degraded",
}
__all__ = ["CIFARDataModule", "DegradedFolderDataModule", "FolderDataModule", "LabDataModule", "SamplesDataModule"]


def __getattr__(name: str) -> Any:
    """``colorlab.data.X`` for the DataModules above, imported when first asked for (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'colorlab.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
