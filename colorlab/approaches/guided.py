"""Guided colorization (Zhang et al. 2017): a U-Net that reads colour hints, trained on hints simulated from
the truth, and the same net driven by a reference photo.

* **Hints.** Each training picture gets Zhang's simulated hints (:func:`colorlab.guidance.simulate_hints`:
  Geometric(1/8) many, 1-9 px patches of the true mean ab, centres Gaussian around the middle; a picture
  with 0 hints trains the automatic behaviour too). The loss is L1 on ab everywhere, as in the automatic net.
* **Parent.** ``parent_ckpt`` loads an automatic checkpoint of the same U-Net into ``net.base``; the hint
  inputs start at zero, so the guided net starts as that automatic model (tested).
* **Reference.** A reference photo becomes hints: the net's own (ImageNet-pretrained, fine-tuned) encoder
  features of the target and of the reference's gray are matched by cosine similarity; on a regular grid of
  ``reference_hints`` target cells, each cell whose best match is at least ``reference_threshold`` similar
  takes the reference's mean ab around that match as a hint. The hint net then spreads them as it learnt to.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from colorlab.approaches.base import ColorizationModule
from colorlab.color import rgb_to_gray_l, rgb_to_lab_normalized
from colorlab.guidance import HINT_P, PATCH_RANGE, HintMap, simulate_hints
from colorlab.losses import PixelLoss, pixel_loss
from colorlab.models.blocks import pad_to_multiple
from colorlab.models.hint_unet import HintUNet

MATCH_LEVEL = 3  # encoder level (0 is the input itself) whose features match target to reference: 1/8 scale


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

    guidance_name = "the guided (hint) model"

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
        self.net = net
        self.criterion = pixel_loss(loss)
        self.hint_p = hint_p
        self.patch_range = tuple(patch_range)
        self.reference_hints = reference_hints
        self.reference_threshold = reference_threshold
        self.reference_patch = reference_patch
        if parent_ckpt:
            self.load_parent(parent_ckpt)
        # From here the parent's weights live in this module's state dict: its checkpoints must not need the file.
        self.hparams.pop("parent_ckpt", None)
        self._hparams_initial.pop("parent_ckpt", None)

    def load_parent(self, path: str) -> None:
        """Load an automatic checkpoint's ``net.*`` weights into ``net.base`` (read as data, weights only)."""
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        weights = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
        missing, unexpected = self.net.base.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path} is not an automatic checkpoint of the same net: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")  # fmt: skip

    # ---- the contract --------------------------------------------------------------------------------

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """Automatic mode: normalised L -> ab with no hints."""
        return self.net(L)

    def predict_lab(
        self, L: torch.Tensor, hints: HintMap | None = None, reference: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised L ``(B, 1, h, w)`` with optional hints (model pixels) and/or a reference RGB
        ``(1 or B, 3, h', w')`` in [0, 1]; hints the person gave win over hints taken from the reference."""
        if reference is not None:
            from_reference = self.hints_from_reference(L, reference)
            if hints is not None:
                mask = torch.maximum(hints.mask, from_reference.mask)
                ab = torch.where(hints.mask > 0, hints.ab, from_reference.ab)
                hints = HintMap(ab * mask, mask)
            else:
                hints = from_reference
        if hints is None:
            return L, self.net(L)
        channels = hints.channels().expand(L.shape[0], -1, -1, -1)
        return L, self.net(L, channels.to(L))

    # ---- reference -----------------------------------------------------------------------------------

    def _features(self, L: torch.Tensor) -> torch.Tensor:
        padded, _ = pad_to_multiple(L, self.net.multiple)
        return F.normalize(self.net.encode(padded)[MATCH_LEVEL], dim=1)

    def hints_from_reference(self, L: torch.Tensor, reference: torch.Tensor) -> HintMap:
        """Hints ``(B, *, h, w)`` for normalised L ``(B, 1, h, w)`` from a reference RGB in [0, 1] (see module doc)."""
        batch, _, h, w = L.shape
        scale = min(h, w) / min(reference.shape[-2:])
        size = (max(1, round(reference.shape[-2] * scale)), max(1, round(reference.shape[-1] * scale)))
        reference = F.interpolate(reference.to(L), size=size, mode="bilinear", antialias=True).clamp(0, 1)
        target_features = self._features(L)  # (B, C, h', w')
        ref_features = self._features(rgb_to_gray_l(reference)).expand(batch, -1, -1, -1)
        _, ref_ab = rgb_to_lab_normalized(reference)
        ref_ab, _ = pad_to_multiple(ref_ab, self.net.multiple)
        ref_ab = F.adaptive_avg_pool2d(ref_ab, ref_features.shape[-2:]).expand(batch, -1, -1, -1)
        fh, fw = target_features.shape[-2:]
        cells = max(1, math.isqrt(self.reference_hints))
        # Grid cells of the (unpadded) target, in feature pixels, then the model pixel at each cell's centre.
        rows = ((torch.arange(cells) + 0.5) * h / cells).long()
        cols = ((torch.arange(cells) + 0.5) * w / cells).long()
        frows = (rows * fh // (h + (-h) % self.net.multiple)).clamp(max=fh - 1)
        fcols = (cols * fw // (w + (-w) % self.net.multiple)).clamp(max=fw - 1)
        queries = target_features[:, :, frows][:, :, :, fcols].flatten(2)  # (B, C, cells^2)
        similarity = torch.einsum("bcq,bcr->bqr", queries, ref_features.flatten(2))
        best, index = similarity.max(dim=2)
        ab = torch.gather(ref_ab.flatten(2), 2, index[:, None].expand(-1, 2, -1))  # (B, 2, cells^2)
        hint_ab = L.new_zeros(batch, 2, h, w)
        mask = L.new_zeros(batch, 1, h, w)
        before = (self.reference_patch - 1) // 2
        for q, (r, c) in enumerate((r, c) for r in rows.tolist() for c in cols.tolist()):
            rs = slice(max(0, r - before), r - before + self.reference_patch)
            cs = slice(max(0, c - before), c - before + self.reference_patch)
            keep = (best[:, q] >= self.reference_threshold).to(L.dtype).view(batch, 1, 1, 1)
            hint_ab[:, :, rs, cs] = ab[:, :, q].view(batch, 2, 1, 1) * keep
            mask[:, :, rs, cs] = keep
        return HintMap(hint_ab, mask)

    # ---- training -----------------------------------------------------------------------------------

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        L = self.model_input(batch)
        hints = simulate_hints(batch["ab"], p=self.hint_p, patch_range=self.patch_range)
        pred = self.net(L, hints.channels())
        return {"loss": self.criterion(pred, batch["ab"]), "hints": hints.mask.flatten(1).amax(1).mean()}
