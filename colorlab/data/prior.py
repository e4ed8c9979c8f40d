"""The empirical ab prior: how often each ab bin occurs in a training set (Zhang et al.'s class rebalancing).

Counted by ``python -m colorlab prior`` (:func:`empirical_ab_prior`, :func:`save_prior`) and read by the
classification approach through its ``prior_path`` (:func:`load_prior`). The ``.npy`` file holds ``Q``
float64 probabilities summing to 1, in the bin order of :func:`colorlab.color.ab_gamut_bins`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from colorlab.color import denormalize_ab, quantize_ab, rebalancing_weights
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


def class_weights(path: str | os.PathLike | None, centers: torch.Tensor, mix: float, sigma: float) -> torch.Tensor:
    """Class-rebalancing weights ``(Q,)`` of the ab bins ``centers`` from the prior file at ``path``
    (see :func:`colorlab.color.rebalancing_weights`); all ones (a uniform prior) when ``path`` is None."""
    if path is None:
        return torch.ones(len(centers))
    return rebalancing_weights(load_prior(path, len(centers)), centers.cpu(), mix, sigma)
