"""Evaluation at full resolution: every colorizer and trivial baseline on the same photos, scored against them
(the report is written by :mod:`colorlab.inference.evaluation_report`).

Each photo is read like ``colorize`` reads it (same pixel cap, same alpha rule: scored as a viewer sees it on
white) and colorized by :class:`colorlab.inference.pipeline.Colorizer` (same size rule), so the numbers here
describe exactly the pictures ``colorize`` and ``serve`` return. A *method* is anything that turns pictures
into full-resolution RGB: the colorizers and the trivial baselines (gray always; the training split's mean ab
and L->ab lookup when a run provides them, :mod:`colorlab.baselines`). The summary says whether each model
beats the best baseline ("learning: yes/no" on ΔE00).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from colorlab.baselines import (
    BASELINE_NAMES,
    TrivialColorizer,
    baselines_for_run,
    learning_verdict,
)
from colorlab.color import float_to_uint8
from colorlab.inference.pictures import MAX_MEGAPIXELS, Picture, PictureError, on_white, read_picture
from colorlab.inference.pipeline import Colorizer, gray_picture, picture_l, tiles
from colorlab.inference.tiled_scores import tiled_colorfulness, tiled_image_scores, too_small
from colorlab.metrics import FRECHET_KEY, METRIC_TITLES, FrechetEffNetDistance
from colorlab.visualize import comparison_grid, save_png

GRAY = BASELINE_NAMES["gray"]
TRUTH = "ground truth"
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
SEMANTIC_NOTE = (
    "top-1/top-5 agree: the EfficientNet-Lite0 (ImageNet) top-1 class of the true photo is the top-1 / in the "
    "top-5 of the colorized one (the semantic test of Zhang et al. 2016)"
)
# Below this Hasler-Süsstrunk colorfulness a true photo counts as gray (scored against, it tells nothing).
GRAY_COLORFULNESS = 1.0
# A method: pictures -> full-resolution float RGB (H, W, 3) in [0, 1] each, alpha not applied.
Method = Callable[[Sequence[Picture]], list[np.ndarray]]


# ---- scores -------------------------------------------------------------------------------------------


def class_agreement(pred_logits: torch.Tensor, truth_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Zhang et al.'s semantic test, per image: is the classifier's top-1 class on the true photo also its
    top-1 (``top1_agree``) or among its top-5 (``top5_agree``) on the colorized one? ``(B,)`` of 0/1."""
    truth_class = truth_logits.argmax(1, keepdim=True)
    return {
        "top1_agree": (pred_logits.argmax(1, keepdim=True) == truth_class).float().squeeze(1),
        "top5_agree": (pred_logits.topk(5, dim=1).indices == truth_class).any(1).float(),
    }


def load_lpips(backbone_path: str | None) -> tuple[nn.Module | None, str]:
    """LPIPS-VGG from a local backbone file, or (None, why it is skipped)."""
    from colorlab.models.features import build_lpips

    try:
        return build_lpips("vgg", backbone_path), ""
    except (FileNotFoundError, ImportError) as exc:
        reason = str(exc).splitlines()[0]
        return (
            None,
            f"LPIPS skipped (never computed with random weights): {reason} Pass --lpips-backbone PATH.",
        )


def load_inception(weights_path: str | None) -> tuple[nn.Module | None, str]:
    """torch-fidelity's FID Inception-v3 from a local weight file, or (None, why FID is skipped)."""
    from colorlab.models.pretrained import resolve_weights

    try:
        path = resolve_weights(INCEPTION_FILE, weights_path)
        from torchmetrics.image.fid import NoTrainInceptionV3

        return NoTrainInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
        ), ""
    except FileNotFoundError as exc:
        reason = str(exc).splitlines()[0]
        return None, f"FID skipped (never computed with random weights): {reason} Pass --fid-weights PATH."
    except (ImportError, ModuleNotFoundError) as exc:
        return (
            None,
            f"FID skipped: its Inception network needs torch-fidelity ({exc}); pip install torch-fidelity",
        )


# ---- methods ------------------------------------------------------------------------------------------


def gray_baseline(pictures: Sequence[Picture]) -> list[np.ndarray]:
    """The picture's own L with ab = 0: what every colorizer must beat."""
    return [gray_picture(p, torch.float32) for p in pictures]


def trivial_method(baseline: TrivialColorizer) -> Method:
    """A :class:`colorlab.baselines.TrivialColorizer` as a method (it reads the picture's full-resolution L).

    The trivial baselines colour each pixel from its own L, so they run tile by tile (bounded memory)."""

    def one(picture: Picture) -> np.ndarray:
        out = np.empty((*picture.size, 3), np.float32)
        for rows, cols in tiles(*picture.size, 512):
            rgb = baseline.colorize_rgb(picture_l(picture.rgb[rows, cols]))
            out[rows, cols] = rgb[0].permute(1, 2, 0).numpy()
        return out

    def method(pictures: Sequence[Picture]) -> list[np.ndarray]:
        return [one(p) for p in pictures]

    return method


