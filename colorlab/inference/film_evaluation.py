"""Evaluate colorizers on a folder of clips: flicker (warp error, CDC) and, against colour originals, ΔE00.

Every clip is read frame by frame; each frame is colorized by the same pipeline as ``colorize`` (the
*per-frame* row) and the same predictions are stabilised (the *stabilised* row), so the two rows differ only
by the stabilisation. The flow of each frame pair is computed once, on the input. Two floors sit beside the
models: the gray input (ab = 0, its RGB warp error is pure flow and interpolation error) and, for colour
clips, the truth (a perfectly steady colorization). Nothing but a few frames is held per clip.

Writes ``summary.md``, ``metrics.csv`` (per clip and method), ``results.json``, ``strip.png`` (frames of the
first clip: gray | per-frame | stabilised | truth) and ``flicker.png`` (per-frame ΔE00 and ab warp error).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from colorlab.flicker import FlickerMeter, InputFlow, frame_lab
from colorlab.inference.film_options import MAX_MINUTES
from colorlab.inference.films import predict_frame, stabilize_prediction
from colorlab.inference.folders import comparison_strip
from colorlab.inference.pictures import Picture
from colorlab.inference.pipeline import Colorizer, gray_picture
from colorlab.inference.stabilize import Stabilizer
from colorlab.inference.video import VideoError, probe, read_frames
from colorlab.metrics import delta_e_ciede2000
from colorlab.report import markdown_table, write_text_atomic
from colorlab.visualize import save_png

GRAY_ROW = "gray input (floor)"
TRUTH_ROW = "truth (floor)"
STABILISED = "stabilised"
# A clip whose first frame has 99 % of its pixels under this chroma (ab units) is a gray film: no truth to
# score (codec noise alone stays under 1; a pale colour photo still has some saturated pixels).
COLOUR_CHROMA = 3.0
STRIP_FRAMES = 5
COLUMNS = {
    "warp_rgb": "warp error RGB (x1e3) ↓",
    "warp_ab": "warp error ab ↓",
    "cdc": "CDC (x1e3) ↓",
    "delta_e00": "ΔE00 ↓",
    "psnr": "PSNR (dB) ↑",
}
SCALE = {"warp_rgb": 1e3, "cdc": 1e3}
METRIC_NOTE = (
    "warp error: Lai et al. 2018, flow (DIS medium) and occlusion mask computed on the input; RGB in [0, 1] "
    "(x1e3), ab in Lab units; CDC: Jensen-Shannon of RGB histograms at distances 1, 2, 4 (x1e3)"
)


@dataclass
class MethodScores:
    """One method on one clip: its flicker meter and per-frame scores against the truth."""

    meter: FlickerMeter = field(default_factory=FlickerMeter)
    delta_e00: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)

    def update(self, rgb: np.ndarray, step: Any, truth_lab: torch.Tensor | None, truth: np.ndarray) -> None:
        """Add one output frame."""
        self.meter.update(rgb, step)
        if truth_lab is None:
            return
        lab = torch.from_numpy(frame_lab(rgb)).permute(2, 0, 1)
        self.delta_e00.append(float(delta_e_ciede2000(lab, truth_lab).mean()))
        mse = float(((rgb.astype(np.float32) - truth.astype(np.float32)) ** 2).mean()) / 255.0**2
        self.psnr.append(10 * math.log10(1 / mse) if mse > 0 else float("inf"))

    def means(self) -> dict[str, float]:
        """The clip's value of each column."""
        nan = float("nan")
        return {
            "warp_rgb": self.meter.rgb_warp_error,
            "warp_ab": self.meter.ab_warp_error,
            "cdc": self.meter.cdc,
            "delta_e00": float(np.mean(self.delta_e00)) if self.delta_e00 else nan,
            "psnr": float(np.mean(self.psnr)) if self.psnr else nan,
        }


def _is_colour(rgb: np.ndarray) -> bool:
    chroma = np.linalg.norm(frame_lab(rgb)[..., 1:], axis=-1)
    return float(np.quantile(chroma, 0.99)) > COLOUR_CHROMA


@torch.inference_mode()
def evaluate_clip(
    path: Path,
    colorizers: Sequence[Colorizer],
    strength: float,
    window: int,
    max_minutes: float = MAX_MINUTES,
    progress: bool = True,
) -> dict[str, Any]:
    """One clip: ``{"frames", "colour", "methods": {row: MethodScores}, "strip": {row: [frames]}, "cuts"}``."""
    info = probe(path, max_minutes)
    strip_at = set(
        np.linspace(0, info.frames - 1, min(STRIP_FRAMES, info.frames)).round().astype(int).tolist()
    )
    flow = InputFlow()
    methods: dict[str, MethodScores] = {}
    stabilizers = {c.name: Stabilizer(strength, window) for c in colorizers}
    strip: dict[str, list[np.ndarray]] = {}
    colour = None
    for index, frame in enumerate(tqdm(read_frames(path), total=info.frames, desc=path.name, unit="frame",
                                       disable=not progress)):  # fmt: skip
        colour = _is_colour(frame) if colour is None else colour
        truth_lab = torch.from_numpy(frame_lab(frame)).permute(2, 0, 1) if colour else None
        step = flow(frame)
        picture = Picture(frame, None, "png")
        outputs = {GRAY_ROW: gray_picture(picture)}
        for colorizer in colorizers:  # one prediction, merged as it is and stabilised (what colorize writes)
            L_out, ab, luma = predict_frame(colorizer, picture)
            outputs[colorizer.name] = colorizer.full_resolution(picture, L_out, ab).numpy()
            steady = stabilize_prediction(stabilizers[colorizer.name], ab, luma)
            outputs[f"{colorizer.name} {STABILISED}"] = colorizer.full_resolution(
                picture, L_out, steady
            ).numpy()
        if colour:
            outputs[TRUTH_ROW] = frame
        for row, rgb in outputs.items():
            methods.setdefault(row, MethodScores()).update(rgb, step, truth_lab, frame)
            if index in strip_at:
                strip.setdefault(row, []).append(rgb)
    cuts = {name: s.cuts for name, s in stabilizers.items()}
    return {"frames": info.frames, "colour": bool(colour), "methods": methods, "strip": strip, "cuts": cuts}


