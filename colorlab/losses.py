"""Losses shared by the approaches."""

from __future__ import annotations

from typing import Literal

from torch import nn

PixelLoss = Literal["l1", "mse", "huber"]


def pixel_loss(name: PixelLoss, huber_delta: float = 0.1) -> nn.Module:
    """Per-pixel regression loss by name: ``l1``, ``mse`` or ``huber`` (smooth L1 beyond ``huber_delta``)."""
    losses = {"l1": nn.L1Loss, "mse": nn.MSELoss}
    if name == "huber":
        return nn.HuberLoss(delta=huber_delta)
    if name not in losses:
        raise ValueError(f"unknown pixel loss {name!r}; choose l1, mse or huber")
    return losses[name]()
