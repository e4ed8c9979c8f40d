"""The options commands share: one set of model arguments (``--ckpt``, ``--ckpt-dir``, ``--all-models``,
``--size``, ``--device``) and the one way they turn into loaded models; the file commands' input/output
arguments and how they end (the report's summary, exit status 1 when an input failed, 2 on bad arguments)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from colorlab.commands.arguments import megapixels, model_side
from colorlab.inference.film_options import (
    DEFAULT_STRENGTH,
    DEFAULT_WINDOW,
    MAX_MINUTES,
    MISSING_EXTRA,
    is_video,
)
from colorlab.inference.folders import ColorizeReport
from colorlab.inference.pictures import FORMATS, MAX_MEGAPIXELS
from colorlab.inference.pipeline import DEFAULT_SIDE, Colorizer, find_checkpoints, model_names


def add_model_options(parser: argparse.ArgumentParser, several: bool = True, required: bool = False) -> None:
    """Add the model arguments: ``--ckpt`` (one, or with ``several`` any number: ``--ckpt A B --ckpt C``), and
    with ``several`` also ``--ckpt-dir``/``--all-models``; then ``--size``, ``--device`` and ``--flip-tta``."""
    if several:
        parser.add_argument("--ckpt", action="extend", nargs="+", default=[], type=Path,
                            help="model checkpoint(s) (repeatable)")  # fmt: skip
        parser.add_argument("--ckpt-dir", type=Path, help="folder of checkpoints (every *.ckpt, recursive)")
        parser.add_argument("--all-models", action="store_true", help="use every checkpoint under --ckpt-dir")
    else:
        parser.add_argument("--ckpt", type=Path, required=required, help="the model checkpoint")
    parser.add_argument("--size", type=model_side, help="shorter side the model runs at (default: its run's "
                        f"training scale, else {DEFAULT_SIDE})")  # fmt: skip
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    parser.add_argument("--flip-tta", action="store_true", help="average each prediction with that of the "
                        "mirrored picture (test-time augmentation; twice the model's work)")  # fmt: skip


def checkpoints(args: argparse.Namespace, required: bool = True) -> list[Path]:
    """The checkpoints ``--ckpt`` names (as given), then those under ``--ckpt-dir`` that ``--ckpt`` did not name.

    Raises ValueError when none is given and ``required``, and FileNotFoundError for a missing folder.
    """
    paths = list(args.ckpt)
    if args.all_models and args.ckpt_dir is None:
        raise ValueError("--all-models needs --ckpt-dir FOLDER")
    if args.ckpt_dir is not None:
        named = {path.resolve() for path in paths}
        paths += [path for path in find_checkpoints(args.ckpt_dir) if path.resolve() not in named]
    if not paths and required:
        raise ValueError("give a model: --ckpt MODEL.ckpt (repeatable) or --ckpt-dir FOLDER")
    return paths


def announce(colorizer: Colorizer) -> None:
    """Tell the user which model runs, of what kind, at what size (on stderr)."""
    print(f"model {colorizer.name}: {colorizer.path or 'classical, no checkpoint'} ({type(colorizer.module).__name__}, runs at "
          f"{colorizer.describe()})", file=sys.stderr)  # fmt: skip


def load_models(
    args: argparse.Namespace,
    paths: list[Path],
    names: list[str] | None = None,
    restore: bool = False,
    skip_broken_in_dir: bool = False,
) -> list[Colorizer]:
    """Load ``paths`` as :class:`Colorizer` s at ``--size`` on ``--device`` and say which each is.

    With ``skip_broken_in_dir`` a checkpoint found under ``--ckpt-dir`` that will not load is skipped with a
    warning (one named by ``--ckpt`` is still an error), as a server of a whole folder wants.
    """
    explicit = {p.resolve() for p in args.ckpt}
    colorizers = []
    for path, name in zip(paths, names or model_names(paths)):
        try:
            colorizer = Colorizer.load(path, args.size, args.device, name, restore, flip=args.flip_tta)
        except (FileNotFoundError, ValueError) as exc:
            if not skip_broken_in_dir or path.resolve() in explicit:
                raise
            print(f"warning: skipping {path}: {exc}", file=sys.stderr)
            continue
        colorizers.append(colorizer)
        announce(colorizer)
    if paths and not colorizers:
        raise ValueError(f"none of the {len(paths)} checkpoints could be loaded")
    return colorizers


def add_file_options(parser: argparse.ArgumentParser, cap_help: str = "refuse larger pictures") -> None:
    """Add the file commands' inputs, ``-o/--output``, ``--format``, ``--max-megapixels`` and ``--no-progress``."""
    parser.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output folder (never an input folder)"
    )
    parser.add_argument("--format", choices=sorted(FORMATS), help="output format (default: the input's)")
    parser.add_argument("--max-megapixels", type=megapixels, default=MAX_MEGAPIXELS,
                        help=f"{cap_help}, checked before decoding (default %(default)g)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_file_command(
    parser: argparse.ArgumentParser, args: argparse.Namespace, work: Callable[[], ColorizeReport]
) -> None:
    """Run a file command's ``work``: a bad model or folder exits 2 with its message; otherwise the report's
    summary is printed and the exit status is 1 when any input failed."""
    try:
        report = work()
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(report.summary(args.output), file=sys.stderr)
    if report.failed:
        raise SystemExit(1)


# ---- films --------------------------------------------------------------------------------------------


def split_films(inputs: Sequence[str]) -> tuple[list[str], list[str]]:
    """The inputs that are pictures or folders, and those that are films (by extension)."""
    return [i for i in inputs if not is_video(i)], [i for i in inputs if is_video(i)]


def add_film_arguments(parser: argparse.ArgumentParser) -> None:
    """The options for films (shared with ``restore-colorize-upscale``)."""
    films = parser.add_argument_group("films")
    films.add_argument("--stabilize-strength", type=float, default=DEFAULT_STRENGTH,
                       help="weight of the colour carried from one frame back, 0-1 (default %(default)s)")  # fmt: skip
    films.add_argument("--stabilize-window", type=int, default=DEFAULT_WINDOW,
                       help="how many previous frames carry colour forward (default %(default)s)")  # fmt: skip
    films.add_argument("--no-stabilize", action="store_true", help="colorize every frame on its own")
    films.add_argument("--max-minutes", type=float, default=MAX_MINUTES,
                       help="refuse longer films, checked before decoding (default %(default)g)")  # fmt: skip


def film_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`colorize_films` the film options give."""
    window = 0 if args.no_stabilize else args.stabilize_window
    return {"strength": args.stabilize_strength, "window": window, "max_minutes": args.max_minutes,
            "progress": not args.no_progress}  # fmt: skip


def film_tools() -> Any:
    """:mod:`colorlab.inference.films`, imported only when a film is given; a clear error without PyAV/OpenCV."""
    try:
        from colorlab.inference import films
    except ImportError as exc:
        raise ValueError(f"{MISSING_EXTRA} ({exc})") from exc
    return films