def evaluate_clips(
    colorizers: Sequence[Colorizer],
    clips: Sequence[Path],
    out: Path,
    strength: float,
    window: int,
    max_minutes: float = MAX_MINUTES,
    progress: bool = True,
) -> dict[str, Any]:
    """Every clip with every colorizer; writes the reports into ``out`` and returns the results."""
    if not clips:
        raise VideoError("no clips to evaluate")
    per_clip: dict[str, dict[str, dict[str, float]]] = {}
    series: dict[str, dict[str, list[float]]] = {}
    skipped: dict[str, str] = {}
    first = None
    for path in clips:
        try:
            result = evaluate_clip(path, colorizers, strength, window, max_minutes, progress)
        except VideoError as exc:
            skipped[str(path)] = str(exc)
            continue
        first = first or (path, result)
        per_clip[str(path)] = {row: scores.means() for row, scores in result["methods"].items()}
        for row, scores in result["methods"].items():
            series.setdefault(row, {"delta_e00": [], "warp_ab": []})
            series[row]["delta_e00"] += scores.delta_e00
            series[row]["warp_ab"] += [math.nan, *scores.meter.ab_errors]  # no pair across clips
    if first is None:
        raise VideoError("no readable clips: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    rows = list(
        dict.fromkeys(row for clip in per_clip.values() for row in clip)
    )  # gray films have no truth row
    means = {row: {c: float(np.nanmean([clip[row][c] for clip in per_clip.values() if row in clip]))
                   for c in COLUMNS} for row in rows}  # fmt: skip
    results = {"clips": per_clip, "mean": means, "skipped": skipped, "stabilize": {"strength": strength,
               "window": window}, "series": series}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_reports(results, first, out, colorizers)
    return results


def changes(means: dict[str, dict[str, float]], name: str) -> str:
    """What stabilisation did to one model: ab warp error and CDC in %, ΔE00 in absolute units."""
    before, after = means[name], means[f"{name} {STABILISED}"]

    def percent(key: str) -> str:
        return f"{100 * (after[key] - before[key]) / before[key]:+.1f} %" if before[key] else "n/a"

    delta = after["delta_e00"] - before["delta_e00"]
    delta_text = "" if math.isnan(delta) else f", ΔE00 {delta:+.3f}"
    return (f"{name}: stabilisation changes ab warp error {percent('warp_ab')}, RGB warp error "
            f"{percent('warp_rgb')}, CDC {percent('cdc')}{delta_text}")  # fmt: skip


def write_reports(results: dict[str, Any], first: tuple[Path, dict], out: Path,
                  colorizers: Sequence[Colorizer]) -> None:  # fmt: skip
    """summary.md, metrics.csv, results.json, strip.png and flicker.png."""
    means = results["mean"]
    header = ["method", *COLUMNS.values()]
    table = markdown_table(
        header, [[row, *(v * SCALE.get(k, 1) for k, v in m.items())] for row, m in means.items()]
    )
    lines = [f"# Flicker on {len(results['clips'])} clips", "", table, ""]
    lines += [f"- {changes(means, c.name)}" for c in colorizers]
    settings = results["stabilize"]
    lines += [
        f"- stabilisation: strength {settings['strength']}, window {settings['window']}",
        f"- {METRIC_NOTE}",
    ]
    lines += [f"- skipped {path}: {reason}" for path, reason in results["skipped"].items()]
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["clip", "method", *COLUMNS])
        for clip, rows in [*results["clips"].items(), ("mean", means)]:
            for row, values in rows.items():
                writer.writerow([clip, row, *(f"{values[c]:.6g}" for c in COLUMNS)])
    write_text_atomic(
        out / "results.json", json.dumps({k: v for k, v in results.items() if k != "series"}, indent=2)
    )
    path, result = first
    panels = [(row, np.concatenate(frames, axis=1)) for row, frames in result["strip"].items()]
    save_png(np.concatenate([comparison_strip([p]) for p in panels], axis=0), out / "strip.png")
    plot_series(results["series"], out / "flicker.png", path.name)


def plot_series(series: dict[str, dict[str, list[float]]], path: Path, title: str) -> Path:
    """Per-frame ΔE00 and ab warp error of every method over the clips' frames, one above the other."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 5), dpi=100, sharex=True)
    for row, values in series.items():
        if values["delta_e00"]:
            axes[0].plot(values["delta_e00"], label=row, linewidth=1)
        axes[1].plot(values["warp_ab"], label=row, linewidth=1)
    axes[0].set(ylabel="ΔE00 vs truth ↓", title=f"per frame, all clips in a row (first: {title})")
    axes[1].set(ylabel="ab warp error ↓", xlabel="frame")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
