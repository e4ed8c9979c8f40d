"""Write synthetic test clips (:mod:`colorlab.data.clips`) from a photo folder: ``python -m colorlab data clips``."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

from colorlab.data.clips import MOTIONS, Shot, clip_frames
from colorlab.data.images import list_images, load_rgb
from colorlab.inference.video import write_video


def write_clips(
    photo_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    count: int = 4,
    frames: int = 24,
    size: tuple[int, int] = (180, 320),
    fps: int = 24,
) -> list[Path]:
    """``count`` clips of two shots (``frames`` frames each, a cut between) from consecutive photos of a folder.

    Clip ``i`` films photos ``2i`` and ``2i+1`` (sorted names) with motions ``MOTIONS[i]`` and ``MOTIONS[i+1]``
    (cycling); beside each ``clip_NNN.mp4`` a ``clip_NNN.json`` records its photos and per-frame matrices.
    """
    photos = list_images(photo_dir)
    if len(photos) < 2:
        raise ValueError(f"need at least 2 photos in {photo_dir}, found {len(photos)}")
    if count < 1 or frames < 2 or min(size) < 16:
        raise ValueError("need count >= 1, frames >= 2 and both sides >= 16 px")
    out_dir = Path(out_dir)
    written = []
    for index in range(count):
        pair = [photos[(2 * index + k) % len(photos)] for k in (0, 1)]
        shots = [Shot(load_rgb(p), MOTIONS[(index + k) % len(MOTIONS)], frames) for k, p in enumerate(pair)]
        motions: list[dict] = []

        def frames_of(shots: list[Shot] = shots, motions: list[dict] = motions):
            for frame, motion in clip_frames(shots, size):
                motions.append(motion)
                yield frame

        path = write_video(frames_of(), out_dir / f"clip_{index:03d}.mp4", Fraction(fps))
        sidecar = {"photos": [str(p) for p in pair], "fps": fps, "cut_at": frames, "frames": motions}
        path.with_suffix(".json").write_text(json.dumps(sidecar))
        written.append(path)
    return written
