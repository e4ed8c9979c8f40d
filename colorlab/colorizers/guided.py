"""Zhang et al. 2017 as deployed: a hint-conditioned U-Net that reads colour hints in model pixels, and turns
a reference photo into hints by matching the net's own encoder features.

A reference photo becomes hints: the net's (ImageNet-pretrained, fine-tuned) encoder features of the target
and of the reference's gray are matched by cosine similarity; on a regular grid of ``reference_hints`` target
cells, each cell whose best match is at least ``reference_threshold`` similar takes the reference's mean ab
around that match as a hint. Hints the person gave win over hints taken from the reference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from colorlab.color import rgb_to_gray_l, rgb_to_lab_normalized
from colorlab.colorizers.base import DeployableColorizer
from colorlab.guidance import HintMap
from colorlab.models.blocks import pad_to_multiple
from colorlab.models.hint_unet import HintUNet

MATCH_LEVEL = 3  # encoder level (0 is the input itself) whose features match target to reference: 1/8 scale


class GuidedNet(DeployableColorizer):
    """A :class:`HintUNet` with optional hints and/or a reference photo.

    Args:
        net: the hint-conditioned U-Net.
        reference_hints: how many grid cells may take a hint from a reference photo.
        reference_threshold: the least cosine similarity of a reference match that becomes a hint.
        reference_patch: the side, in model pixels, of each reference hint.
    """

    accepts_hints = True
    accepts_reference = True
    guidance_name = "the guided (hint) model"

    def __init__(
        self, net: HintUNet, reference_hints: int = 64, reference_threshold: float = 0.5, reference_patch: int = 3
    ) -> None:
        super().__init__()
        self.net = net
        self.reference_hints = reference_hints
        self.reference_threshold = reference_threshold
        self.reference_patch = reference_patch

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """Automatic mode: normalised L -> ab with no hints."""
        return self.net(L)

    def guided_lab(
        self, L: torch.Tensor, hints: HintMap | None, reference: torch.Tensor | None
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
