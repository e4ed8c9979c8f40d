"""Data: datasets yield uint8 RGB; DataModules turn batches into Lab on the device."""

from colorlab.data.datamodule import CIFARDataModule, FolderDataModule, LabDataModule, SamplesDataModule
from colorlab.data.degraded import DegradedFolderDataModule

__all__ = [
    "CIFARDataModule", "DegradedFolderDataModule", "FolderDataModule", "LabDataModule", "SamplesDataModule"
]
