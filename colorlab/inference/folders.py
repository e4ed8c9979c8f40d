"""The one file loop (read, render, write under a free name, report failures) and colorizing files and folders
with one or several models on it.

One model writes ``OUT/REL``; several write ``OUT/NAME/REL`` each plus a labelled ``gray | model A | ...`` strip
in ``OUT/compare/REL``. ``REL`` is the input's path below the folder it was found in (or its file name). A
name already taken, by an unrelated file or another input's result, is never replaced: the next free name
(``photo-1.png``) is written instead and reported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from colorlab.inference.pictures import (
    MAX_MEGAPIXELS,
    Output,
    Picture,
    PictureError,
    check_output_dir,
    collect_inputs,
    on_white,
    output_suffix,
    read_picture,
    write_picture,
)
from colorlab.inference.pipeline import Colorizer, gray_picture

COMPARE_DIR = "compare"
# Pictures share a forward pass up to this many pixels in all: one large photo is a batch of its own.
BATCH_PIXELS = 8_000_000
STRIP_HEIGHT = 512


@dataclass
class ColorizeReport:
    """What :func:`colorize_files` did: files written, renamed targets, failed inputs and notes."""

    written: list[Path] = field(default_factory=list)
    renamed: dict[Path, Path] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)
    notes: dict[Path, str] = field(default_factory=dict)

    def add(self, other: ColorizeReport) -> None:
        """Fold another run's report (e.g. the films' beside the pictures') into this one."""
        self.written += other.written
        self.renamed.update(other.renamed)
        self.failed.update(other.failed)
        self.notes.update(other.notes)

    def summary(self, output: Path) -> str:
        """What a command tells the user: files written to ``output``, taken names and failed inputs."""
        lines = [f"wrote {len(self.written)} file(s) to {output}"]
        if self.renamed:
            lines.append(f"{len(self.renamed)} name(s) were taken; wrote beside them instead:")
            lines += [f"  {wanted} -> {written}" for wanted, written in self.renamed.items()]
        if self.failed:
            lines.append(f"{len(self.failed)} input(s) failed:")
            lines += [f"  {path}: {reason}" for path, reason in self.failed.items()]
        return "\n".join(lines)


def comparison_strip(panels: Sequence[tuple[str, np.ndarray]], max_height: int = STRIP_HEIGHT) -> np.ndarray:
    """Labelled pictures side by side (``gray | model A | ...``), each scaled to at most ``max_height`` px."""
    height = min(max_height, panels[0][1].shape[0])
    scaled = []
    for _, image in panels:
        width = max(1, round(image.shape[1] * height / image.shape[0]))
        scaled.append(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))
    font_size = max(12, height // 20)
    label_height, gap = font_size + 10, 4
    strip = Image.new(
        "RGB", (sum(im.width for im in scaled) + gap * (len(scaled) - 1), height + label_height), "white"
    )
    draw, font, x = ImageDraw.Draw(strip), ImageFont.load_default(size=font_size), 0
    for (name, _), image in zip(panels, scaled):
        strip.paste(image, (x, label_height))
        draw.text((x + 4, 4), name, fill="black", font=font)
        x += image.width + gap
    return np.asarray(strip)


def planned_outputs(
    rel: Path, source: Path, fmt: str, out_dir: Path, names: Sequence[str]
) -> dict[str, Path]:
    """Where each model's result (and, for several models, the strip) of one input is meant to go."""
    name = rel.with_suffix(output_suffix(source, fmt))
    if len(names) == 1:
        return {names[0]: out_dir / name}
    return {**{n: out_dir / n / name for n in names}, COMPARE_DIR: out_dir / COMPARE_DIR / name}


@dataclass
class Job:
    """One input of the file loop: where it came from, its path below its folder, the decoded picture and the
    format its outputs are written in."""

    source: Path
    rel: Path
    picture: Picture
    fmt: str


# What a job writes: (where the file is meant to go, the picture); the loop picks a free name when it is taken.
Outputs = list[tuple[Path, Output]]


def process_files(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    render: Callable[[list[Job]], list[Outputs]],
    fmt: str | None = None,
    max_megapixels: float = MAX_MEGAPIXELS,
    batch_pixels: int = BATCH_PIXELS,
    desc: str = "colorize",
    progress: bool = True,
    log: Callable[[str], None] = lambda message: tqdm.write(message, file=sys.stderr),
) -> ColorizeReport:
    """THE file loop: read every input, ``render`` it, write its outputs (never replacing a file), report.

    Pictures are decoded and rendered in groups of at most ``batch_pixels`` pixels (0: one at a time).
    Raises PictureError before any work if ``out_dir`` is (inside) an input folder or a folder holds no
    pictures. A file that fails (unreadable, over ``max_megapixels``, a model error, a full disk) is reported
    and the rest still done.
    """
    out_dir = Path(out_dir)
    check_output_dir(out_dir, inputs)
    jobs = collect_inputs(inputs)
    report = ColorizeReport()
    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress)
    for batch in _batches(jobs, fmt, max_megapixels, batch_pixels, report, log):
        for job in batch:
            if job.picture.note:
                report.notes[job.source] = job.picture.note
                log(f"note: {job.source}: {job.picture.note}")
        try:
            rendered = render(batch)
        except Exception as exc:  # noqa: BLE001 - a model failing on one batch must not stop the others
            for job in batch:
                _fail(report, log, job.source, f"{type(exc).__name__}: {exc}")
        else:
            for job, outputs in zip(batch, rendered):
                try:
                    write_outputs(outputs, job.fmt, report, log)
                except OSError as exc:  # a full disk or a read-only folder: say so per file
                    _fail(report, log, job.source, f"cannot write: {exc}")
                except Exception as exc:  # noqa: BLE001 - an Output is merged while it is written: its failure is this file's
                    _fail(report, log, job.source, f"{type(exc).__name__}: {exc}")
        bar.update(len(batch))
    bar.close()
    return report


