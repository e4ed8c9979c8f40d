"""``python -m colorlab compare RUN_DIR...``: one report of several runs from their CSV logs, no W&B needed.

Each ``RUN_DIR`` is a run folder ``runs/NAME/VERSION`` holding the CSVLogger's ``metrics.csv`` (or an
experiment folder ``runs/NAME``, meaning each of its runs). Writes ``compare.md``, ``index.html``,
``final_metrics.csv`` and one PNG of curves per metric (every run on the same axes) into the output folder.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from colorlab.runs.folder import RUNS_ROOT
from colorlab.training.compare import compare_runs, find_runs, read_run


def main(argv: Sequence[str]) -> dict[str, Path]:
    """CLI: ``python -m colorlab compare RUN_DIR [RUN_DIR ...] [-o OUT] [--names ...]``."""
    parser = argparse.ArgumentParser(prog="python -m colorlab compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "runs", nargs="+", help="run folders runs/NAME/VERSION (or runs/NAME for all its runs)"
    )
    parser.add_argument("-o", "--out", help="output folder (default runs/compare/TIMESTAMP)")
    parser.add_argument("--names", nargs="+", help="labels, one per run folder found (default NAME/VERSION)")
    args = parser.parse_args(argv)
    folders = find_runs(args.runs)
    if args.names and len(args.names) != len(folders):
        raise SystemExit(f"{len(folders)} runs found but {len(args.names)} names given")
    runs = [read_run(folder, name) for folder, name in zip(folders, args.names or [None] * len(folders))]
    paths = compare_runs(runs, Path(args.out or RUNS_ROOT / "compare" / time.strftime("%Y%m%d-%H%M%S")))
    print(paths["markdown"].read_text())
    print(f"report: {paths['html']}")
    return paths
