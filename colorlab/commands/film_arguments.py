"""The film options ``colorize`` and ``restore-colorize-upscale`` share (a helper, not a command)."""

from __future__ import annotations

import argparse
from typing import Any

from colorlab.inference.film_options import DEFAULT_STRENGTH, DEFAULT_WINDOW, MAX_MINUTES, MISSING_EXTRA


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
