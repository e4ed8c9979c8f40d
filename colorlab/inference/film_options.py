"""What counts as a film and the film defaults: importable without PyAV and OpenCV (the ``video`` extra), so
the photo commands start without them and a film without them gets a clear message."""

from __future__ import annotations

import os
from pathlib import Path

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
# A film longer than this is refused before any frame is decoded (override with --max-minutes).
MAX_MINUTES = 180.0
DEFAULT_STRENGTH = 0.8
DEFAULT_WINDOW = 6
MISSING_EXTRA = "films need PyAV and OpenCV: pip install 'colorlab[video]'"


def is_video(path: str | os.PathLike) -> bool:
    """Whether a path names a film by its suffix (``.mp4``, ``.mov``, ``.mkv``, ``.webm``, ``.avi``...)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def find_clips(folder: str | os.PathLike) -> list[Path]:
    """Every film under ``folder`` (recursive, sorted)."""
    return sorted(p for p in Path(folder).rglob("*") if is_video(p) and p.is_file())
