"""The one inference pipeline (CLI, evaluation, web page): resize L, predict ab, upsample ab, keep full-res L.

Colour is smooth, detail lives in L: the model sees a small copy of the picture, its ab is upsampled
bilinearly and merged with the input's own full-resolution L, so a 4000 px photo comes back at 4000 px
and as sharp as it went in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from colorlab.approaches.base import ColorizationModule
from colorlab.color import lab_normalized_to_rgb, rgb_to_gray_l, uint8_to_float, upsample_ab


def model_size(height: int, width: int, size: int | None) -> tuple[int, int]:
    """The ``(h, w)`` the model runs at: the longer side scaled to ``size``, aspect kept (None: unchanged)."""
    if size is None:
        return height, width
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def input_l(image: torch.Tensor) -> torch.Tensor:
    """Any picture batch -> normalised L ``(B, 1, H, W)`` in [-1, 1].

    Accepts RGB ``(B, 3, H, W)`` (uint8, or float in [0, 1]), a uint8 gray picture ``(B, 1, H, W)``, or
    normalised L ``(B, 1, H, W)`` (float, returned as is). A gray picture's L is the lightness of that
    gray, exactly what the model saw for a colour photo of the same brightness.
    """
    if image.dim() != 4 or image.shape[1] not in (1, 3):
        raise ValueError(
            f"expected L or a gray picture (B, 1, H, W) or an RGB picture (B, 3, H, W), got {tuple(image.shape)}"
        )
    if image.shape[1] == 1 and image.dtype != torch.uint8:
        return image
    rgb = uint8_to_float(image) if image.dtype == torch.uint8 else image.float()
    return rgb_to_gray_l(rgb.expand(-1, 3, -1, -1))


@torch.no_grad()
def colorize_full_resolution(
    model: ColorizationModule,
    image: torch.Tensor,
    size: int | None = 256,
    restore: bool = False,
) -> torch.Tensor:
    """Colorize a picture at its full resolution.

    Args:
        model: any colorlab approach (its ``predict_lab`` is used).
        image: normalised L ``(B, 1, H, W)`` in [-1, 1], or a picture that :func:`input_l` converts
            (uint8 or [0, 1] float RGB ``(B, 3, H, W)``, uint8 gray ``(B, 1, H, W)``); any device.
        size: the longer side the model runs at (aspect kept); None runs it at ``H x W``.
        restore: use the L the model returns (restoration approaches: denoised/deblurred L, upsampled
            to ``H x W``) instead of the input's L.

    Returns:
        sRGB ``(B, 3, H, W)`` in [0, 1] on the model's device, clipped to the gamut.
    """
    device = next(model.parameters(), torch.empty(0)).device
    L = input_l(image.to(device)).float()
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
