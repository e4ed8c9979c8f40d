"""Colour maths: the one place where RGB, CIE Lab and the model-space normalisation meet.

Ranges used everywhere in colorlab:

* ``rgb``: float sRGB in ``[0, 1]``, shape ``(*, 3, H, W)``; ``uint8`` only at the I/O edges.
* ``lab``: CIE L*a*b* (D65) with ``L`` in ``[0, 100]`` and ``a, b`` roughly in ``[-110, 110]`` for sRGB.
* Normalised model space (Zhang et al. convention): ``L_n = L / 50 - 1`` in ``[-1, 1]`` and
  ``ab_n = ab / 110`` in about ``[-1, 1]``; this is what every approach reads and predicts.

All functions are batched, differentiable and run on whichever device their input lives on.
"""

from __future__ import annotations

import torch
from kornia.color import lab_to_rgb as _kornia_lab_to_rgb
from kornia.color import rgb_to_lab as _kornia_rgb_to_lab

L_CENTER = 50.0
L_SCALE = 50.0
AB_SCALE = 110.0


def _check_channels(x: torch.Tensor, channels: int, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3 or x.shape[-3] != channels:
        raise ValueError(f"{name} must have shape (*, {channels}, H, W), got {tuple(x.shape)}")


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(*, 3, H, W)`` in [0, 1] -> CIE Lab ``(*, 3, H, W)`` with L in [0, 100]."""
    _check_channels(rgb, 3, "rgb")
    return _kornia_rgb_to_lab(rgb.clamp(0.0, 1.0))


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """CIE Lab ``(*, 3, H, W)`` -> sRGB in [0, 1] (clipped to the gamut when ``clip``)."""
    _check_channels(lab, 3, "lab")
    return _kornia_lab_to_rgb(lab, clip=clip)


def normalize_l(L: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] -> [-1, 1]."""
    return L / L_SCALE - L_CENTER / L_SCALE


def denormalize_l(L_n: torch.Tensor) -> torch.Tensor:
    """L in [-1, 1] -> [0, 100]."""
    return (L_n + L_CENTER / L_SCALE) * L_SCALE


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    """ab in Lab units -> ab / 110 (about [-1, 1])."""
    return ab / AB_SCALE


def denormalize_ab(ab_n: torch.Tensor) -> torch.Tensor:
    """ab / 110 -> ab in Lab units."""
    return ab_n * AB_SCALE


def rgb_to_lab_normalized(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sRGB in [0, 1] -> (L_n ``(*, 1, H, W)`` in [-1, 1], ab_n ``(*, 2, H, W)``)."""
    lab = rgb_to_lab(rgb)
    return normalize_l(lab[..., :1, :, :]), normalize_ab(lab[..., 1:, :, :])


def lab_normalized_to_rgb(L_n: torch.Tensor, ab_n: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """(L_n, ab_n) in model space -> sRGB in [0, 1]; ``ab_n`` is resized to ``L_n`` if needed."""
    _check_channels(L_n, 1, "L")
    _check_channels(ab_n, 2, "ab")
    if ab_n.shape[-2:] != L_n.shape[-2:]:
        ab_n = upsample_ab(ab_n, L_n.shape[-2:])
    lab = torch.cat([denormalize_l(L_n), denormalize_ab(ab_n)], dim=-3)
    return lab_to_rgb(lab, clip=clip)


def upsample_ab(ab: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Resize ab ``(B, 2, h, w)`` to ``size`` bilinearly (chroma is smooth; L keeps the detail)."""
    return torch.nn.functional.interpolate(ab, size=tuple(size), mode="bilinear", align_corners=False)


def uint8_to_float(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 ``(*, C, H, W)`` in [0, 255] -> float32 in [0, 1]."""
    if rgb.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 tensor, got {rgb.dtype}")
    return rgb.float() / 255.0


def float_to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8 in [0, 255] (rounded, clipped)."""
    return (rgb.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def lab_batch(rgb_uint8: torch.Tensor) -> dict[str, torch.Tensor]:
    """uint8 RGB ``(B, 3, H, W)`` -> the batch every approach reads: ``{"L", "ab", "rgb"}``.

    ``L`` is ``(B, 1, H, W)`` in [-1, 1], ``ab`` is ``(B, 2, H, W)`` in about [-1, 1] and ``rgb`` is
    float ``(B, 3, H, W)`` in [0, 1].
    """
    rgb = uint8_to_float(rgb_uint8)
    L, ab = rgb_to_lab_normalized(rgb)
    return {"L": L, "ab": ab, "rgb": rgb}


def rgb_to_gray_l(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] -> normalised L_n ``(*, 1, H, W)``: the grayscale input a colorizer sees."""
    return rgb_to_lab_normalized(rgb)[0]


def l_to_gray_rgb(L_n: torch.Tensor) -> torch.Tensor:
    """Normalised L ``(*, 1, H, W)`` -> the gray sRGB picture with ab = 0, ``(*, 3, H, W)``."""
    return lab_normalized_to_rgb(L_n, torch.zeros_like(L_n).expand(*L_n.shape[:-3], 2, *L_n.shape[-2:]))
