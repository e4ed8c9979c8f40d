"""Pictures a person can look at: image grids (gray | prediction | truth) and metric curves of several runs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

from colorlab.color import float_to_uint8
from colorlab.report import higher_is_better

LABEL_HEIGHT = 14


def comparison_grid(columns: Sequence[torch.Tensor], labels: Sequence[str] | None = None) -> np.ndarray:
    """Rows of images side by side: ``columns`` are ``(B, 3, H, W)`` float RGB in [0, 1] of one size.

    Returns an ``(H', W', 3)`` uint8 array; with ``labels`` a caption strip names each column.
    """
    if labels is not None and len(labels) != len(columns):
        raise ValueError(f"{len(columns)} columns but {len(labels)} labels")
    rows = torch.stack([c.detach().float().cpu() for c in columns], dim=1).flatten(0, 1)
    grid = make_grid(rows, nrow=len(columns), padding=2, pad_value=1.0)
    image = float_to_uint8(grid).permute(1, 2, 0).numpy()
    if labels is None:
        return image
    width = columns[0].shape[-1] + 2
    strip = Image.new("RGB", (image.shape[1], LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(strip)
    for i, label in enumerate(labels):
        draw.text((2 + i * width + 2, 1), label, fill="black")
    return np.concatenate([np.asarray(strip), image], axis=0)


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an ``(H, W, 3)`` uint8 array as PNG, creating folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def plot_curves(
    runs: Sequence[Any], out: Path, references: Mapping[str, Mapping[str, float]] | None = None
) -> dict[str, Path]:
    """One PNG per metric with a line per run (x: optimizer step); returns ``{metric: png}``.

    Each run has a ``name`` and ``series``: ``{metric: [(step, value), ...]}`` (see
    :class:`colorlab.training.compare.RunLog`). ``references`` draws constant levels as dashed horizontal
    lines: ``{metric: {label: value}}`` (e.g. the trivial baselines' val ΔE00)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    order = {
        "val": 0,
        "train": 1,
    }  # then anything else (learning rates); test values are one point: table only
    metrics = {m for run in runs for m in run.series if not m.startswith("test/")}
    metrics = sorted(metrics, key=lambda m: (order.get(m.split("/")[0], 2), m))
    out.mkdir(parents=True, exist_ok=True)
    pngs = {}
    for metric in metrics:
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
        for run in runs:
            points = run.series.get(metric)
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3, label=run.name)
        for i, (label, value) in enumerate((references or {}).get(metric, {}).items()):
            ax.axhline(value, color=f"0.{2 + 2 * i % 8}", linestyle="--", linewidth=1, label=label)
        better = higher_is_better(metric)
        hint = "" if better is None else (" (higher is better)" if better else " (lower is better)")
        ax.set(title=metric + hint, xlabel="step", ylabel=metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        pngs[metric] = out / f"{metric.replace('/', '_')}.png"
        fig.savefig(pngs[metric])
        plt.close(fig)
    return pngs
