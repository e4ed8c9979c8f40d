"""``python -m colorlab serve --ckpt MODEL.ckpt`` (or ``--ckpt-dir FOLDER``): a local web page to compare models.

A person drops up to five photos, picks one model or all of them, and gets a before/after slider per photo,
the models side by side, and full-resolution downloads. The server binds 127.0.0.1 by default and the page
loads no external asset (:mod:`colorlab.inference.server`). A checkpoint under ``--ckpt-dir`` that will not
load is skipped with a warning; the others are served.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from colorlab.commands.arguments import megapixels
from colorlab.commands.options import add_model_options, checkpoints, load_models
from colorlab.inference.chain import load_upscaler
from colorlab.inference.pictures import MAX_MEGAPIXELS


def build_parser() -> argparse.ArgumentParser:
    """The ``serve`` command's options."""
    parser = argparse.ArgumentParser(prog="python -m colorlab serve", description=__doc__.split("\n\n")[0])
    add_model_options(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--keep-minutes", type=float, default=10, help="delete uploads' results after this")
    parser.add_argument("--max-files", type=int, default=5, help="photos per request")
    parser.add_argument("--max-mb", type=float, default=20, help="size limit per photo file")
    parser.add_argument("--max-megapixels", type=megapixels, default=MAX_MEGAPIXELS,
                        help="pixel limit per photo, checked before decoding (default %(default)g)")  # fmt: skip
    parser.add_argument("--max-jobs", type=int, default=1,
                        help="requests colorized at once; others wait (bounds memory; default 1)")  # fmt: skip
    parser.add_argument("--restore", action="store_true", help="keep the L a restoration model returns")
    parser.add_argument("--upscale-ckpt", type=Path,
                        help="an upscaler checkpoint: the page then offers 'upscale xK' (upscale_x2.yaml)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m colorlab serve``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        colorizers = load_models(args, checkpoints(args), restore=args.restore, skip_broken_in_dir=True)
        upscaler = load_upscaler(args.upscale_ckpt, args.device) if args.upscale_ckpt is not None else None
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    import uvicorn

    from colorlab.inference.server import create_app

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {args.host}: other machines can upload photos to this server")
    app = create_app(colorizers, args.keep_minutes * 60, args.max_files, args.max_mb, args.max_megapixels,
                     args.max_jobs, upscaler=upscaler)  # fmt: skip
    for folder in app.state.store.removed_stale:
        print(f"removed {folder}, left behind by a server that did not shut down")
    print(
        f"colorlab: {len(colorizers)} model(s) at http://{args.host}:{args.port}, {args.max_jobs} job(s) at once"
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