def load_baselines(run_dir: str | os.PathLike) -> tuple[list[TrivialColorizer], str]:
    """The trivial baselines of a run (mean ab, lookup; gray is always a row), and a note saying where from."""
    try:
        fitted = baselines_for_run(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        return [], f"mean-ab and lookup baselines skipped (only gray): {reason}"
    return list(fitted.colorizers().values()), f"baselines fitted on {fitted.source} of run `{run_dir}`"


def as_batch(rgb: np.ndarray, alpha: np.ndarray | None) -> torch.Tensor:
    """RGB ``(H, W, 3)`` (uint8, or float in [0, 1]) with its alpha, as seen on white -> float ``(1, 3, H, W)``."""
    image = torch.from_numpy(on_white(rgb, alpha)).float()
    if rgb.dtype == np.uint8:
        image.div_(255.0)  # in place: one float copy of a 12 MP photo is 144 MB
    return image.permute(2, 0, 1)[None]


# ---- the evaluation loop ------------------------------------------------------------------------------


def uint8_picture(image: torch.Tensor, tile: int = 1024) -> np.ndarray:
    """sRGB ``(1, 3, H, W)`` in [0, 1] -> uint8 ``(H, W, 3)``, converted tile by tile (no float copy of it)."""
    out = np.empty((*image.shape[-2:], 3), np.uint8)
    for rows, cols in tiles(*image.shape[-2:], tile):
        out[rows, cols] = float_to_uint8(image[0, :, rows, cols]).permute(1, 2, 0).cpu().numpy()
    return out


def _save_views(image: torch.Tensor, out: Path, column: str, stem: str, thumb: int) -> tuple[str, str]:
    """Save a full-size JPEG and a thumbnail of sRGB ``(1, 3, H, W)``; return their paths relative to ``out``."""
    picture = Image.fromarray(uint8_picture(image))
    full, small = (out / "images" / column / kind / f"{stem}.jpg" for kind in ("full", "thumbs"))
    full.parent.mkdir(parents=True, exist_ok=True)
    small.parent.mkdir(parents=True, exist_ok=True)
    picture.save(full, quality=95, subsampling=0)  # no chroma subsampling: colour is what we judge
    picture.thumbnail((thumb * 4, thumb), Image.Resampling.LANCZOS)
    picture.save(small, quality=90)
    return full.relative_to(out).as_posix(), small.relative_to(out).as_posix()


def _center_square(image: torch.Tensor, side: int) -> torch.Tensor:
    short = min(image.shape[-2:])
    top, left = (image.shape[-2] - short) // 2, (image.shape[-1] - short) // 2
    crop = image[..., top : top + short, left : left + short]
    return nn.functional.interpolate(crop, size=(side, side), mode="bilinear", antialias=True).clamp(0, 1)


@dataclass
class _SetMetrics:
    """What is accumulated over the whole set per method: the Fréchet distances and the grid's crops."""

    frechet: dict[str, Any]
    fid: dict[str, Any]
    grid: dict[str, list[torch.Tensor]]

    @classmethod
    def build(
        cls, names: Sequence[str], device: str, frechet: bool, fid_extractor: nn.Module | None
    ) -> _SetMetrics:
        """Fréchet EfficientNet distances (one feature net serves every row) and FID when an extractor is given
        (e.g. torch-fidelity's Inception, reading uint8 pictures of any size)."""
        from torchmetrics.image.fid import FrechetInceptionDistance

        from colorlab.models.features import PooledImageNetFeatures

        features = PooledImageNetFeatures().to(device) if frechet else None
        rows = [n for n in names if n != TRUTH]
        return cls(
            {n: FrechetEffNetDistance(features).to(device) for n in rows} if frechet else {},
            {n: FrechetInceptionDistance(fid_extractor).to(device) for n in rows} if fid_extractor else {},
            {n: [] for n in names},
        )

    def add(self, name: str, pred: torch.Tensor, truth: torch.Tensor, in_grid: bool) -> None:
        """One method's output for one photo."""
        if name in self.fid:
            self.fid[name].update(float_to_uint8(truth), real=True)
            self.fid[name].update(float_to_uint8(pred), real=False)
        if name in self.frechet:
            self.frechet[name].update(pred, truth)
        if in_grid:
            self.grid[name].append(_center_square(pred, 128).cpu())

    def add_means(self, means: dict[str, dict[str, float]]) -> None:
        """The set-level distances into each method's means."""
        for name, metric in self.fid.items():
            means[name]["fid"] = float(metric.compute())
        for name, metric in self.frechet.items():
            means[name][FRECHET_KEY] = float(metric.compute())

    def save_grid(self, path: Path) -> Path:
        """Center crops of the first photos, a column per method and the truth."""
        names = list(self.grid)
        return save_png(comparison_grid([torch.cat(self.grid[n]) for n in names], labels=[n[:20] for n in names]), path)


def _scorable(path: Path, max_megapixels: float) -> tuple[Picture | None, str]:
    """The picture at ``path``, or None and why it cannot be scored (unreadable, too large, too small)."""
    try:
        picture = read_picture(path, max_megapixels)
    except PictureError as exc:
        return None, str(exc)
    reason = too_small(*picture.size)
    return (None, reason) if reason else (picture, "")


def _means(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per method, the mean of every registry metric its rows have."""
    means = {}
    for name in names:
        group = [r for r in rows if r["model"] == name]
        if group:
            means[name] = {k: sum(r[k] for r in group) / len(group) for k in METRIC_TITLES if k in group[0]}
    return means


def _methods(colorizers: Sequence[Colorizer], baselines: Sequence[TrivialColorizer]) -> dict[str, Method]:
    """The gray baseline, the other trivial baselines and every colorizer, by (unique) name."""
    methods: dict[str, Method] = {GRAY: gray_baseline}
    methods.update((b.name, trivial_method(b)) for b in baselines if b.name != GRAY)
    for c in colorizers:
        if c.name in methods:
            raise ValueError(f"{c.name!r} is taken (by a baseline or another model); give another name")
        methods[c.name] = lambda pictures, c=c: c(pictures, dtype=torch.float32)
    return methods


@torch.no_grad()
def evaluate(
    colorizers: Sequence[Colorizer],
    files: Sequence[Path],
    out: Path,
    device: str = "cpu",
    lpips: nn.Module | None = None,
    fid_extractor: nn.Module | None = None,
    thumb: int = 160,
    grid_images: int = 6,
    baselines: Sequence[TrivialColorizer] = (),
    frechet: bool = True,
    max_megapixels: float = MAX_MEGAPIXELS,
) -> dict[str, Any]:
    """Score the gray baseline, the other trivial ``baselines`` and every colorizer on ``files``; write views
    into ``out/images``. ``frechet`` adds the Fréchet EfficientNet-Lite0 distance per row.

    A file that cannot be read (damaged, over ``max_megapixels``, under 6 px a side) is skipped and listed
    under ``skipped``. Each photo's methods run one at a time and are scored tile by tile
    (:mod:`colorlab.inference.tiled_scores`); the classifier and the Fréchet features see bounded sizes
    (224 and 128 px), so a 12 MP photo needs its truth and one output at full resolution, not one per row.
    ``gray_truths`` counts photos that are gray themselves.

    Returns ``{"rows": per-image dicts, "means": {method: {metric: value}}, "views": ..., "models": names,
    "learning": {model: verdict}, "skipped": {file: reason}}``; raises ValueError when no file could be read.
    """
    from colorlab.models.features import ImageNetClassifier

    methods = _methods(colorizers, baselines)
    baseline_names = list(methods)[: len(methods) - len(colorizers)]
    classifier = ImageNetClassifier().to(device)
    lpips = lpips.to(device) if lpips is not None else None
    names = list(methods)
    whole = _SetMetrics.build([*names, TRUTH], device, frechet, fid_extractor)
    rows: list[dict[str, Any]] = []
    views: list[dict[str, Any]] = []
    skipped: dict[Path, str] = {}
    gray_truths = 0
    for index, path in enumerate(tqdm(files, desc="evaluate", unit="img")):
        picture, reason = _scorable(path, max_megapixels)
        if picture is None:
            skipped[path] = reason
            continue
        truth = as_batch(picture.rgb, picture.alpha).to(device)
        truth_logits = classifier(truth)
        truth_colorfulness = tiled_colorfulness(truth)
        gray_truths += truth_colorfulness < GRAY_COLORFULNESS
        stem = f"{index:04d}_{path.stem}"
        cells = {TRUTH: (*_save_views(truth, out, "truth", stem, thumb), "truth")}
        in_grid = len(views) < grid_images
        # One method's full-resolution output at a time, scored tile by tile (memory: see tiled_scores).
        for i, (name, method) in enumerate(methods.items()):
            pred = as_batch(method([picture])[0], picture.alpha).to(device)
            scores = {**tiled_image_scores(pred, truth, lpips),
                      **{k: float(v) for k, v in class_agreement(classifier(pred), truth_logits).items()}}  # fmt: skip
            row = {"image": path.name, "model": name, **scores}
            rows.append(row)
            caption = f"ΔE {row['delta_e00']:.2f} · PSNR {row['psnr']:.2f}"
            cells[name] = (*_save_views(pred, out, f"model{i}", stem, thumb), caption)
            whole.add(name, pred, truth, in_grid)
            del pred
        if in_grid:
            whole.grid[TRUTH].append(_center_square(truth, 128).cpu())
        views.append({"image": path.name, "cells": cells})
        rows.append({"image": path.name, "model": TRUTH, "colorfulness": truth_colorfulness})
    if not views:
        raise ValueError(f"none of the {len(files)} files could be read: {next(iter(skipped.values()), '')}")
    means = _means(rows, [*names, TRUTH])
    whole.add_means(means)
    grid_png = whole.save_grid(out / "grid.png") if grid_images else None
    baseline_means = {name: means[name] for name in baseline_names}
    learning = {c.name: learning_verdict(means[c.name], baseline_means, "delta_e00") for c in colorizers}
    return {
        "rows": rows,
        "means": means,
        "views": views,
        "models": names,
        "grid": grid_png,
        "learning": learning,
        "skipped": skipped,
        "gray_truths": gray_truths,
    }
