"""Guided colorization (Zhang et al. 2017): a U-Net that reads colour hints, trained on hints simulated from
the truth, and the same net driven by a reference photo.

* **Hints.** Each training picture gets Zhang's simulated hints (:func:`colorlab.guidance.simulate_hints`:
  Geometric(1/8) many, 1-9 px patches of the true mean ab, centres Gaussian around the middle; a picture
  with 0 hints trains the automatic behaviour too). The loss is L1 on ab everywhere, as in the automatic net.
* **Parent.** ``parent_ckpt`` loads an automatic checkpoint of the same U-Net into ``net.base``; the hint
  inputs start at zero, so the guided net starts as that automatic model (tested).
* **Reference.** A reference photo becomes hints by matching the net's encoder features (the deployed
  :class:`colorlab.colorizers.guided.GuidedNet`); the hint net then spreads them as it learnt to.
"""

from __future__ import annotations

from typing import Any

import torch

from colorlab.approaches.base import ColorizationModule
from colorlab.colorizers.guided import GuidedNet
from colorlab.colorizers.loading import deployable_state
from colorlab.guidance import HINT_P, PATCH_RANGE, simulate_hints
from colorlab.losses import PixelLoss, pixel_loss
from colorlab.models.hint_unet import HintUNet
from colorlab.runs.checkpoints import load_checkpoint


class GuidedColorizer(ColorizationModule):
    """A :class:`HintUNet` trained with simulated hints; ``predict_lab`` takes hints and/or a reference.

    Args:
        net: the hint-conditioned U-Net.
        loss: ``l1``, ``mse`` or ``huber`` on ab.
        hint_p: parameter of the geometric number of training hints.
        patch_range: smallest and largest training patch side, in pixels.
        parent_ckpt: an automatic checkpoint of the same U-Net (e.g. a ``unet_effnet`` run) to start from.
        reference_hints: how many grid cells may take a hint from a reference photo.
        reference_threshold: the least cosine similarity of a reference match that becomes a hint.
        reference_patch: the side, in model pixels, of each reference hint.
        **kwargs: optimizer, scheduler, grid_images... (see :class:`ColorizationModule`).
    """

    colorizer_class = GuidedNet
    legacy_keys = (("net.", "colorizer.net."),)

    def __init__(
        self,
        net: HintUNet,
        loss: PixelLoss = "l1",
        hint_p: float = HINT_P,
        patch_range: tuple[int, int] = PATCH_RANGE,
        parent_ckpt: str | None = None,
        reference_hints: int = 64,
        reference_threshold: float = 0.5,
        reference_patch: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 < hint_p <= 1 or not 1 <= patch_range[0] <= patch_range[1]:
            raise ValueError(f"need 0 < hint_p <= 1 and 1 <= patch sides, got {hint_p}, {patch_range}")
        self.colorizer = GuidedNet(net, reference_hints, reference_threshold, reference_patch)
        self.criterion = pixel_loss(loss)
        self.hint_p = hint_p
        self.patch_range = tuple(patch_range)
        if parent_ckpt:
            self.load_parent(parent_ckpt)
        # From here the parent's weights live in this module's state dict: its checkpoints must not need the file.
        self.hparams.pop("parent_ckpt", None)
        self._hparams_initial.pop("parent_ckpt", None)

    def load_parent(self, path: str) -> None:
        """Load an automatic checkpoint's net into ``net.base`` (read as data; checkpoints from before the
        colorizers split too)."""
        _, state = deployable_state(load_checkpoint(path), path)
        weights = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
        missing, unexpected = self.net.base.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path} is not an automatic checkpoint of the same net: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")  # fmt: skip

    # ---- training -----------------------------------------------------------------------------------

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        L = self.model_input(batch)
        hints = simulate_hints(batch["ab"], p=self.hint_p, patch_range=self.patch_range)
        pred = self.net(L, hints.channels())
        return {"loss": self.criterion(pred, batch["ab"]), "hints": hints.mask.flatten(1).amax(1).mean()}
