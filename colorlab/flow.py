"""Optical flow between video frames: OpenCV's DIS flow on L (no weights), backward warping, occlusion masks.

Convention: ``flow = dis_flow(a, b)`` gives, for every pixel ``x`` of ``a``, the displacement to where that
content sits in ``b``: ``a(x) ~ b(x + flow(x))``. So ``warp(b, flow)`` brings ``b`` into ``a``'s pixels.
A pixel is trusted (``consistent_mask``) when the flow back from ``b`` returns it home (Sundaram et al. 2010's
forward-backward check) and lands inside the frame: occluded and disoccluded pixels fail it.
"""

from __future__ import annotations

import cv2
import numpy as np

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
# A cut: half the luma histogram moved (total variation distance), or under a quarter of the pixels trusted.
CUT_HISTOGRAM = 0.5
CUT_TRUSTED = 0.25
# A pixel whose warped luma differs by more than this (uint8) is treated as occluded too.
LUMA_TOLERANCE = 24
# Forward-backward check: |f_ab(x) + f_ba(x + f_ab(x))|^2 < ALPHA (|f_ab|^2 + |f_ba|^2) + BETA (Sundaram et al.).
ALPHA, BETA = 0.01, 0.5


def gray_u8(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` -> uint8 luma ``(H, W)`` (what the flow is computed on)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def dis_flow(a: np.ndarray, b: np.ndarray, preset: str = "fast", max_side: int | None = None) -> np.ndarray:
    """DIS optical flow from uint8 gray ``a`` to ``b`` ``(H, W)`` -> ``(H, W, 2)`` float32 in pixels of ``a``.

    ``max_side`` caps the shorter side the flow is computed at (then upsampled): flow is smooth, and the
    cost of DIS grows with the pixel count.
    """
    if a.shape != b.shape or a.ndim != 2 or a.dtype != np.uint8:
        raise ValueError(f"expected two uint8 gray frames of one size, got {a.shape} {a.dtype} and {b.shape}")
    height, width = a.shape
    scale = 1.0 if max_side is None else min(1.0, max_side / min(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        a, b = (cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (a, b))
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])
    flow = dis.calc(a, b, None)
    if scale < 1.0:
        flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= width / a.shape[1]
        flow[..., 1] *= height / a.shape[0]
    return flow


def _grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` ``(H, W[, C])`` sampled at ``x + flow(x)`` (bilinear; outside the frame: the nearest edge)."""
    map_x, map_y = _grid(flow)
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped.reshape(image.shape)  # OpenCV drops a single trailing channel


def consistent_mask(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """Pixels of ``a`` whose flow to ``b`` is trusted: inside ``b`` and forward-backward consistent ``(H, W)`` bool."""
    height, width = flow_ab.shape[:2]
    map_x, map_y = _grid(flow_ab)
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    back = cv2.remap(flow_ba, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    loop = ((flow_ab + back) ** 2).sum(-1)
    bound = ALPHA * ((flow_ab**2).sum(-1) + (back**2).sum(-1)) + BETA
    return inside & (loop < bound)


def histogram_distance(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """Total variation distance between the histograms of two uint8 gray frames, in [0, 1]."""
    ha, hb = (cv2.calcHist([x], [0], None, [bins], [0, 256]).ravel() / x.size for x in (a, b))
    return float(0.5 * np.abs(ha - hb).sum())


def trusted_flow(
    a: np.ndarray, b: np.ndarray, preset: str = "fast", max_side: int | None = None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Flow from gray ``a`` to ``b``, where it is trusted, and whether ``a`` and ``b`` lie across a scene cut.

    Trusted: forward-backward consistent, inside ``b``, and ``b``'s warped luma within :data:`LUMA_TOLERANCE`
    of ``a``'s. A cut: the histograms differ by over :data:`CUT_HISTOGRAM` or under :data:`CUT_TRUSTED` of
    the pixels are trusted (then the mask is all False).
    """
    flow_ab = dis_flow(a, b, preset, max_side)
    flow_ba = dis_flow(b, a, preset, max_side)
    mask = consistent_mask(flow_ab, flow_ba)
    mask &= np.abs(warp(b, flow_ab).astype(np.int16) - a.astype(np.int16)) <= LUMA_TOLERANCE
    cut = histogram_distance(a, b) > CUT_HISTOGRAM or mask.mean() < CUT_TRUSTED
    if cut:
        mask[:] = False
    return flow_ab, mask, cut
