"""Data: datasets yield uint8 RGB; DataModules turn batches into Lab on the device."""

from colorlab.data.datamodule import CIFARDataModule, FolderDataModule, LabDataModule, SamplesDataModule

__all__ = ["CIFARDataModule", "FolderDataModule", "LabDataModule", "SamplesDataModule"]
