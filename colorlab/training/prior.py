"""``python -m colorlab prior``: how often each ab bin occurs in a training set (for class rebalancing).

    python -m colorlab prior --config experiments/zhang_cic.yaml -o priors/zhang_photos.npy

The experiment's ``data`` section (merged over every ``--config``, then ``--data.*`` overrides) is built and
one pass over its training loader is counted. The ``.npy`` file holds ``Q`` float64 probabilities summing to
1, in the bin order of :func:`colorlab.color.ab_gamut_bins`; the classification approach reads it through
its ``prior_path``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
import yaml
from jsonargparse import ArgumentParser

from colorlab.color import ab_gamut_bins, denormalize_ab, quantize_ab
from colorlab.data.datamodule import LabDataModule


@torch.no_grad()
def empirical_ab_prior(
    datamodule: LabDataModule, centers: torch.Tensor, max_batches: int | None = None
) -> torch.Tensor:
    """Share ``(Q,)`` (float64, sums to 1) of training pixels whose nearest bin is each of ``centers``."""
    datamodule.setup("fit")
    counts = torch.zeros(centers.shape[0], dtype=torch.float64)
    for index, batch in enumerate(datamodule.train_dataloader()):
        if max_batches is not None and index >= max_batches:
            break
        ab = datamodule.on_after_batch_transfer(batch, 0)["ab"]
        counts += torch.bincount(quantize_ab(denormalize_ab(ab), centers).flatten(), minlength=len(counts))
    if counts.sum() == 0:
        raise ValueError("the training loader yielded no pixels; cannot estimate an ab prior")
    return counts / counts.sum()


def save_prior(prior: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write a bin distribution ``(Q,)`` as a float64 ``.npy`` file (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, prior.double().numpy())
    return path


def load_prior(path: str | os.PathLike, num_bins: int) -> torch.Tensor:
    """Read a prior written by :func:`save_prior` and check it fits ``num_bins`` bins; float64 ``(Q,)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ab prior file {path} not found. Create it with\n"
            f"  python -m colorlab prior --config <experiment.yaml> -o {path}\n"
            "or set prior_path: null to train without class rebalancing (uniform prior)."
        )
    prior = torch.from_numpy(np.load(path)).double()
    if prior.shape != (num_bins,):
        raise ValueError(f"{path} holds a prior of shape {tuple(prior.shape)}, expected ({num_bins},) bins")
    if (prior < 0).any() or prior.sum() <= 0:
        raise ValueError(f"{path} is not a distribution (negative entries or zero total)")
    return prior / prior.sum()


def datamodule_from_configs(configs: list[str], overrides: list[str] | None = None) -> LabDataModule:
    """The ``data`` section of experiment YAMLs (later files override earlier ones) as a DataModule."""
    parser = ArgumentParser(prog="python -m colorlab prior")
    parser.add_subclass_arguments(LabDataModule, "data")
    namespace = None
    for config in configs:
        section = yaml.safe_load(Path(config).read_text()) or {}
        if "data" in section:
            namespace = parser.parse_object({"data": section["data"]}, namespace=namespace)
    if namespace is None:
        raise ValueError(f"none of {configs} has a data: section")
    namespace = parser.parse_args(overrides or [], namespace=namespace)
    return parser.instantiate(namespace).data


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
    centers = ab_gamut_bins()
    prior = empirical_ab_prior(datamodule_from_configs(args.config, overrides), centers, args.max_batches)
    path = save_prior(prior, args.output)
    top = prior.argsort(descending=True)[:3].tolist()
    common = ", ".join(f"ab={tuple(centers[i].int().tolist())}: {prior[i]:.3f}" for i in top)
    print(f"wrote {path}: {len(prior)} bins, {int((prior > 0).sum())} seen; most common {common}")
    return path
