"""The one inference pipeline (CLI, evaluation, web page): resize L, predict ab, upsample ab, keep full-res L.

Colour is smooth, detail lives in L: the model sees a small copy of the picture, its ab is upsampled
bilinearly and merged with the input's own full-resolution L, so a 4000 px photo comes back at 4000 px
and as sharp as it went in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from colorlab.approaches.base import ColorizationModule
from colorlab.color import lab_normalized_to_rgb, upsample_ab


def model_size(height: int, width: int, size: int | None) -> tuple[int, int]:
    """The ``(h, w)`` the model runs at: the longer side scaled to ``size``, aspect kept (None: unchanged)."""
    if size is None:
        return height, width
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


@torch.no_grad()
def colorize_full_resolution(
    model: ColorizationModule,
    L: torch.Tensor,
    size: int | None = 256,
    restore: bool = False,
) -> torch.Tensor:
    """Colorize normalised L ``(B, 1, H, W)`` in [-1, 1] at its full resolution.

    Args:
        model: any colorlab approach (its ``predict_lab`` is used).
        L: the gray picture(s), normalised L in [-1, 1], on any device (moved to the model's).
        size: the longer side the model runs at (aspect kept); None runs it at ``H x W``.
        restore: use the L the model returns (restoration approaches: denoised/deblurred L, upsampled
            to ``H x W``) instead of the input's L.

    Returns:
        sRGB ``(B, 3, H, W)`` in [0, 1] on the model's device, clipped to the gamut.
    """
    if L.dim() != 4 or L.shape[1] != 1:
        raise ValueError(f"L must have shape (B, 1, H, W), got {tuple(L.shape)}")
    device = next(model.parameters(), torch.empty(0)).device
    L = L.to(device=device, dtype=torch.float32)
    full = L.shape[-2:]
    small = model_size(*full, size)
    # Antialiased downsizing: plain bilinear would alias fine texture into the model's input.
    L_small = L if small == tuple(full) else F.interpolate(L, size=small, mode="bilinear", antialias=True)
    L_model, ab = model.predict_lab(L_small)
    ab = upsample_ab(ab.float(), full)
    if restore:
        L = L_model.float()
        if L.shape[-2:] != full:
            L = F.interpolate(L, size=full, mode="bicubic", align_corners=False).clamp(-1.0, 1.0)
    return lab_normalized_to_rgb(L, ab)
