"""Restoration as deployed: degraded L in, (restored L, ab) out; one net or two chained stages."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from colorlab.colorizers.base import DeployableColorizer

# A residual net's tanh output in [-1, 1] becomes an L correction in [-2, 2]: the whole normalised range.
RESIDUAL_SCALE = 2.0


class _Restoration(DeployableColorizer, ABC):
    restores_l = True

    def __init__(self, residual: bool = True) -> None:
        super().__init__()
        self.residual = residual

    def restored_l(self, L_input: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The restored normalised L from a net's tanh output ``out`` ``(B, 1, H, W)``; not clamped, so a
        training loss keeps its gradient where the estimate overshoots [-1, 1]."""
        return L_input + RESIDUAL_SCALE * out if self.residual else out

    @abstractmethod
    def forward_lab(self, L_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Degraded normalised L ``(B, 1, H, W)`` -> (restored L, unclamped; ab ``(B, 2, H, W)``)."""

    def automatic_lab(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Degraded normalised L -> (restored L in [-1, 1], ab): the final picture."""
        L_out, ab = self.forward_lab(L)
        return L_out.clamp(-1.0, 1.0), ab


class RestorationNet(_Restoration):
    """One net from the degraded L to the clean L (or its correction) and ab: 3 output channels (L, a, b)."""

    def __init__(self, net: nn.Module, residual: bool = True) -> None:
        super().__init__(residual)
        self.net = net

    def forward_lab(self, L_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(L_input)
        if out.shape[1] != 3:
            raise ValueError(f"the restoration net must output 3 channels (L, a, b), not {out.shape[1]}")
        return self.restored_l(L_input, out[:, :1]), out[:, 1:]


class RestoreThenColorizeNet(_Restoration):
    """Two chained stages: ``restorer`` cleans the degraded L, ``colorizer_net`` predicts ab from it."""

    hparam_names: ClassVar[dict[str, str]] = {"colorizer_net": "colorizer"}

    def __init__(self, restorer: nn.Module, colorizer_net: nn.Module, residual: bool = True) -> None:
        super().__init__(residual)
        self.restorer = restorer
        self.colorizer_net = colorizer_net

    def forward_lab(self, L_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L_out = self.restored_l(L_input, self.restorer(L_input))
        # The colour stage sees the clamped L it will see at inference.
        return L_out, self.colorizer_net(L_out.clamp(-1.0, 1.0))
