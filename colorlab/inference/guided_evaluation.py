"""What guidance buys, at full resolution: scores against the number of hints, and with reference photos.

* **Hint curve** (``evaluate --hints``): for every photo and every N in :data:`HINT_COUNTS`, N hints are sampled
  from the truth with a fixed seed (:func:`colorlab.guidance.sample_picture_hints`; the hints of a smaller N
  are the first ones of a larger N), given to each method through the pipeline exactly as ``colorize --hints``
  gives them, and the full-resolution output is scored (ΔE00, PSNR). A model that cannot take hints is scored
  once and drawn flat. ``hint_delta_e00`` is the mean ΔE00 between the output and the hint's colour at the
  hinted pixels.
* **References** (``evaluate --reference``): each photo colorized with the truth itself as reference (the upper
  bound) and with the most similar *other* photo of the folder (cosine similarity of pooled ImageNet
  EfficientNet features of the colour photos: the nearest scene kind the folder holds).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from colorlab.color import rgb_to_lab
from colorlab.guidance import GuidanceError, sample_picture_hints
from colorlab.inference.evaluation import as_batch
from colorlab.inference.guides import read_reference
from colorlab.inference.pictures import MAX_MEGAPIXELS, read_picture
from colorlab.inference.pipeline import Colorizer
from colorlab.metrics import delta_e_ciede2000, image_scores

HINT_COUNTS = (0, 1, 2, 5, 10, 20, 50)
CURVE_METRICS = ("delta_e00", "psnr")


def _scores(out: np.ndarray, truth: torch.Tensor, hints: Sequence[Any] = ()) -> dict[str, float]:
    pred = as_batch(out, None)
    scores = {k: float(v) for k, v in image_scores(pred, truth).items() if k in CURVE_METRICS}
    if hints:
        delta = delta_e_ciede2000(rgb_to_lab(pred), rgb_to_lab(truth))[0]
        scores["hint_delta_e00"] = float(np.mean([delta[int(h.y), int(h.x)].item() for h in hints]))
    return scores


def hint_curve(
    colorizers: Sequence[Colorizer], files: Sequence[Path], counts: Sequence[int] = HINT_COUNTS, seed: int = 0,
    patch: int = 1, max_megapixels: float = MAX_MEGAPIXELS,
) -> list[dict[str, Any]]:  # fmt: skip
    """Per-image rows ``{image, model, hints, delta_e00, psnr[, hint_delta_e00]}`` of every colorizer at every
    hint count; photo ``i`` uses seed ``seed + i``."""
    rows: list[dict[str, Any]] = []
    for index, path in enumerate(tqdm(files, desc="hint curve", unit="img")):
        picture = read_picture(path, max_megapixels)
        truth = as_batch(np.array(picture.rgb), None)
        lab = rgb_to_lab(truth)[0].permute(1, 2, 0).numpy()
        unguided: dict[str, dict[str, float]] = {}
        for count in counts:
            hints = sample_picture_hints(lab, count, seed + index)
            for c in colorizers:
                if c.name in unguided:
                    rows.append({"image": path.name, "model": c.name, "hints": count, **unguided[c.name]})
                    continue
                try:
                    out = c.guided(picture, hints, patch, dtype=torch.float32)
                    scores = _scores(out, truth, hints)
                except GuidanceError:  # a model without hint inputs: its hint-free score at every N
                    unguided[c.name] = _scores(c.guided(picture, dtype=torch.float32), truth)
                    scores = unguided[c.name]
                rows.append({"image": path.name, "model": c.name, "hints": count, **scores})
    return rows


def curve_means(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean of each metric per (model, hints), in the rows' order."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["hints"]), []).append(row)
    means = []
    for (model, hints), group in groups.items():
        keys = [k for k in (*CURVE_METRICS, "hint_delta_e00") if all(k in r for r in group)]
        means.append({"model": model, "hints": hints, "images": len(group),
                      **{k: sum(r[k] for r in group) / len(group) for k in keys}})  # fmt: skip
    return means


def write_curve(rows: Sequence[dict[str, Any]], out: Path) -> dict[str, Path]:
    """``hint_curve.csv`` (means), ``hint_curve_images.csv`` (per image) and ``hint_curve.png`` (ΔE00 and PSNR
    against the number of hints) in ``out``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    means = curve_means(rows)
    paths = {
        "csv": out / "hint_curve.csv",
        "images_csv": out / "hint_curve_images.csv",
        "png": out / "hint_curve.png",
    }
    for path, table in ((paths["csv"], means), (paths["images_csv"], rows)):
        fields = list(dict.fromkeys(k for r in table for k in r))
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(table)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric, title in zip(axes, CURVE_METRICS, ("ΔE00 ↓", "PSNR (dB) ↑")):
        for model in dict.fromkeys(m["model"] for m in means):
            points = [(m["hints"], m[metric]) for m in means if m["model"] == model]
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=model)
        axis.set_xscale("symlog", linthresh=1)
        axis.set_xlabel("hints sampled from the truth")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(paths["png"], dpi=110)
    plt.close(figure)
    return paths


