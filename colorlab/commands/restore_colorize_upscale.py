"""``python -m colorlab restore-colorize-upscale INPUT... -o OUT --ckpt RESTORE_COLORIZE.ckpt --upscale-ckpt UP.ckpt``.

An old photo in one call: restore (denoise, deblur), colorize, then upscale ``k`` times. The colour stage is
one restore+colorize checkpoint (``--ckpt``), or ``--restore-ckpt`` and ``--colorize-ckpt`` separately; the
upscale stage is an upscaler checkpoint (``--upscale-ckpt``, tiled so memory stays bounded) or a plain
bicubic ``--factor``. Every picture mode ``colorize`` reads works here; a bad file is reported and skipped,
and no file is ever overwritten (a taken name gets ``-1``). ``photo.jpg`` comes back as ``OUT/photo_x2.jpg``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from colorlab.commands.arguments import megapixels, model_side
from colorlab.inference.chain import Chain, chain_files, load_upscaler
from colorlab.inference.pictures import FORMATS, MAX_MEGAPIXELS
from colorlab.inference.pipeline import DEFAULT_SIDE, Colorizer
from colorlab.inference.tiling import DEFAULT_OVERLAP, DEFAULT_TILE


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    parser = argparse.ArgumentParser(prog="python -m colorlab restore-colorize-upscale",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output folder (never an input folder)"
    )
    parser.add_argument("--ckpt", type=Path, help="a restore+colorize checkpoint (or any colorizer)")
    parser.add_argument("--restore-ckpt", type=Path, help="a separate restoration checkpoint, run first")
    parser.add_argument("--colorize-ckpt", type=Path, help="a separate colorization checkpoint")
    parser.add_argument(
        "--upscale-ckpt", type=Path, help="an upscaler checkpoint (experiments/upscale_x2.yaml)"
    )
    parser.add_argument("--factor", type=int, default=1,
                        help="enlargement without --upscale-ckpt (bicubic); with it, must match its scale")  # fmt: skip
    parser.add_argument("--size", type=model_side, help="shorter side the restore/colorize models run at (default: "
                        f"their training scale, else {DEFAULT_SIDE})")  # fmt: skip
    parser.add_argument(
        "--tile", type=int, default=DEFAULT_TILE, help="upscaler tile side, input px (%(default)s)"
    )
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                        help="context around each tile, input px (%(default)s)")  # fmt: skip
    parser.add_argument("--format", choices=sorted(FORMATS), help="output format (default: the input's)")
    parser.add_argument("--max-megapixels", type=megapixels, default=MAX_MEGAPIXELS,
                        help="largest OUTPUT picture; inputs over it / k² are refused (default %(default)g)")  # fmt: skip
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def build_chain(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Chain:
    """Load the stages the arguments name."""
    if (args.ckpt is None) == (args.colorize_ckpt is None):
        parser.error("give the colour stage once: --ckpt RESTORE_COLORIZE.ckpt, or --colorize-ckpt C.ckpt "
                     "(optionally with --restore-ckpt R.ckpt)")  # fmt: skip
    if args.ckpt is not None and args.restore_ckpt is not None:
        parser.error("--restore-ckpt goes with --colorize-ckpt; --ckpt is already the restore+colorize model")
    colorizer = Colorizer.load(args.ckpt or args.colorize_ckpt, args.size, args.device, name="colorize")
    colorizer.restore = colorizer.module.restores_l  # a restore+colorize model's L is the restored one
    restorer = None
    if args.restore_ckpt is not None:
        restorer = Colorizer.load(args.restore_ckpt, args.size, args.device, name="restore", restore=True)
        if not restorer.module.restores_l:
            raise ValueError(f"{args.restore_ckpt} holds a {type(restorer.module).__name__}, which does not "
                             "restore L (use a colorlab.approaches.restoration checkpoint)")  # fmt: skip
    upscaler = load_upscaler(args.upscale_ckpt, args.device) if args.upscale_ckpt is not None else None
    return Chain(colorizer, restorer, upscaler, args.factor, args.tile, args.overlap)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point; exits 1 if any input failed, 2 on a bad model or folder."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        chain = build_chain(args, parser)
        stages = [s for s in (chain.restorer, chain.colorizer) if s is not None]
        for stage in stages:
            print(f"{stage.name}: {stage.path} ({type(stage.module).__name__}, runs at {stage.describe()})",
                  file=sys.stderr)  # fmt: skip
        upscale = (f"{type(chain.upscaler).__name__} x{chain.scale}, tiles {args.tile} px + {args.overlap} px"
                   if chain.upscaler is not None else f"bicubic x{chain.scale}")  # fmt: skip
        print(f"upscale: {upscale}", file=sys.stderr)
        report = chain_files(args.inputs, chain, args.output, args.format, args.max_megapixels,
                             progress=not args.no_progress)  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(report.summary(args.output), file=sys.stderr)
    if report.failed:
        raise SystemExit(1)
