"""Synthetic colour clips from still photos by known camera motion: the test films of the video work.

A clip is two shots, each a virtual camera moving over one photo (a pan, a zoom, a small rotation or all
three), joined by a hard scene cut. Every frame is an exact affine view of its photo, so the colour truth
is the photo itself and the motion is known (recorded per frame as the 2x3 matrix from frame pixels to
photo pixels). The photo is first shrunk so the camera window is about its size: frames are not aliased.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

MOTIONS = ("pan", "zoom", "rotate", "all")
# The camera window covers this fraction of the photo's shorter fit, leaving room to move.
WINDOW = 0.75
MAX_DEGREES = 3.0
ZOOM = 0.8


@dataclass(frozen=True)
class Shot:
    """One photo filmed with one motion for ``frames`` frames."""

    photo: np.ndarray
    motion: str
    frames: int


def fit_photo(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Shrink (or enlarge) ``photo`` so a ``size`` window covers :data:`WINDOW` of it in its tighter direction."""
    height, width = size
    scale = min(photo.shape[0] * WINDOW / height, photo.shape[1] * WINDOW / width)
    new = (max(width, round(photo.shape[1] / scale)), max(height, round(photo.shape[0] / scale)))
    interpolation = cv2.INTER_AREA if scale > 1 else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(photo), new, interpolation=interpolation)


def camera(photo_size: tuple[int, int], size: tuple[int, int], motion: str, progress: float) -> np.ndarray:
    """The 2x3 matrix from frame pixels to photo pixels at ``progress`` in [0, 1] through a shot."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; choose from {', '.join(MOTIONS)}")
    (ph, pw), (height, width) = photo_size, size
    t = 2.0 * progress - 1.0  # -1 -> 1 across the shot
    moves = {motion} if motion != "all" else {"pan", "zoom", "rotate"}
    scale = ZOOM ** (progress if "zoom" in moves else 0.0)
    angle = math.radians(MAX_DEGREES * t) if "rotate" in moves else 0.0
    slack_x, slack_y = (pw - width * scale) / 2, (ph - height * scale) / 2
    pan = 0.6 * t if "pan" in moves else 0.0
    cx, cy = pw / 2 + pan * slack_x, ph / 2 + 0.5 * pan * slack_y
    a = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    b = np.array([cx, cy]) - a @ np.array([(width - 1) / 2, (height - 1) / 2])
    return np.hstack([a, b[:, None]]).astype(np.float64)


def shot_frames(shot: Shot, size: tuple[int, int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(frame uint8 RGB (H, W, 3), matrix)`` for every frame of a shot."""
    photo = fit_photo(shot.photo, size)
    height, width = size
    for index in range(shot.frames):
        matrix = camera(photo.shape[:2], size, shot.motion, index / max(1, shot.frames - 1))
        frame = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)  # fmt: skip
        yield frame, matrix


def clip_frames(shots: Sequence[Shot], size: tuple[int, int]) -> Iterator[tuple[np.ndarray, dict]]:
    """Every frame of the shots in order, with ``{"shot", "motion", "matrix"}``: a cut between shots."""
    for number, shot in enumerate(shots):
        for frame, matrix in shot_frames(shot, size):
            yield frame, {"shot": number, "motion": shot.motion, "matrix": matrix.round(6).tolist()}
