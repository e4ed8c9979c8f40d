"""Trivial colorizers every model is reported against: gray (ab = 0), the training split's mean ab (a constant
tint) and an L -> ab lookup (the mean ab of each lightness bin), both fitted on the training split.

Each follows the approaches' contract ``colorize(L) -> ab`` on normalised Lab (see :mod:`colorlab.color`), so
the experiment report and ``evaluate`` score them exactly like a model. A model counts as learning only if it
beats the best of them (:func:`learning_verdict`).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from colorlab.color import lab_normalized_to_rgb
from colorlab.colorizers.upscale import bicubic_l
from colorlab.metrics import HIGHER_IS_BETTER, DeltaE2000
from colorlab.runs.folder import BASELINES_FILE, RunFolder

# Report names by key (results.json uses the keys).
BASELINE_NAMES = {"gray": "gray (ab = 0)", "mean_ab": "mean ab (train)", "lookup": "L->ab lookup (train)",
                  "bicubic": "bicubic (upscaled L)"}  # fmt: skip


class TrivialColorizer(ABC):
    """``colorize(L) -> ab`` without a network; subclasses define :meth:`colorize`."""

    name = ""

    @abstractmethod
    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """Normalised L ``(B, 1, H, W)`` -> normalised ab ``(B, 2, H, W)``."""

    def colorize_rgb(self, L: torch.Tensor) -> torch.Tensor:
        """Normalised L -> the colorized sRGB picture in [0, 1] (L kept, ab from :meth:`colorize`)."""
        return lab_normalized_to_rgb(L, self.colorize(L))


class GrayColorizer(TrivialColorizer):
    """ab = 0 everywhere: the input itself, as a gray picture."""

    name = BASELINE_NAMES["gray"]

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        return L.new_zeros(L.shape[0], 2, *L.shape[2:])


class MeanAbColorizer(TrivialColorizer):
    """One constant ab (normalised, shape ``(2,)``) everywhere: the training photos' average tint."""

    name = BASELINE_NAMES["mean_ab"]

    def __init__(self, mean_ab: torch.Tensor) -> None:
        self.mean_ab = mean_ab.float()

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        return self.mean_ab.to(L).view(1, 2, 1, 1).expand(L.shape[0], 2, *L.shape[2:]).contiguous()


class LookupColorizer(TrivialColorizer):
    """ab = the training pixels' mean ab at the pixel's lightness: a table of ``(bins, 2)`` normalised ab over
    equal-width bins of normalised L in [-1, 1]."""

    name = BASELINE_NAMES["lookup"]

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table.float()

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        index = lightness_bins(L[:, 0], len(self.table))
        return self.table.to(L.device)[index].permute(0, 3, 1, 2).to(L.dtype)


class BicubicUpscaler(TrivialColorizer):
    """The upscaling baseline: the small input's L enlarged bicubically, ab = 0 (upscalers are scored on L).

    Args:
        scale: the enlargement factor.
    """

    name = BASELINE_NAMES["bicubic"]

    def __init__(self, scale: int) -> None:
        self.scale = scale

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        return L.new_zeros(L.shape[0], 2, L.shape[2] * self.scale, L.shape[3] * self.scale)

    def colorize_rgb(self, L: torch.Tensor) -> torch.Tensor:
        """Small normalised L -> the gray sRGB picture of its bicubic enlargement."""
        return lab_normalized_to_rgb(bicubic_l(L, self.scale), self.colorize(L))


