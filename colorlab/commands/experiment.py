"""``python -m colorlab experiment``: fit an experiment YAML (every phase of it), test, write a report.

The run folder (``runs/NAME/VERSION``) ends up with ``checkpoints/`` (or one folder per phase), the CSV log,
``report.md``, ``test_metrics.csv``, ``results.json`` and ``test_grid.png`` (input gray | prediction | truth).
"""

from __future__ import annotations

import argparse
from typing import Any

from colorlab.data.images import DataFolderError
from colorlab.runs.folder import DamagedRunFile, NothingToResume, RunFolder
from colorlab.training.devices import GpuUnusable
from colorlab.training.experiment import run_experiment
from colorlab.training.runs import is_rank_zero


def main(argv: list[str]) -> dict[str, Any]:
    """CLI: ``python -m colorlab experiment --config X.yaml [--resume] [--trainer.max_epochs=1 ...]``."""
    parser = argparse.ArgumentParser(prog="python -m colorlab experiment", description=__doc__)
    parser.add_argument("--config", action="append", required=True, help="experiment YAML (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the latest run from its last.ckpt")
    args, overrides = parser.parse_known_args(argv)
    try:
        results = run_experiment(args.config, overrides, resume=args.resume)
    except (NothingToResume, DamagedRunFile, DataFolderError, GpuUnusable, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from None
    if not is_rank_zero():  # under DDP the other ranks return after the (synced) test; rank 0 reports
        return results
    run = RunFolder(results["run_dir"])
    for phase in results["phases"] if len(results["phases"]) > 1 else []:
        print(f"\nphase {phase['name']}:\n  metrics:     {RunFolder(phase['folder']).metrics_csv}\n"
              f"  checkpoint:  {phase['handover_checkpoint']}")  # fmt: skip
    print(f"\nrun folder:  {run.path}\nreport:      {run.report_file('report')}\n"
          f"metrics:     {run.report_file('csv')}\nimage grid:  {run.report_file('grid')}\n"
          f"checkpoint:  {results['best_checkpoint']}")  # fmt: skip
    return results
