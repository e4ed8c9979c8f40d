"""Per-image scores of a full-resolution picture in bounded memory: every score is summed tile by tile.

``evaluate`` scores 12 MP photos (and any aspect: a 11 x 1,000,000 px strip too). Computed on the whole
picture at once, ΔE00 and SSIM make dozens of float copies of it (3.4 GB for one 12 MP photo). Here each
score is accumulated over square tiles of about :data:`TILE` px a side, with the same definition as the
whole-picture score:

* PSNR: the squared error summed over tiles, then ``10 log10(1 / mse)`` (exact).
* SSIM: torchmetrics' Gaussian SSIM (11 px window, sigma 1.5) is the mean of its map over the picture
  reflect-padded by 5 px; each tile is read with the 5 px halo its windows need (reflected at the picture's
  edges only), so the tiled mean equals the whole-picture one (tested). Reflecting 5 px needs at least
  6 px a side: :func:`too_small` says why a smaller picture has no score and ``evaluate`` skips it.
* ΔE00 mean and the Hasler-Süsstrunk colorfulness (from tile sums of rg, yb and their squares): exact.
* LPIPS: the area-weighted mean of LPIPS on tiles of :data:`LPIPS_TILE` px (LPIPS is itself a spatial mean;
  only the few pixels at tile borders see zero padding instead of their neighbours). A picture no larger
  than one tile is scored whole, exactly as before.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure

from colorlab.color import rgb_to_lab
from colorlab.metrics import delta_e_ciede2000

TILE = 256
LPIPS_TILE = 512
SSIM_WINDOW = 11  # torchmetrics' Gaussian window for sigma 1.5
_HALO = (SSIM_WINDOW - 1) // 2


def too_small(height: int, width: int) -> str | None:
    """Why a ``height x width`` picture cannot be scored (None when it can)."""
    if min(height, width) <= _HALO:
        return f"{width} x {height} px is too small to score: SSIM needs at least {_HALO + 1} px a side"
    return None


def _spans(size: int, tile: int) -> Iterator[tuple[int, int]]:
    for start in range(0, size, tile):
        yield start, min(size, start + tile)


def _reflected(start: int, stop: int, size: int, device: torch.device) -> torch.Tensor:
    """Indices ``start - 5 .. stop + 5`` reflected into ``0 .. size - 1`` (what reflect padding reads)."""
    index = torch.arange(start - _HALO, stop + _HALO, device=device).abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


def ssim_map(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """torchmetrics' SSIM map of sRGB ``(B, C, H, W)`` in [0, 1] without its border: ``(B, C, H-10, W-10)``,
    the pixels whose 11 px window lies inside the given (halo) tile, i.e. unaffected by torchmetrics' padding."""
    full = structural_similarity_index_measure(
        pred, truth, data_range=1.0, reduction="none", return_full_image=True
    )[1]
    return full[..., _HALO:-_HALO, _HALO:-_HALO]


def _colour_sums(rgb: torch.Tensor, tile: int) -> torch.Tensor:
    """Sums of rg, yb, rg² and yb² (0-255 scale, float64) over sRGB ``(1, 3, H, W)``, tile by tile."""
    sums = torch.zeros(4, dtype=torch.float64)
    for top, bottom in _spans(rgb.shape[-2], tile):
        for left, right in _spans(rgb.shape[-1], tile):
            r, g, b = (rgb[..., top:bottom, left:right].clamp(0, 1) * 255.0).double().unbind(1)
            rg, yb = r - g, 0.5 * (r + g) - b
            sums += torch.stack([rg.sum(), yb.sum(), (rg**2).sum(), (yb**2).sum()]).cpu()
    return sums


def _hasler(sums: torch.Tensor, pixels: int) -> float:
    mean_rg, mean_yb = sums[0] / pixels, sums[1] / pixels
    var = (sums[2] / pixels - mean_rg**2) + (sums[3] / pixels - mean_yb**2)
    return float(torch.sqrt(var.clamp(min=0)) + 0.3 * torch.sqrt(mean_rg**2 + mean_yb**2))


def tiled_image_scores(
    pred: torch.Tensor, truth: torch.Tensor, lpips: nn.Module | None = None, tile: int = TILE
) -> dict[str, float]:
    """PSNR, SSIM, ΔE00, colorfulness and its gap (and LPIPS when given) of sRGB ``(1, 3, H, W)`` in [0, 1]
    against the truth, computed tile by tile (see the module notes); float32 tiles only."""
    height, width = pred.shape[-2:]
    reason = too_small(height, width)
    if reason:
        raise ValueError(reason)
    pixels = height * width
    sq_error = ssim_sum = de_sum = 0.0
    stats = {"pred": torch.zeros(4, dtype=torch.float64), "truth": torch.zeros(4, dtype=torch.float64)}
    for top, bottom in _spans(height, tile):
        for left, right in _spans(width, tile):
            p = pred[..., top:bottom, left:right].float()
            t = truth[..., top:bottom, left:right].float()
            sq_error += float(((p - t) ** 2).sum(dtype=torch.float64))
            de_sum += float(delta_e_ciede2000(rgb_to_lab(p), rgb_to_lab(t)).sum(dtype=torch.float64))
            for key, image in (("pred", p), ("truth", t)):
                stats[key] += _colour_sums(image, tile)
            rows, cols = (
                _reflected(top, bottom, height, pred.device),
                _reflected(left, right, width, pred.device),
            )
            halo = [
                x[..., rows[:, None], cols[None, :]].float() for x in (pred, truth)
            ]  # only the tile + halo
            ssim_sum += float(ssim_map(*halo).sum(dtype=torch.float64))
    mse = sq_error / (3 * pixels)

    scores = {
        "psnr": 10 * math.log10(1.0 / mse) if mse > 0 else math.inf,
        "ssim": ssim_sum / (3 * pixels),
        "delta_e00": de_sum / pixels,
        "colorfulness": _hasler(stats["pred"], pixels),
    }
    scores["colorfulness_gap"] = abs(scores["colorfulness"] - _hasler(stats["truth"], pixels))
    if lpips is not None:
        scores["lpips"] = tiled_lpips(lpips, pred, truth)
    return scores


def tiled_colorfulness(rgb: torch.Tensor, tile: int = TILE) -> float:
    """Hasler-Süsstrunk colorfulness of sRGB ``(1, 3, H, W)`` in [0, 1], from tile sums (exact)."""
    return _hasler(_colour_sums(rgb, tile), rgb.shape[-2] * rgb.shape[-1])


def tiled_lpips(lpips: nn.Module, pred: torch.Tensor, truth: torch.Tensor, tile: int = LPIPS_TILE) -> float:
    """Area-weighted mean of LPIPS over ``tile`` px tiles of sRGB ``(1, 3, H, W)`` in [0, 1]."""
    height, width = pred.shape[-2:]
    total = 0.0
    for top, bottom in _spans(height, tile):
        for left, right in _spans(width, tile):
            p, t = (x[..., top:bottom, left:right].float() for x in (pred, truth))
            total += float(lpips(p, t, normalize=True).flatten()[0]) * (bottom - top) * (right - left)
    return total / (height * width)
