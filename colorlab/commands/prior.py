"""``python -m colorlab prior``: how often each ab bin occurs in a training set (for class rebalancing).

    python -m colorlab prior --config experiments/zhang_cic.yaml -o priors/zhang_photos.npy

The experiment's ``data`` section (every ``--config`` merged, then ``--data.*`` overrides) is built and one
pass over its training loader is counted (see :mod:`colorlab.data.prior`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning as L

from colorlab.color import ab_gamut_bins
from colorlab.data.prior import empirical_ab_prior, save_prior
from colorlab.training.config import load_config


def main(argv: list[str]) -> Path:
    """CLI: ``python -m colorlab prior --config X.yaml -o priors/X.npy [--max-batches N] [--data.* ...]``."""
    parser = argparse.ArgumentParser(prog="python -m colorlab prior", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--config", action="append", required=True, help="experiment YAML (repeatable)")
    parser.add_argument("-o", "--output", required=True, help="where to write the .npy prior")
    parser.add_argument("--max-batches", type=int, default=None, help="count at most this many batches")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random training crops")
    args, overrides = parser.parse_known_args(argv)
    L.seed_everything(args.seed, verbose=False)
    datamodule = load_config(args.config, overrides).build_data()
    centers = ab_gamut_bins()
    prior = empirical_ab_prior(datamodule, centers, args.max_batches)
    path = save_prior(prior, args.output)
    top = prior.argsort(descending=True)[:3].tolist()
    common = ", ".join(f"ab={tuple(centers[i].int().tolist())}: {prior[i]:.3f}" for i in top)
    print(f"wrote {path}: {len(prior)} bins, {int((prior > 0).sum())} seen; most common {common}")
    return path
