"""``python -m colorlab evaluate``: compare checkpoints of any approach on colour photos at full resolution.

Each model sees a small gray copy of every photo (at the size it trained at), its ab is upsampled and merged
with the photo's own L (:func:`colorlab.inference.pipeline.colorize_full_resolution`), and the result is scored
against the photo. The trivial baselines are rows too: gray (ab = 0) always, and the training split's mean ab
and L->ab lookup of the first checkpoint's run (its ``baselines.json``, else fitted from its config); the
summary says whether each model beats the best of them ("learning: yes/no" on ΔE00). Writes into the output folder:
``metrics.csv`` (per image and mean), ``summary.md``, ``results.json``, ``index.html`` (gray | models |
truth, thumbnails linking to full-size images) and ``grid.png`` (a few center crops side by side).
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from PIL import Image
from torch import nn
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from tqdm import tqdm

from colorlab.approaches.base import ColorizationModule
from colorlab.baselines import TrivialColorizer, baselines_for_run, learning_verdict, verdict_line
from colorlab.color import float_to_uint8, lab_batch, lab_normalized_to_rgb, rgb_to_lab
from colorlab.data.datasets import to_chw
from colorlab.data.images import IMAGE_EXTENSIONS, list_images, load_rgb, split_decodable
from colorlab.inference.pipeline import colorize_full_resolution
from colorlab.metrics import FRECHET_KEY, FrechetEffNetDistance, colorfulness, delta_e_ciede2000
from colorlab.report import html_page, html_table, markdown_table
from colorlab.training.runs import RunFolder
from colorlab.visualize import comparison_grid, save_png

DEFAULT_SIZE = 256
GRAY = "gray (ab = 0)"
TRUTH = "ground truth"
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
SEMANTIC_NOTE = (
    "top-1/top-5 agree: the EfficientNet-Lite0 (ImageNet) top-1 class of the true photo is the top-1 / in the "
    "top-5 of the colorized one (the semantic test of Zhang et al. 2016)"
)
# Column -> table header (arrow: which direction is better).
METRICS = {
    "psnr": "PSNR (dB) ↑",
    "ssim": "SSIM ↑",
    "delta_e00": "ΔE00 ↓",
    "colorfulness": "colorfulness",
    "colorfulness_gap": "colorfulness gap ↓",
    "top1_agree": "top-1 agree ↑",
    "top5_agree": "top-5 agree ↑",
    "lpips": "LPIPS ↓",
    FRECHET_KEY: "Fréchet EffNet ↓",
}


# ---- scores -------------------------------------------------------------------------------------------


def image_scores(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image scores of sRGB ``(B, 3, H, W)`` in [0, 1] against the truth, each ``(B,)``.

    The same definitions as the ``val/``/``test/`` metrics of :func:`colorlab.metrics.colorization_metrics`
    (their epoch values are the means of these), plus the absolute colorfulness gap to the truth.
    """
    pred, truth = pred.float(), truth.float()
    pred_colorfulness = colorfulness(pred)
    return {
        "psnr": peak_signal_noise_ratio(pred, truth, data_range=1.0, dim=(1, 2, 3), reduction="none"),
        "ssim": structural_similarity_index_measure(pred, truth, data_range=1.0, reduction="none"),
        "delta_e00": delta_e_ciede2000(rgb_to_lab(pred), rgb_to_lab(truth)).flatten(1).mean(1),
        "colorfulness": pred_colorfulness,
        "colorfulness_gap": (pred_colorfulness - colorfulness(truth)).abs(),
    }


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
        return None, f"LPIPS skipped (never computed with random weights): {reason} Pass --lpips-backbone PATH."


def load_inception(weights_path: str | None) -> tuple[nn.Module | None, str]:
    """torch-fidelity's FID Inception-v3 from a local weight file, or (None, why FID is skipped)."""
    from colorlab.models.pretrained import resolve_weights

    try:
        path = resolve_weights(INCEPTION_FILE, weights_path)
        from torchmetrics.image.fid import NoTrainInceptionV3

        return NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)), ""
    except FileNotFoundError as exc:
        reason = str(exc).splitlines()[0]
        return None, f"FID skipped (never computed with random weights): {reason} Pass --fid-weights PATH."
    except (ImportError, ModuleNotFoundError) as exc:
        return None, f"FID skipped: its Inception network needs torch-fidelity ({exc}); pip install torch-fidelity"