def write_outputs(outputs: Outputs, fmt: str, report: ColorizeReport, log: Callable[[str], None]) -> None:
    """Write each picture at its target or, when the name is taken, the next free one (reported)."""
    for target, image in outputs:
        written = write_picture(image, target, fmt)
        report.written.append(written)
        if written != target:
            report.renamed[target] = written
            log(f"{target} exists: wrote {written} instead (colorlab never overwrites)")


def _fail(report: ColorizeReport, log: Callable[[str], None], source: Path, reason: str) -> None:
    report.failed[source] = reason
    log(f"error: {source}: {reason}")


def _batches(
    jobs: Sequence[tuple[Path, Path]],
    fmt: str | None,
    max_megapixels: float,
    batch_pixels: int,
    report: ColorizeReport,
    log: Callable[[str], None],
) -> Iterator[list[Job]]:
    """Decoded pictures in groups of at most ``batch_pixels`` pixels (unreadable files go to ``report``)."""
    batch: list[Job] = []
    pixels = 0
    for source, rel in jobs:
        try:
            picture = read_picture(source, max_megapixels)
        except PictureError as exc:
            _fail(report, log, source, str(exc))
            continue
        if batch and pixels + picture.rgb.shape[0] * picture.rgb.shape[1] > batch_pixels:
            yield batch
            batch, pixels = [], 0
        batch.append(Job(source, rel, picture, fmt or picture.format))
        pixels += picture.rgb.shape[0] * picture.rgb.shape[1]
    if batch:
        yield batch


def colorize_files(
    inputs: Sequence[str | os.PathLike],
    colorizers: Sequence[Colorizer],
    out_dir: str | os.PathLike,
    fmt: str | None = None,
    max_megapixels: float = MAX_MEGAPIXELS,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: tqdm.write(message, file=sys.stderr),
    guided: Callable[[Colorizer, Picture], np.ndarray] | None = None,
) -> ColorizeReport:
    """Colorize every input with every model into ``out_dir`` (see :func:`process_files` for failures);
    ``guided(colorizer, picture)``, when given, colorizes each picture with its hints or reference instead of
    the plain batched call."""
    out_dir = Path(out_dir)
    names = [c.name for c in colorizers]

    def render(batch: list[Job]) -> list[Outputs]:
        pictures = [job.picture for job in batch]
        if guided is None:
            results = {c.name: c.outputs(pictures) for c in colorizers}
        else:
            results = {c.name: [Output.of(guided(c, p), p.alpha) for p in pictures] for c in colorizers}
        return [
            _model_outputs([(name, results[name][i]) for name in names], job,
                           planned_outputs(job.rel, job.source, job.fmt, out_dir, names))
            for i, job in enumerate(batch)
        ]  # fmt: skip

    return process_files(inputs, out_dir, render, fmt, max_megapixels, progress=progress, log=log)


def _model_outputs(results: list[tuple[str, Output]], job: Job, targets: dict[str, Path]) -> Outputs:
    """Each model's picture at its target, plus (for several models) the labelled comparison strip."""
    if len(results) == 1:
        return [(targets[name], output) for name, output in results]
    # The strip's panels are made from whole results: each is merged once, here, and written from memory.
    picture = job.picture
    arrays = [(name, output.rgb()) for name, output in results]
    outputs = [(targets[name], Output.of(rgb, picture.alpha)) for name, rgb in arrays]
    thumb = Image.fromarray(picture.rgb).reduce(max(1, picture.size[0] // STRIP_HEIGHT))
    alpha = None if picture.alpha is None else np.asarray(Image.fromarray(picture.alpha).resize(thumb.size))
    panels = [("gray", gray_picture(Picture(np.asarray(thumb), alpha, job.fmt)))]
    panels += [(name, np.asarray(Image.fromarray(rgb).resize(thumb.size))) for name, rgb in arrays]
    panels = [(name, on_white(rgb, alpha)) for name, rgb in panels]
    outputs.append((targets[COMPARE_DIR], Output.of(comparison_strip(panels))))
    return outputs
