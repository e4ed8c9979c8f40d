"""Upscaling in overlapping tiles: any picture size in bounded memory, the same result as one pass."""

from __future__ import annotations

import torch

from colorlab.colorizers.upscale import UpscaleNet

DEFAULT_TILE = 128
DEFAULT_OVERLAP = 16


@torch.inference_mode()
def upscale_tiled(
    upscaler: UpscaleNet, L: torch.Tensor, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP
) -> torch.Tensor:
    """Upscale normalised L ``(B, 1, H, W)`` -> ``(B, 1, k*H, k*W)`` in [-1, 1], ``tile`` px at a time.

    Each ``tile x tile`` block of the input runs with ``overlap`` px of its neighbours around it, and only
    the block's own part of the result is kept, so the seams see the same context as an untiled run: the
    result equals the untiled one when ``overlap`` covers the net's receptive field (ESRGAN-style nets are
    close to that at 10-20 px). Memory is bounded by ``(tile + 2 * overlap)`` squared, not by the picture.
    """
    if tile < 1 or overlap < 0:
        raise ValueError(
            f"tile must be positive and overlap non-negative, got tile={tile}, overlap={overlap}"
        )
    multiple = getattr(upscaler.net, "multiple", 1)
    # Tile edges on the net's grid: a x2 RRDBNet folds 2x2 pixels, so shifted tiles would see other folds.
    tile, overlap = -(-tile // multiple) * multiple, -(-overlap // multiple) * multiple
    device = next(upscaler.parameters()).device
    k = upscaler.scale
    height, width = L.shape[-2:]
    out = torch.empty(L.shape[0], 1, k * height, k * width, device=device)
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            top, left = max(0, y0 - overlap), max(0, x0 - overlap)
            bottom, right = min(height, y1 + overlap), min(width, x1 + overlap)
            block = upscaler.upscale_l(L[..., top:bottom, left:right].to(device).float())
            dy, dx = k * (y0 - top), k * (x0 - left)
            out[..., k * y0 : k * y1, k * x0 : k * x1] = block[
                ..., dy : dy + k * (y1 - y0), dx : dx + k * (x1 - x0)
            ]
    return out.clamp_(-1.0, 1.0)