def load_baselines(run_dir: str | os.PathLike) -> tuple[list[TrivialColorizer], str]:
    """The trivial baselines of a run (mean ab, lookup; gray is always a row), and a note saying where from."""
    try:
        fitted = baselines_for_run(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        return [], f"mean-ab and lookup baselines skipped (only gray): {reason}"
    return list(fitted.colorizers().values()), f"baselines fitted on {fitted.source} of run `{run_dir}`"


# ---- models -------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """A model under evaluation and the size it runs at.

    Attributes:
        name: its row in the tables.
        model: the approach, in eval mode.
        size: fixed longer side for every photo, or None to use ``train_resize``.
        train_resize: shorter side its training photos were resized to (None: unknown).
    """

    name: str
    model: ColorizationModule
    size: int | None = None
    train_resize: int | None = None

    def side(self, height: int, width: int) -> int:
        """The longer side this photo is shown to the model at (the training scale when known)."""
        if self.size is not None:
            return self.size
        if self.train_resize is not None:
            return round(self.train_resize * max(height, width) / min(height, width))
        return DEFAULT_SIZE

    def describe(self) -> str:
        """How the model's input size is chosen, for the report."""
        if self.size is not None:
            return f"longer side {self.size} px"
        if self.train_resize is not None:
            return f"shorter side {self.train_resize} px (its training resize)"
        return f"longer side {DEFAULT_SIZE} px (default)"


def training_resize(checkpoint: str | os.PathLike) -> int | None:
    """The ``data.init_args.resize`` of the run that wrote ``checkpoint`` (its run folder's config.yaml)."""
    config = Path(checkpoint).resolve().parent.parent / "config.yaml"
    if not config.is_file():
        return None
    data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
    resize = (data.get("init_args") or {}).get("resize")
    return int(resize) if resize else None


def checkpoint_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Row names: the run name of ``runs/NAME/VERSION/checkpoints/x.ckpt``, with more of the path if needed."""

    def label(path: Path, level: int) -> str:
        if path.parent.name == "checkpoints":
            run, version = path.parents[2].name, path.parents[1].name
            return [run, f"{run}/{version}", f"{run}/{version}/{path.stem}"][level]
        return [path.stem, f"{path.parent.name}/{path.stem}", str(path)][level]

    paths = [Path(p).resolve() for p in paths]
    for level in range(3):
        names = [label(p, level) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def load_candidates(checkpoints: Sequence[str], names: Sequence[str] | None, size: int | None, device: str):
    """Load every checkpoint as a :class:`Candidate`."""
    from colorlab.inference.checkpoints import load_colorizer

    names = list(names) if names else checkpoint_names(checkpoints)
    if len(names) != len(checkpoints):
        raise ValueError(f"{len(checkpoints)} checkpoints but {len(names)} names")
    if GRAY in names:
        raise ValueError(f"{GRAY!r} is the baseline's name")
    return [
        Candidate(name, load_colorizer(path, map_location=device), size, training_resize(path))
        for name, path in zip(names, checkpoints)
    ]


# ---- the evaluation loop ------------------------------------------------------------------------------


def _save_views(image: torch.Tensor, out: Path, column: str, stem: str, thumb: int) -> tuple[str, str]:
    """Save a full-size JPEG and a thumbnail of sRGB ``(1, 3, H, W)``; return their paths relative to ``out``."""
    picture = Image.fromarray(float_to_uint8(image[0]).permute(1, 2, 0).cpu().numpy())
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


@torch.no_grad()
def evaluate(
    candidates: Sequence[Candidate],
    files: Sequence[Path],
    out: Path,
    device: str = "cpu",
    lpips: nn.Module | None = None,
    fid_extractor: nn.Module | None = None,
    thumb: int = 160,
    grid_images: int = 6,
    baselines: Sequence[TrivialColorizer] = (),
    frechet: bool = True,
) -> dict[str, Any]:
    """Score the gray baseline, the other trivial ``baselines`` and every candidate on ``files``; write views
    into ``out/images``. ``frechet`` adds the Fréchet EfficientNet-Lite0 distance per row.

    Returns ``{"rows": per-image dicts, "means": {model: {metric: value}}, "views": ..., "fid": ...}``.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    from colorlab.models.features import ImageNetClassifier, PooledImageNetFeatures

    classifier = ImageNetClassifier().to(device)
    lpips = lpips.to(device) if lpips is not None else None
    extra = [b for b in baselines if b.name != GRAY]
    names = [GRAY, *(b.name for b in extra), *(c.name for c in candidates)]
    features = PooledImageNetFeatures().to(device) if frechet else None  # one net serves every row
    frechet_rows = {n: FrechetEffNetDistance(features).to(device) for n in names} if frechet else {}
    # The extractor (e.g. torch-fidelity's Inception) reads uint8 pictures of any size; one copy serves all.
    fid = {n: FrechetInceptionDistance(fid_extractor).to(device) for n in names} if fid_extractor else {}
    rows: list[dict[str, Any]] = []
    views: list[dict[str, Any]] = []
    grid: dict[str, list[torch.Tensor]] = {name: [] for name in [*names, TRUTH]}
    for index, path in enumerate(tqdm(files, desc="evaluate", unit="img")):
        batch = lab_batch(to_chw(load_rgb(path))[None].to(device))
        truth, L = batch["rgb"], batch["L"]
        outputs = {GRAY: lab_normalized_to_rgb(L, torch.zeros_like(batch["ab"]))}
        outputs.update((b.name, b.colorize_rgb(L)) for b in extra)
        for c in candidates:
            outputs[c.name] = colorize_full_resolution(c.model, L, size=c.side(*L.shape[-2:]))
        truth_logits = classifier(truth)
        stem = f"{index:04d}_{path.stem}"
        cells = {TRUTH: (*_save_views(truth, out, "truth", stem, thumb), "truth")}
        for i, (name, pred) in enumerate(outputs.items()):
            scores = {**image_scores(pred, truth), **class_agreement(classifier(pred), truth_logits)}
            if lpips is not None:
                scores["lpips"] = lpips(pred, truth, normalize=True).flatten()
            row = {"image": path.name, "model": name, **{k: float(v) for k, v in scores.items()}}
            rows.append(row)
            caption = f"ΔE {row['delta_e00']:.2f} · PSNR {row['psnr']:.2f}"
            cells[name] = (*_save_views(pred, out, f"model{i}", stem, thumb), caption)
            if name in fid:
                fid[name].update(float_to_uint8(truth), real=True)
                fid[name].update(float_to_uint8(pred), real=False)
            if name in frechet_rows:
                frechet_rows[name].update(pred, truth)
        views.append({"image": path.name, "cells": cells})
        if index < grid_images:
            for name, image in [*outputs.items(), (TRUTH, truth)]:
                grid[name].append(_center_square(image, 128).cpu())
        rows.append({"image": path.name, "model": TRUTH, "colorfulness": float(colorfulness(truth))})
    means = {
        name: {k: sum(r[k] for r in group) / len(group) for k in METRICS if k in group[0]}
        for name in [*names, TRUTH]
        for group in [[r for r in rows if r["model"] == name]]
    }
    for name, metric in fid.items():
        means[name]["fid"] = float(metric.compute())
    for name, metric in frechet_rows.items():
        means[name][FRECHET_KEY] = float(metric.compute())
    grid_png = None
    if files and grid_images:
        columns = [torch.cat(grid[name]) for name in [*names, TRUTH]]
        grid_png = save_png(comparison_grid(columns, labels=[n[:20] for n in [*names, TRUTH]]), out / "grid.png")
    baseline_means = {name: means[name] for name in [GRAY, *(b.name for b in extra)]}
    learning = {c.name: learning_verdict(means[c.name], baseline_means, "delta_e00") for c in candidates}
    result = {"rows": rows, "means": means, "views": views, "models": names, "grid": grid_png}
    return {**result, "learning": learning}


# ---- reports ------------------------------------------------------------------------------------------


def _columns(means: dict[str, dict[str, float]]) -> list[str]:
    present = {k for values in means.values() for k in values}
    return [k for k in [*METRICS, "fid"] if k in present]


def _code_spans(text: str) -> str:
    """Markdown's `code` spans as HTML <code> (the notes are written for both formats)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def write_reports(result: dict[str, Any], out: Path, notes: Sequence[str]) -> dict[str, Path]:
    """Write metrics.csv, summary.md, results.json and index.html into ``out``; return their paths."""
    means, columns = result["means"], _columns(result["means"])
    headers = [METRICS.get(k, "FID ↓") for k in columns]
    table_rows = [[name, *(means[name].get(k) for k in columns)] for name in [*result["models"], TRUTH]]
    paths = {k: out / f for k, f in [("csv", "metrics.csv"), ("markdown", "summary.md"),
                                      ("json", "results.json"), ("html", "index.html")]}  # fmt: skip
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "model", *columns])
        writer.writeheader()
        writer.writerows(result["rows"])
        writer.writerows({"image": "mean", "model": name, **means[name]} for name in [*result["models"], TRUTH])
    notes = [*notes, *(f"{name}: {verdict_line(v)}" for name, v in result.get("learning", {}).items())]
    bullets = "\n".join(f"- {n}" for n in notes)
    paths["markdown"].write_text(
        f"# Evaluation\n\n{bullets}\n\n{markdown_table(['model', *headers], table_rows)}\n\n"
        "![gray | models | truth (center crops)](grid.png)\n"
    )
    summary = {"notes": list(notes), "means": means, "learning": result.get("learning", {})}
    paths["json"].write_text(json.dumps(summary, indent=2))
    head = ["image", *result["models"], TRUTH]
    grid_rows = []
    for view in result["views"]:
        cells = [html.escape(view["image"])]
        for name in head[1:]:
            full, thumb, caption = view["cells"][name]
            cells.append(f"<figure><a href='{full}'><img src='{thumb}' alt='{html.escape(name)}' loading='lazy'>"
                         f"</a><figcaption>{html.escape(caption)}</figcaption></figure>")  # fmt: skip
        grid_rows.append(cells)
    body = (
        "<ul>" + "".join(f"<li class='note'>{_code_spans(html.escape(n))}</li>" for n in notes) + "</ul>"
        + html_table(["model", *headers], table_rows)
        + "<h2>Images</h2><p class='note'>Click a thumbnail for the full-size image.</p>"
        + html_table([html.escape(h) for h in head], grid_rows, raw=True)
    )  # fmt: skip
    paths["html"].write_text(html_page("Colorization evaluation", body))
    return paths


def main(argv: Sequence[str]) -> dict[str, Any]:
    """CLI: ``python -m colorlab evaluate --ckpt A.ckpt [B.ckpt ...] --data DIR [-o OUT]``."""
    parser = argparse.ArgumentParser(prog="python -m colorlab evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--ckpt", nargs="+", required=True, help="checkpoints of any approach")
    parser.add_argument("--data", required=True, help="folder of colour photos (recursive), at any resolution")
    parser.add_argument("-o", "--out", help="output folder (default runs/evaluate/DATA-TIMESTAMP)")
    parser.add_argument("--names", nargs="+", help="row names, one per checkpoint (default: run names)")
    parser.add_argument("--size", type=int, help="longer side the models run at (default: each model's "
                        f"training resize from its run's config.yaml, else {DEFAULT_SIZE})")  # fmt: skip
    parser.add_argument("--limit", type=int, help="evaluate only the first N photos")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--lpips-backbone", help="local torchvision vgg16-397923af.pth for LPIPS")
    parser.add_argument("--fid-weights", help=f"local {INCEPTION_FILE} for FID")
    parser.add_argument("--baselines-from", help="run folder whose training split fits the mean-ab and lookup "
                        "baselines (default: the first checkpoint's run)")  # fmt: skip
    parser.add_argument("--no-frechet", action="store_true", help="skip the Fréchet EfficientNet distance")
    args = parser.parse_args(argv)

    files, bad = split_decodable(list_images(args.data, IMAGE_EXTENSIONS))
    files = files[: args.limit]
    if not files:
        raise SystemExit(f"no readable images under {args.data}")
    try:
        candidates = load_candidates(args.ckpt, args.names, args.size, args.device)
    except (FileNotFoundError, ValueError) as exc:  # CheckpointError is a ValueError: unsafe, empty, truncated
        parser.exit(2, f"error: {exc}\n")
    default_out = Path("runs") / "evaluate" / f"{Path(args.data).resolve().name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(args.out or default_out)
    out.mkdir(parents=True, exist_ok=True)
    lpips, lpips_note = load_lpips(args.lpips_backbone)
    inception, fid_note = load_inception(args.fid_weights)
    baselines, baselines_note = load_baselines(args.baselines_from or RunFolder.of(args.ckpt[0]).path)
    start = time.perf_counter()
    result = evaluate(candidates, files, out, args.device, lpips=lpips, fid_extractor=inception,
                      baselines=baselines, frechet=not args.no_frechet)  # fmt: skip
    notes = [
        f"data: {Path(args.data).resolve()} ({len(files)} photos at their original resolution"
        + (f"; {len(bad)} unreadable files skipped" if bad else "") + ")",
        *(f"{c.name}: `{p}`, runs at {c.describe()}" for c, p in zip(candidates, args.ckpt)),
        SEMANTIC_NOTE,
        baselines_note,
        *(note for note in (lpips_note, fid_note) if note),
        f"{time.perf_counter() - start:.0f} s on {args.device}",
    ]  # fmt: skip
    paths = write_reports(result, out, notes)
    print((out / "summary.md").read_text())
    print(f"report: {paths['html']}\nmetrics: {paths['csv']}")
    return result