# ---- references ------------------------------------------------------------------------------------------------


@torch.no_grad()
def same_kind_pairs(files: Sequence[Path], max_megapixels: float = MAX_MEGAPIXELS) -> dict[Path, Path]:
    """Each photo's most similar *other* photo (pooled ImageNet EfficientNet features, cosine)."""
    from colorlab.models.features import PooledImageNetFeatures

    features = PooledImageNetFeatures().eval()
    vectors = torch.cat(
        [features(as_batch(np.array(read_picture(p, max_megapixels).rgb), None)) for p in files]
    )
    vectors = torch.nn.functional.normalize(vectors, dim=1)
    similarity = vectors @ vectors.T
    similarity.fill_diagonal_(-2.0)
    return {path: files[int(similarity[i].argmax())] for i, path in enumerate(files)}


def reference_scores(
    colorizers: Sequence[Colorizer], files: Sequence[Path], max_megapixels: float = MAX_MEGAPIXELS
) -> list[dict[str, Any]]:
    """Per-image rows ``{image, model, reference, reference_image, delta_e00, psnr}``: every colorizer with no
    reference (``none``, for models without reference input), the truth and the same-kind photo."""
    pairs = same_kind_pairs(files, max_megapixels) if len(files) > 1 else {}
    rows: list[dict[str, Any]] = []
    for path in tqdm(files, desc="references", unit="img"):
        picture = read_picture(path, max_megapixels)
        truth = as_batch(np.array(picture.rgb), None)
        references = {"truth": path, **({"same kind": pairs[path]} if path in pairs else {})}
        for c in colorizers:
            for kind, ref_path in references.items():
                reference = read_reference(ref_path, max_megapixels)
                try:
                    out = c.guided(picture, reference=reference, dtype=torch.float32)
                except GuidanceError:
                    out, kind, ref_path = c.guided(picture, dtype=torch.float32), "none", None
                rows.append({"image": path.name, "model": c.name, "reference": kind,
                             "reference_image": ref_path.name if ref_path else "", **_scores(out, truth)})  # fmt: skip
                if kind == "none":
                    break
    return rows


def write_reference_table(rows: Sequence[dict[str, Any]], out: Path) -> Path:
    """``reference_scores.csv``: mean ΔE00 and PSNR per (model, reference kind); per-image rows beside it."""
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["reference"]), []).append(row)
    path = out / "reference_scores.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "reference", "images", *CURVE_METRICS])
        for (model, kind), group in groups.items():
            writer.writerow(
                [model, kind, len(group), *(sum(r[k] for r in group) / len(group) for k in CURVE_METRICS)]
            )
    with (out / "reference_scores_images.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
