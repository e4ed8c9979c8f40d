"""``python -m colorlab restore-colorize-upscale INPUT... -o OUT --ckpt RESTORE_COLORIZE.ckpt --upscale-ckpt UP.ckpt``.

An old photo in one call: restore (denoise, deblur), colorize, then upscale ``k`` times. The colour stage is
one restore+colorize checkpoint (``--ckpt``), or ``--restore-ckpt`` and ``--colorize-ckpt`` separately; the
upscale stage is an upscaler checkpoint (``--upscale-ckpt``, tiled so memory stays bounded) or a plain
bicubic ``--factor``. Every picture mode ``colorize`` reads works here; a bad file is reported and skipped,
and no file is ever overwritten (a taken name gets ``-1``). ``photo.jpg`` comes back as ``OUT/photo_x2.jpg``.
A film goes through the chain frame by frame, is stabilised and keeps its audio (``film.mp4`` ->
``OUT/film_x2.mp4``; options as for ``colorize``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from colorlab.commands.options import (
    add_file_options,
    add_film_arguments,
    add_model_options,
    announce,
    film_options,
    film_tools,
    run_file_command,
    split_films,
)
from colorlab.inference.chain import Chain, chain_files, load_upscaler
from colorlab.inference.folders import ColorizeReport
from colorlab.inference.pipeline import Colorizer
from colorlab.inference.tiling import DEFAULT_OVERLAP, DEFAULT_TILE


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    parser = argparse.ArgumentParser(prog="python -m colorlab restore-colorize-upscale",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    add_file_options(parser, cap_help="largest OUTPUT picture; inputs over it / k² are refused")
    add_model_options(parser, several=False)
    parser.add_argument("--restore-ckpt", type=Path, help="a separate restoration checkpoint, run first")
    parser.add_argument("--colorize-ckpt", type=Path, help="a separate colorization checkpoint")
    parser.add_argument(
        "--upscale-ckpt", type=Path, help="an upscaler checkpoint (experiments/upscale_x2.yaml)"
    )
    parser.add_argument("--factor", type=int, default=1,
                        help="enlargement without --upscale-ckpt (bicubic); with it, must match its scale")  # fmt: skip
    parser.add_argument(
        "--tile", type=int, default=DEFAULT_TILE, help="upscaler tile side, input px (%(default)s)"
    )
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                        help="context around each tile, input px (%(default)s)")  # fmt: skip
    add_film_arguments(parser)
    return parser


def build_chain(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Chain:
    """Load the stages the arguments name."""
    if (args.ckpt is None) == (args.colorize_ckpt is None):
        parser.error("give the colour stage once: --ckpt RESTORE_COLORIZE.ckpt, or --colorize-ckpt C.ckpt "
                     "(optionally with --restore-ckpt R.ckpt)")  # fmt: skip
    if args.ckpt is not None and args.restore_ckpt is not None:
        parser.error("--restore-ckpt goes with --colorize-ckpt; --ckpt is already the restore+colorize model")
    colorizer = Colorizer.load(args.ckpt or args.colorize_ckpt, args.size, args.device, name="colorize", flip=args.flip_tta)
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

    def work() -> ColorizeReport:
        chain = build_chain(args, parser)
        for stage in (chain.restorer, chain.colorizer):
            if stage is not None:
                announce(stage)
        upscale = (f"{type(chain.upscaler).__name__} x{chain.scale}, tiles {args.tile} px + {args.overlap} px"
                   if chain.upscaler is not None else f"bicubic x{chain.scale}")  # fmt: skip
        print(f"upscale: {upscale}", file=sys.stderr)
        pictures, films = split_films(args.inputs)
        report = ColorizeReport()
        if pictures:
            report.add(chain_files(pictures, chain, args.output, args.format, args.max_megapixels,
                                   progress=not args.no_progress))  # fmt: skip
        if films:
            suffix = f"_x{chain.scale}" if chain.scale > 1 else ""
            tools = film_tools()
            model = tools.picture_film("restore-colorize-upscale", chain, chain.scale, suffix)
            report.add(tools.colorize_films(films, [model], args.output, **film_options(args)))
        return report

    run_file_command(parser, args, work)
