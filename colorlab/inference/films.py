"""Colorize films with the photo pipeline, frame by frame, then stabilise: the video side of ``colorize``.

Every frame goes through the same full-resolution pipeline as a photo (:class:`Colorizer` or the restore /
colorize / upscale :class:`Chain`), so it keeps its own L at full resolution; a fresh :class:`Stabilizer`
per film then steadies ab along optical flow. One model writes ``OUT/film.mp4``; several write
``OUT/NAME/film.mp4`` each. A bad film is reported and skipped, and no file is ever overwritten.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from colorlab.inference.folders import ColorizeReport
from colorlab.inference.pictures import Picture
from colorlab.inference.stabilize import DEFAULT_STRENGTH, DEFAULT_WINDOW, Stabilizer
from colorlab.inference.video import MAX_MINUTES, VideoError, probe, transcode


@dataclass
class FilmModel:
    """A picture -> uint8 RGB function (a Colorizer or a Chain, one picture at a time) and its output scale."""

    name: str
    function: Callable[[Picture], np.ndarray]
    scale: int = 1
    suffix: str = ""


def colorizer_function(
    colorizer: Callable[[Sequence[Picture]], list[np.ndarray]],
) -> Callable[[Picture], np.ndarray]:
    """A batch colorizer (:class:`colorlab.inference.pipeline.Colorizer`) as a one-picture function."""
    return lambda picture: colorizer([picture])[0]


def frame_function(model: FilmModel, stabilizer: Stabilizer) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 RGB frame -> colorized (and stabilised) uint8 RGB frame."""
    return lambda rgb: stabilizer(model.function(Picture(rgb, None, "png")))


def colorize_films(
    films: Sequence[str | os.PathLike],
    models: Sequence[FilmModel],
    out_dir: str | os.PathLike,
    strength: float = DEFAULT_STRENGTH,
    window: int = DEFAULT_WINDOW,
    max_minutes: float = MAX_MINUTES,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: tqdm.write(message, file=sys.stderr),
) -> ColorizeReport:
    """Colorize every film with every model into ``out_dir``; a film that fails is reported, the rest done."""
    out_dir = Path(out_dir)
    report = ColorizeReport()
    Stabilizer(strength, window)  # bad options fail here, before any film is read
    for film in map(Path, films):
        try:
            info = probe(film, max_minutes)
        except VideoError as exc:
            report.failed[film] = str(exc)
            log(f"error: {film}: {exc}")
            continue
        log(f"{film}: {info.describe()}")
        for model in models:
            folder = out_dir if len(models) == 1 else out_dir / model.name
            wanted = folder / f"{film.stem}{model.suffix}{film.suffix}"
            stabilizer = Stabilizer(strength, window)
            try:
                written = transcode(info, wanted, frame_function(model, stabilizer), model.scale, progress,
                                    desc=f"{film.name} ({model.name})")  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one bad film (or a model failing on it) must not stop the rest
                report.failed[film] = (
                    str(exc) if isinstance(exc, VideoError) else f"{type(exc).__name__}: {exc}"
                )
                log(f"error: {film}: {report.failed[film]}")
                continue
            if stabilizer.cuts:
                log(
                    f"{film}: scene cuts at frames {', '.join(map(str, stabilizer.cuts))} (stabilisation reset)"
                )
            report.written.append(written)
            if written != wanted:
                report.renamed[wanted] = written
                log(f"{wanted} exists: wrote {written} instead (colorize never overwrites)")
    return report
