"""Colorize films with the photo pipeline, frame by frame, then stabilise: the video side of ``colorize``.

Every frame goes through the same full-resolution pipeline as a photo (:class:`Colorizer` or the restore /
colorize / upscale :class:`Chain`), so it keeps its own L at full resolution; a fresh :class:`Stabilizer`
per film steadies ab along optical flow (a colorizer's ab at the model's size, before the merge; the chain's
output frames after it). One model writes ``OUT/film.mp4``; several write
``OUT/NAME/film.mp4`` each. A bad film is reported and skipped, and no file is ever overwritten.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from colorlab.inference.film_options import DEFAULT_STRENGTH, DEFAULT_WINDOW, MAX_MINUTES
from colorlab.inference.folders import ColorizeReport
from colorlab.inference.pictures import Picture
from colorlab.inference.pipeline import Colorizer
from colorlab.inference.stabilize import Stabilizer
from colorlab.inference.video import FrameFunction, VideoError, probe, transcode


@dataclass
class FilmModel:
    """How one model colorizes a film: ``frames(stabilizer)`` builds its uint8 RGB frame function for one film.

    Attributes:
        name: how it is shown (folders, messages).
        frames: stabiliser -> frame function ``(H, W, 3) -> (scale*H, scale*W, 3)``.
        scale: output size / input size.
        suffix: added to the film's name (``_x2``).
    """

    name: str
    frames: Callable[[Stabilizer], FrameFunction]
    scale: int = 1
    suffix: str = ""


def predict_frame(colorizer: Colorizer, picture: Picture) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The model on one frame: ``(L_out, ab)`` at the model's size and the luma it saw, uint8 ``(h, w)``."""
    L_small = colorizer.picture_input(picture)
    L_out, ab = colorizer.predict(L_small)
    luma = ((L_small[0, 0] + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return L_out, ab, luma


def stabilize_prediction(stabilizer: Stabilizer, ab: torch.Tensor, luma: np.ndarray) -> torch.Tensor:
    """The model's ab ``(1, 2, h, w)`` steadied by the stabiliser (flow on the model input's luma)."""
    steady = stabilizer.ab(ab[0].permute(1, 2, 0).contiguous().cpu().numpy(), luma)
    return torch.from_numpy(steady).permute(2, 0, 1)[None].to(ab.device)


def colorizer_film(colorizer: Colorizer) -> FilmModel:
    """A colorizer as a film model: predict, stabilise ab at the model's size, merge with the frame's own L."""

    def frames(stabilizer: Stabilizer) -> FrameFunction:
        @torch.inference_mode()
        def colorize(rgb: np.ndarray) -> np.ndarray:
            picture = Picture(rgb, None, "png")
            L_out, ab, luma = predict_frame(colorizer, picture)
            if stabilizer.active:
                ab = stabilize_prediction(stabilizer, ab, luma)
            return colorizer.full_resolution(picture, L_out, ab).numpy()

        return colorize

    return FilmModel(colorizer.name, frames)


def picture_film(
    name: str, function: Callable[[Picture], np.ndarray], scale: int = 1, suffix: str = ""
) -> FilmModel:
    """Any picture -> uint8 RGB function (the restore / colorize / upscale chain) as a film model; its frames
    are stabilised after the fact (:meth:`Stabilizer.__call__`)."""
    return FilmModel(name, lambda stabilizer: lambda rgb: stabilizer(function(Picture(rgb, None, "png"))), scale,
                     suffix)  # fmt: skip


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
                written = transcode(info, wanted, model.frames(stabilizer), model.scale, progress,
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
