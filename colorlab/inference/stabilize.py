"""Training-free temporal stabilisation of a colorized film: ab carried along optical flow, reset at scene cuts.

Frame-by-frame colorization flickers: the same wall turns a slightly different colour in every frame. For
each new frame the :class:`Stabilizer`

1. computes DIS optical flow on L between this frame and the previous one, both ways (:mod:`colorlab.flow`);
2. trusts a pixel only where the two flows agree (occlusions fail the check), the warped previous L matches
   this frame's L, and the flow stays inside the frame (:func:`colorlab.flow.trusted_flow`);
3. warps the ab predictions of the last ``window`` frames into this frame and averages them with this
   frame's own prediction, the one from ``j`` frames back weighted ``strength**j`` where trusted (0 where
   not), so colour that is new to the shot comes from the current prediction alone;
4. keeps this frame's own L: only ab changes, and detail stays the frame's own.

``colorize`` runs this on the model's own ab at the model's size (L of the model input for the flow), before
the full-resolution merge: ab is that smooth anyway, and the flow is ~10x cheaper than at 480p.

A scene cut (L histograms far apart, or too few trusted pixels) empties the window: no colour crosses a cut.
The window holds ``window`` ab frames, so memory does not grow with the film's length.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from colorlab.color import float_to_uint8, lab_to_rgb
from colorlab.flicker import frame_lab
from colorlab.flow import gray_u8, trusted_flow, warp
from colorlab.inference.film_options import DEFAULT_STRENGTH, DEFAULT_WINDOW

# Shorter side the flow is computed at: 480p films get full-resolution flow, larger ones a downscaled one.
FLOW_SIDE = 480


def lab_frame(lab: np.ndarray) -> np.ndarray:
    """float32 CIE Lab ``(H, W, 3)`` -> uint8 RGB ``(H, W, 3)``, clipped to the sRGB gamut."""
    rgb = lab_to_rgb(torch.from_numpy(np.ascontiguousarray(lab)).permute(2, 0, 1))
    return float_to_uint8(rgb).permute(1, 2, 0).contiguous().numpy()


@dataclass
class Stabilizer:
    """Stabilise a stream of colorized frames (call it on each, in order); see the module notes.

    Attributes:
        strength: weight of the prediction one frame back (``strength**j`` for ``j`` back), in [0, 1];
            0 returns every frame as predicted.
        window: how many previous frames' predictions are carried forward (0: off).
        flow_side: shorter side the flow is computed at (None: full resolution).
        cuts: indices of the frames where the window was emptied (scene cuts), filled as frames go by.
    """

    strength: float = DEFAULT_STRENGTH
    window: int = DEFAULT_WINDOW
    flow_side: int | None = FLOW_SIDE
    cuts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"stabilisation strength must be in [0, 1], got {self.strength}")
        if self.window < 0:
            raise ValueError(f"stabilisation window must be 0 or more frames, got {self.window}")
        self._history: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=self.window)
        self._previous: np.ndarray | None = None
        self._index = 0

    @property
    def active(self) -> bool:
        """Whether this stabiliser changes anything."""
        return self.strength > 0 and self.window > 0

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """One colorized uint8 RGB frame ``(H, W, 3)`` -> the stabilised frame (same L, steadier ab).

        Works on any colorized frame (the restore / colorize / upscale chain's too); ``colorize`` stabilises
        the model's own ab before the full-resolution merge instead (:meth:`ab`), which is cheaper.
        """
        if not self.active:
            return rgb
        lab = frame_lab(rgb)
        lab[..., 1:] = self.ab(np.ascontiguousarray(lab[..., 1:]), gray_u8(rgb))
        return lab_frame(lab)

    def ab(self, ab: np.ndarray, gray: np.ndarray) -> np.ndarray:
        """One frame's predicted ab ``(h, w, 2)`` float32 (any units) and its uint8 luma ``(h, w)`` -> steadier ab."""
        if not self.active:
            return ab
        previous, self._previous = self._previous, gray
        if previous is not None and previous.shape == gray.shape:
            if self._carry(previous, gray):
                self._history.clear()
                self.cuts.append(self._index)
        else:
            self._history.clear()
        self._index += 1
        weights = np.ones(gray.shape, np.float32)
        total = ab.copy()
        for back, (past_ab, trust) in enumerate(self._history, start=1):
            weight = trust * self.strength**back
            total += weight[..., None] * past_ab
            weights += weight
        self._history.appendleft((ab, np.ones(gray.shape, np.float32)))
        return total / weights[..., None]

    def _carry(self, previous: np.ndarray, gray: np.ndarray) -> bool:
        """Warp the window into the current frame (untrusted pixels get weight 0); returns whether it is a cut."""
        to_previous, trust, cut = trusted_flow(gray, previous, max_side=self.flow_side)
        trust = trust.astype(np.float32)
        self._history = deque(
            ((warp(ab, to_previous), warp(weight, to_previous) * trust) for ab, weight in self._history),
            maxlen=self.window,
        )
        return cut
