"""``python -m colorlab sweep --config sweeps/NAME.yaml``: hyperparameter search over an experiment YAML."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import yaml

from colorlab.training import sweep


def main(argv: Sequence[str] | None = None) -> Any:
    """CLI: ``python -m colorlab sweep --config sweeps/NAME.yaml [--backend optuna|wandb] [--n-trials N]``."""
    parser = argparse.ArgumentParser(prog="python -m colorlab sweep", description=sweep.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--config", required=True, help="sweep YAML (see sweeps/)")
    parser.add_argument("--backend", choices=("optuna", "wandb"), default="optuna")
    parser.add_argument("--n-trials", type=int, help="trials this worker runs (default: the YAML's n_trials)")
    parser.add_argument(
        "--storage", help="Optuna RDB URL, overriding the YAML (e.g. postgresql://user@host/db)"
    )
    parser.add_argument("--sweep-id", help="W&B: join this existing sweep instead of creating one")
    args = parser.parse_args(argv)
    try:
        spec = sweep.load_spec(args.config)
    except (FileNotFoundError, ValueError, yaml.YAMLError) as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.storage:
        spec["storage"] = args.storage
    if args.backend == "wandb":
        return sweep.run_wandb(spec, args.sweep_id, args.n_trials)
    try:
        study = sweep.optimize(spec, args.n_trials)
    except ValueError as exc:  # the failed trial is recorded as FAIL in the study
        parser.exit(2, f"error: {exc}\n")
    print((spec["output"] / "summary.md").read_text())
    return study
