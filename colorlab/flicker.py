"""Flicker metrics of a colorized clip, frame by frame: warp error (Lai et al. 2018) and CDC.

* **Warp error.** For each pair of frames ``t, t+1`` the flow is computed once, on the *input* clip
  (:class:`InputFlow`), from ``t+1`` to ``t`` with DIS at its ``medium`` preset, with the forward-backward
  occlusion mask ``M`` (also excluding pixels whose warped input luma does not match; a pair across a scene
  cut is skipped: :func:`colorlab.flow.trusted_flow`). Then ``E(t) = sum_x M(x) |V_{t+1}(x) - warp(V_t)(x)|^2 / sum_x M(x)``, the squared
  difference summed over channels, and the clip's warp error is the mean of ``E`` over its pairs. It is
  reported on sRGB in [0, 1] and on CIE ab (Lab units); the input's own warp error (interpolation and flow
  errors, no flicker at all) is the floor.
* **CDC** (colour distribution consistency, Liu et al. 2021): Jensen-Shannon divergence (natural log) of the
  256-bin histograms of each RGB channel between frames ``t`` and ``t+d``, averaged over channels and ``t``,
  then over ``d`` in 1, 2, 4.

Each meter holds at most a few frames (the last one, four histograms), whatever the clip's length.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from colorlab.color import rgb_to_lab
from colorlab.flow import gray_u8, trusted_flow, warp

CDC_DISTANCES = (1, 2, 4)
HISTOGRAM_BINS = 256


def frame_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` -> float32 CIE Lab ``(H, W, 3)`` (L in [0, 100]), with :mod:`colorlab.color`."""
    tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0
    return rgb_to_lab(tensor).permute(1, 2, 0).contiguous().numpy()


def masked_warp_error(current: np.ndarray, previous: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """``sum M |current - warp(previous, flow)|^2 / sum M`` for float frames ``(H, W, C)``; mask ``(H, W)`` bool."""
    difference = ((current - warp(previous, flow)) ** 2).sum(-1)
    trusted = mask.sum()
    return float((difference * mask).sum() / trusted) if trusted else 0.0


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (natural log, in [0, ln 2]) of two histograms (normalised here)."""
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nonzero = a > 0
        return float((a[nonzero] * np.log(a[nonzero] / m[nonzero])).sum())

    return 0.5 * kl(p) + 0.5 * kl(q)


def channel_histograms(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` -> ``(3, 256)`` per-channel pixel counts."""
    return np.stack([np.bincount(rgb[..., c].ravel(), minlength=HISTOGRAM_BINS) for c in range(3)]).astype(
        np.float64
    )


@dataclass
class FlowStep:
    """The flow from one input frame to the previous one and where it is trusted."""

    flow: np.ndarray
    mask: np.ndarray


class InputFlow:
    """Flow between consecutive frames of the input clip: feed each input frame, get its :class:`FlowStep`."""

    def __init__(self, preset: str = "medium") -> None:
        self.preset = preset
        self._previous: np.ndarray | None = None

    def __call__(self, rgb: np.ndarray) -> FlowStep | None:
        """The step from this frame back to the previous one (None for the first frame and across a cut)."""
        gray = gray_u8(rgb)
        previous, self._previous = self._previous, gray
        if previous is None:
            return None
        back, mask, cut = trusted_flow(gray, previous, self.preset)
        return None if cut else FlowStep(back, mask)


@dataclass
class FlickerMeter:
    """Warp errors (RGB and ab) and CDC of one output clip, fed frame by frame with the input's flow steps.

    Attributes:
        rgb_errors / ab_errors: per frame (from the second on), the warp error against the previous frame.
    """

    rgb_errors: list[float] = field(default_factory=list)
    ab_errors: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self._histograms: deque[np.ndarray] = deque(maxlen=max(CDC_DISTANCES) + 1)
        self._divergences: dict[int, list[float]] = {d: [] for d in CDC_DISTANCES}

    def update(self, rgb: np.ndarray, step: FlowStep | None) -> None:
        """Add one uint8 RGB output frame ``(H, W, 3)``; ``step`` is the input's flow to its previous frame."""
        current = (rgb.astype(np.float32) / 255.0, np.ascontiguousarray(frame_lab(rgb)[..., 1:]))
        if self._previous is not None and step is not None:
            self.rgb_errors.append(masked_warp_error(current[0], self._previous[0], step.flow, step.mask))
            self.ab_errors.append(masked_warp_error(current[1], self._previous[1], step.flow, step.mask))
        self._previous = current
        histograms = channel_histograms(rgb)
        self._histograms.appendleft(histograms)
        for d in CDC_DISTANCES:
            if len(self._histograms) > d:
                past = self._histograms[d]
                self._divergences[d].append(
                    np.mean([js_divergence(histograms[c], past[c]) for c in range(3)])
                )

    def reset_sequence(self) -> None:
        """Forget the previous frames (between clips, so no pair spans two clips)."""
        self._previous = None
        self._histograms.clear()

    @property
    def rgb_warp_error(self) -> float:
        """Mean warp error on sRGB in [0, 1]."""
        return float(np.mean(self.rgb_errors)) if self.rgb_errors else float("nan")

    @property
    def ab_warp_error(self) -> float:
        """Mean warp error on CIE ab."""
        return float(np.mean(self.ab_errors)) if self.ab_errors else float("nan")

    @property
    def cdc(self) -> float:
        """Colour distribution consistency: mean over distances 1, 2, 4 of the mean JS divergence."""
        means = [np.mean(v) for v in self._divergences.values() if v]
        return float(np.mean(means)) if means else float("nan")
