"""``python -m colorlab colorize INPUT... --ckpt MODEL.ckpt -o OUTDIR``: colorize real photos at full resolution.

Any input (files or folders, recursive; colour photos are turned gray first; grayscale, RGBA, CMYK, palette,
16-bit, EXIF-rotated; an animated GIF gives its first frame, with a note) comes back at its own size and
sharpness: the model runs at its training scale and only its ab is upsampled
(:class:`colorlab.inference.pipeline.Colorizer`). Several models give one output each plus a labelled
``gray | model A | model B`` strip. A bad file is reported and skipped. No file is ever overwritten: when a
name is taken, ``name-1.ext`` is written instead and the command says so.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from colorlab.commands.options import (
    add_file_options,
    add_model_options,
    announce,
    checkpoints,
    load_models,
    run_file_command,
)
from colorlab.inference.folders import ColorizeReport, colorize_files
from colorlab.inference.onnx_runtime import onnx_colorizer
from colorlab.inference.pipeline import model_names


def build_parser() -> argparse.ArgumentParser:
    """The ``colorize`` command's options."""
    parser = argparse.ArgumentParser(prog="python -m colorlab colorize", description=__doc__.split("\n\n")[0])
    add_file_options(parser)
    add_model_options(parser)
    parser.add_argument(
        "--onnx", action="append", default=[], type=Path, help="an exported .onnx model, run by ONNX Runtime"
    )
    parser.add_argument("--restore", action="store_true", help="keep the L a restoration model returns")
    return parser


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
        return colorize_files(args.inputs, colorizers, args.output, args.format, args.max_megapixels,
                              progress=not args.no_progress)  # fmt: skip

    run_file_command(parser, args, work)
