"""``python -m colorlab export --ckpt MODEL.ckpt --format onnx|torchscript [--size 256 | --dynamic]``.

Writes the approach's ``predict_lab`` as one graph (contract: :mod:`colorlab.inference.export`) and checks it
against PyTorch on a test input.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from colorlab.commands.arguments import model_side
from colorlab.inference.export import SUFFIXES, TOLERANCE, export


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m colorlab export``."""
    parser = argparse.ArgumentParser(prog="python -m colorlab export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, required=True, help="the model checkpoint")
    parser.add_argument("--format", choices=sorted(SUFFIXES), default="onnx", help="onnx or torchscript")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--size", type=model_side, default=256, help="fixed input side H = W (default 256)")
    shape.add_argument("--dynamic", action="store_true", help="any input H, W (padded inside the graph)")
    parser.add_argument("-o", "--output", type=Path, help="output file (default: next to the checkpoint)")
    args = parser.parse_args(argv)
    try:
        path, diff = export(args.ckpt, args.format, None if args.dynamic else args.size, args.output)
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    verdict = "ok" if diff <= TOLERANCE else f"WARNING: above the {TOLERANCE:g} tolerance"
    print(f"wrote {path}\nmax |ab - PyTorch ab| on a test input: {diff:.2e} ({verdict})")
    if diff > TOLERANCE:
        raise SystemExit(1)
