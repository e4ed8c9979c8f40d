"""``python -m colorlab colorize INPUT... --ckpt MODEL.ckpt -o OUTDIR``: colorize real photos at full resolution.

Any input (files or folders, recursive; colour photos are turned gray first; grayscale, RGBA, CMYK, palette,
16-bit, EXIF-rotated; an animated GIF gives its first frame, with a note) comes back at its own size and
sharpness: the model runs at its training scale and only its ab is upsampled
(:class:`colorlab.inference.pipeline.Colorizer`). Several models give one output each plus a labelled
``gray | model A | model B`` strip. A bad file is reported and skipped. No file is ever overwritten: when a
name is taken, ``name-1.ext`` is written instead and the command says so. A film (``.mp4``, ``.mov``, ``.mkv``,
``.webm``, ``.avi``) is colorized frame by frame with the same pipeline, stabilised along optical flow
(``--stabilize-strength``, ``--stabilize-window``, ``--no-stabilize``) and written with its audio
(:mod:`colorlab.inference.films`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from colorlab.commands.options import (
    add_file_options,
    add_film_arguments,
    add_model_options,
    announce,
    checkpoints,
    film_options,
    film_tools,
    load_models,
    run_file_command,
    split_films,
)
from colorlab.guidance import DEFAULT_PATCH, Hint, check_patch
from colorlab.inference.folders import ColorizeReport, colorize_files
from colorlab.inference.guides import read_hints, read_reference
from colorlab.inference.onnx_runtime import onnx_colorizer
from colorlab.inference.pictures import Picture, collect_inputs, read_picture
from colorlab.inference.pipeline import Colorizer, model_names


def build_parser() -> argparse.ArgumentParser:
    """The ``colorize`` command's options."""
    parser = argparse.ArgumentParser(prog="python -m colorlab colorize", description=__doc__.split("\n\n")[0])
    add_file_options(parser)
    add_model_options(parser)
    parser.add_argument(
        "--onnx", action="append", default=[], type=Path, help="an exported .onnx model, run by ONNX Runtime"
    )
    parser.add_argument("--restore", action="store_true", help="keep the L a restoration model returns")
    parser.add_argument("--hints", type=Path, help="JSON list of {x, y, color} in picture pixels, colour "
                        "'#rrggbb' or [L, a, b] (one input picture)")  # fmt: skip
    parser.add_argument("--hint-patch", type=int, default=DEFAULT_PATCH,
                        help="side of each hint's square in model pixels (default %(default)s)")  # fmt: skip
    parser.add_argument("--reference", type=Path, help="a colour photo whose colours guide the model")
    add_film_arguments(parser)
    return parser


def guidance_from_args(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> Callable[[Colorizer, Picture], np.ndarray] | None:
    """The per-picture guided call for ``--hints`` / ``--reference`` (None without them); bad input exits."""
    if args.hints is None and args.reference is None:
        return None
    hints: list[Hint] = []
    if args.hints is not None:
        files = collect_inputs(args.inputs)
        if len(files) != 1:
            parser.error(f"--hints are in one picture's pixels: give one input picture, not {len(files)}")
        hints = read_hints(args.hints, read_picture(files[0][0], args.max_megapixels).size)
    check_patch(args.hint_patch)
    reference = read_reference(args.reference) if args.reference is not None else None
    return lambda colorizer, picture: colorizer.guided(picture, hints, args.hint_patch, reference)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m colorlab colorize``; exits 1 if any input failed."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def work() -> ColorizeReport:
        colorizers = load_models(args, checkpoints(args, required=not args.onnx), restore=args.restore)
        taken = {c.name for c in colorizers}  # an export beside its checkpoint would get the same name
        for path, name in zip(args.onnx, model_names(args.onnx) if args.onnx else []):
            colorizers.append(onnx_colorizer(path, args.size, f"{name}-onnx" if name in taken else name))
            announce(colorizers[-1])
        pictures, films = split_films(args.inputs)
        report = ColorizeReport()
        if pictures:
            guided = guidance_from_args(args, parser)
            report.add(colorize_files(pictures, colorizers, args.output, args.format, args.max_megapixels,
                                      progress=not args.no_progress, guided=guided))  # fmt: skip
        if films:
            tools = film_tools()
            models = [tools.colorizer_film(c) for c in colorizers]
            report.add(tools.colorize_films(films, models, args.output, **film_options(args)))
        return report

    run_file_command(parser, args, work)
