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
import sys
from collections.abc import Sequence
from pathlib import Path

from colorlab.commands.model_options import add_model_options, announce, checkpoints, load_models
from colorlab.inference.folders import colorize_files
from colorlab.inference.onnx_runtime import onnx_colorizer
from colorlab.inference.pictures import FORMATS, MAX_MEGAPIXELS
from colorlab.inference.pipeline import model_names


def build_parser() -> argparse.ArgumentParser:
    """The ``colorize`` command's options."""
    parser = argparse.ArgumentParser(prog="python -m colorlab colorize", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    add_model_options(parser)
    parser.add_argument(
        "--onnx", action="append", default=[], type=Path, help="an exported .onnx model, run by ONNX Runtime"
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output folder (never an input folder)"
    )
    parser.add_argument("--format", choices=sorted(FORMATS), help="output format (default: the input's)")
    parser.add_argument("--max-megapixels", type=float, default=MAX_MEGAPIXELS,
                        help="refuse larger pictures, checked before decoding (default %(default)g)")  # fmt: skip
    parser.add_argument("--restore", action="store_true", help="keep the L a restoration model returns")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m colorlab colorize``; exits 1 if any input failed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ckpts = checkpoints(args, required=not args.onnx)
        colorizers = load_models(args, ckpts, restore=args.restore)
        taken = {c.name for c in colorizers}  # an export beside its checkpoint would get the same name
        for path, name in zip(args.onnx, model_names(args.onnx) if args.onnx else []):
            colorizers.append(onnx_colorizer(path, args.size, f"{name}-onnx" if name in taken else name))
            announce(colorizers[-1])
        report = colorize_files(args.inputs, colorizers, args.output, args.format, args.max_megapixels,
                                progress=not args.no_progress)  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(report.summary(args.output), file=sys.stderr)
    if report.failed:
        raise SystemExit(1)
