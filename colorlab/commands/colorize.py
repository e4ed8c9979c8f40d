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

import torch

from colorlab.commands.arguments import megapixels, model_side
from colorlab.inference.folders import colorize_files
from colorlab.inference.onnx_runtime import onnx_colorizer
from colorlab.inference.pictures import FORMATS, MAX_MEGAPIXELS
from colorlab.inference.pipeline import DEFAULT_SIDE, Colorizer, find_checkpoints, model_names


def build_parser() -> argparse.ArgumentParser:
    """The ``colorize`` command's options."""
    parser = argparse.ArgumentParser(prog="python -m colorlab colorize", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    parser.add_argument(
        "--ckpt", action="append", default=[], type=Path, help="a model checkpoint (repeatable)"
    )
    parser.add_argument("--ckpt-dir", type=Path, help="folder of checkpoints (every *.ckpt, recursive)")
    parser.add_argument(
        "--onnx", action="append", default=[], type=Path, help="an exported .onnx model, run by ONNX Runtime"
    )
    parser.add_argument("--all-models", action="store_true", help="use every checkpoint under --ckpt-dir")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output folder (never an input folder)"
    )
    parser.add_argument("--size", type=model_side, help="shorter side the model runs at (default: its run's training "
                        f"scale, else {DEFAULT_SIDE})")  # fmt: skip
    parser.add_argument("--format", choices=sorted(FORMATS), help="output format (default: the input's)")
    parser.add_argument("--max-megapixels", type=megapixels, default=MAX_MEGAPIXELS,
                        help="refuse larger pictures, checked before decoding (default %(default)g)")  # fmt: skip
    parser.add_argument("--restore", action="store_true", help="keep the L a restoration model returns")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def checkpoints_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Path]:
    """The checkpoints named by ``--ckpt`` and (with ``--all-models`` or ``--ckpt-dir``) the folder."""
    ckpts = list(args.ckpt)
    if args.all_models and args.ckpt_dir is None:
        parser.error("--all-models needs --ckpt-dir FOLDER")
    if args.ckpt_dir is not None:
        ckpts += find_checkpoints(args.ckpt_dir)
    if not ckpts and not args.onnx:
        parser.error(
            "give a model: --ckpt MODEL.ckpt (repeatable), --ckpt-dir FOLDER --all-models or --onnx M.onnx"
        )
    return list({path.resolve(): path for path in ckpts}.values())


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m colorlab colorize``; exits 1 if any input failed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ckpts = checkpoints_from_args(args, parser)
        colorizers = [Colorizer.load(path, args.size, args.device, name, args.restore)
                      for path, name in zip(ckpts, model_names(ckpts) if ckpts else [])]  # fmt: skip
        taken = {c.name for c in colorizers}  # an export beside its checkpoint would get the same name
        colorizers += [onnx_colorizer(path, args.size, f"{name}-onnx" if name in taken else name)
                       for path, name in zip(args.onnx, model_names(args.onnx) if args.onnx else [])]  # fmt: skip
        for c in colorizers:
            print(
                f"model {c.name}: {c.path} ({type(c.module).__name__}, runs at {c.describe()})",
                file=sys.stderr,
            )
        report = colorize_files(args.inputs, colorizers, args.output, args.format, args.max_megapixels,
                                progress=not args.no_progress)  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(report.summary(args.output), file=sys.stderr)
    if report.failed:
        raise SystemExit(1)