def lightness_bins(L: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin index in ``[0, bins)`` of normalised L in [-1, 1] (values outside are clamped)."""
    return ((L + 1) * 0.5 * bins).long().clamp(0, bins - 1)


def _fill_empty_bins(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per-bin mean ``(bins, 2)``; a bin no pixel fell in takes the mean of the nearest filled bin."""
    filled = counts > 0
    if not filled.any():
        return torch.zeros_like(sums)
    means = sums / counts.clamp_min(1).unsqueeze(1)
    positions = torch.arange(len(counts))
    nearest = (positions[:, None] - positions[filled][None, :]).abs().argmin(1)
    return means[filled][nearest]


@dataclass
class Baselines:
    """The fitted trivial baselines and what they were fitted on.

    Attributes:
        mean_ab: ``(2,)`` normalised mean ab of the training pixels.
        lookup: ``(bins, 2)`` normalised mean ab per L bin.
        images: training images seen.
        pixels: training pixels seen.
        source: a sentence saying which data fitted them.
    """

    mean_ab: torch.Tensor
    lookup: torch.Tensor
    images: int
    pixels: int
    source: str = ""

    def colorizers(self) -> dict[str, TrivialColorizer]:
        """Every baseline by its key (``gray``, ``mean_ab``, ``lookup``); each has its report ``name``."""
        return {
            "gray": GrayColorizer(),
            "mean_ab": MeanAbColorizer(self.mean_ab),
            "lookup": LookupColorizer(self.lookup),
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (ab in normalised units, as the models use)."""
        return {
            "mean_ab": self.mean_ab.tolist(),
            "lookup": self.lookup.tolist(),
            "bins": len(self.lookup),
            "images": self.images,
            "pixels": self.pixels,
            "source": self.source,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_json` to ``path``."""
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Baselines:
        """Read a file written by :meth:`save`."""
        data = json.loads(Path(path).read_text())
        return cls(
            mean_ab=torch.tensor(data["mean_ab"]),
            lookup=torch.tensor(data["lookup"]),
            images=int(data["images"]),
            pixels=int(data["pixels"]),
            source=data.get("source", ""),
        )


def fit_baselines(
    batches: Iterable[Mapping[str, torch.Tensor]],
    bins: int = 100,
    max_pixels: int = 50_000_000,
    source: str = "",
) -> Baselines:
    """Fit the mean ab and the L -> ab lookup on Lab batches ``{"L", "ab"}`` (and ``L_input`` when the model
    sees a degraded L of the same size: the lookup maps what the model sees; a smaller ``L_input``, the input of
    an upscaler, has no pixel-wise ab). Stops after ``max_pixels`` pixels."""
    sums = torch.zeros(bins, 2, dtype=torch.float64)
    counts = torch.zeros(bins, dtype=torch.float64)
    images = 0
    for batch in batches:
        L_input = batch.get("L_input", batch["L"])
        L = (L_input if L_input.shape[-2:] == batch["L"].shape[-2:] else batch["L"])[:, 0].detach().cpu()
        ab = batch["ab"].detach().cpu().double().permute(0, 2, 3, 1).reshape(-1, 2)
        index = lightness_bins(L, bins).flatten()
        sums.index_add_(0, index, ab)
        counts += torch.bincount(index, minlength=bins).double()
        images += L.shape[0]
        if counts.sum() >= max_pixels:
            break
    pixels = int(counts.sum())
    if pixels == 0:
        raise ValueError("no training pixels to fit the baselines on")
    mean_ab = sums.sum(0) / pixels
    return Baselines(mean_ab.float(), _fill_empty_bins(sums, counts).float(), images, pixels, source)


def fit_on_datamodule(
    datamodule: Any, max_images: int = 4096, seed: int = 0, batch_size: int = 32
) -> Baselines:
    """Fit the baselines on (at most ``max_images`` evenly spaced items of) a LabDataModule's training split,
    with its training crops; seeded, so the same run gives the same tables. The cap keeps an ImageNet-size split
    to seconds; a photo folder of a few thousand is fitted whole, so a model is judged against the strongest
    lookup its data allows (fitted on all 1393 training photos of the results protocol the lookup scores 11.97
    val ΔE00, on 256 of them 12.20)."""
    datamodule.setup("fit")
    train = datamodule.train_set
    step = max(1, len(train) // max_images)
    indices = list(range(0, len(train), step))[:max_images]
    loader = DataLoader(Subset(train, indices), batch_size=batch_size, shuffle=False, num_workers=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the training split's random crops and flips, made repeatable
        lab = (datamodule.on_after_batch_transfer(batch, 0) for batch in loader)
        source = f"{len(indices)} of the {len(train)} training items of {type(datamodule).__name__}"
        return fit_baselines(lab, source=source)


def baselines_for_run(run_dir: str | os.PathLike) -> Baselines:
    """The baselines of a run folder (or a phase folder inside one): its ``baselines.json`` when the experiment
    saved one, else fitted now on the training split rebuilt from the run's ``config.yaml``."""

    folder = RunFolder(run_dir)
    for candidate in (folder.path, folder.path.parent):
        if (candidate / BASELINES_FILE).is_file():
            return Baselines.load(candidate / BASELINES_FILE)
    data = folder.config.get("data")
    if not data:
        raise FileNotFoundError(
            f"{folder.path} has neither {BASELINES_FILE} nor a config.yaml with a data section"
        )
    return fit_on_datamodule(datamodule_from_config(data), seed=folder.config.get("seed_everything") or 0)


@torch.no_grad()
def val_delta_e00(baselines: Baselines, datamodule: Any) -> dict[str, float]:
    """Mean ΔE00 of every baseline (by key) on a LabDataModule's validation split, scored as validation scores
    a model (the split's own crops, sRGB against the truth): the levels a model's val curve must get below."""
    datamodule.setup("fit")
    colorizers = baselines.colorizers()
    metrics = {key: DeltaE2000() for key in colorizers}
    for batch in datamodule.val_dataloader():
        batch = datamodule.on_after_batch_transfer(batch, 0)
        for key, colorizer in colorizers.items():
            metrics[key].update(colorizer.colorize_rgb(batch.get("L_input", batch["L"])), batch["rgb"])
    return {key: metric.compute().item() for key, metric in metrics.items()}


def datamodule_from_config(data: Mapping[str, Any]) -> Any:
    """Build the LabDataModule a run's saved ``data:`` section (class_path + init_args) describes."""
    from jsonargparse import ArgumentParser

    from colorlab.data.datamodule import LabDataModule

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LabDataModule, "data")
    config = parser.parse_object({"data": dict(data)})
    return parser.instantiate_classes(config).data


def learning_verdict(
    model: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]], metric: str = "delta_e00"
) -> dict[str, Any] | None:
    """Does ``model`` beat the best baseline on ``metric``? None when the metric has no direction or a value
    is missing. Returns ``{"metric", "learning", "model", "best_baseline", "best_value", "margin"}``, the
    margin positive when the model is better."""
    if metric not in HIGHER_IS_BETTER or metric not in model:
        return None
    scored = {name: values[metric] for name, values in baselines.items() if metric in values}
    if not scored:
        return None
    sign = -1.0 if HIGHER_IS_BETTER[metric] else 1.0
    best = min(scored, key=lambda name: sign * scored[name])
    margin = sign * (scored[best] - model[metric])
    return {"metric": metric, "learning": margin > 0, "model": model[metric], "best_baseline": best,
            "best_value": scored[best], "margin": margin}  # fmt: skip


def verdict_line(verdict: dict[str, Any] | None) -> str:
    """``learning: yes/no`` as one report sentence."""
    if verdict is None:
        return "learning: unknown (no baseline scored on this metric)"
    word = "yes" if verdict["learning"] else "no"
    relation = "beats" if verdict["learning"] else "does not beat"
    best = BASELINE_NAMES.get(verdict["best_baseline"], verdict["best_baseline"])
    return (f"learning: {word} — {verdict['metric']} {verdict['model']:.3f} {relation} the best trivial baseline "
            f"({best}: {verdict['best_value']:.3f}; margin {verdict['margin']:+.3f})")  # fmt: skip
