"""Reproduce the README results table: train every approach under one protocol on the real photos, then
write ``docs/results.md`` from the runs' ``results.json``.

    python scripts/results.py                 # all experiments below, two at a time, one thread each
    python scripts/results.py unet_l1 pix2pix # just these
    python scripts/results.py --table-only    # rebuild the table from the runs this script made

Protocol: ``experiments/results/photos_4min.yaml`` (or ``photos_4min_degraded.yaml`` for restoration):
train on ``$COLORLAB_DATA/train`` minus a seeded 10 % validation split (which picks the checkpoint) for 4
minutes of wall time, test the best checkpoint on the 33 photos of ``$COLORLAB_DATA/val`` (shorter side 96,
96x96 center crops). NoGAN's phases get 75 s each, the two stages of restore_then_colorize 2 minutes each.
Every row is judged against the trivial baselines (gray, training mean ab, L->ab lookup) on the same test split: "learning" says whether it beats the best of them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from colorlab.baselines import BASELINE_NAMES, verdict_line

REPO = Path(__file__).resolve().parents[1]
PHOTOS = "experiments/results/photos_4min.yaml"
DEGRADED = "experiments/results/photos_4min_degraded.yaml"
EXPERIMENTS = {
    # the CIFAR-100 study's nets, trained here on the photo protocol (CIFAR cannot be downloaded offline)
    "cifar100_cnn": [PHOTOS],
    "cifar100_vgg16": [PHOTOS],
    "unet_l1": [PHOTOS],
    "unet_effnet": [PHOTOS],
    "zhang_cic": [PHOTOS],
    "vae_unet": [PHOTOS],
    "bigcolor_ema": [PHOTOS],
    "pix2pix": [PHOTOS],
    "chromagan": [PHOTOS],
    "nogan_stable": [PHOTOS, "--trainer.max_time=00:00:01:15"],
    "nogan_artistic": [PHOTOS, "--trainer.max_time=00:00:01:15"],
    "restore_colorize": [DEGRADED],
    "restore_then_colorize": [DEGRADED, "--trainer.max_time=00:00:02:00"],
    "colorspace_lab": [PHOTOS],
    "colorspace_rgb": [PHOTOS],
    "colorspace_rgb_as_is": [PHOTOS],
    "colorspace_yuv": [PHOTOS],
    "colorspace_ycbcr": [PHOTOS],
    "colorspace_hsv": [PHOTOS],
}


def run(name: str) -> int:
    """Train + test one experiment under the protocol; the log goes to runs/results-logs/NAME.log."""
    args = []
    for item in EXPERIMENTS[name]:
        args += ["--config", item] if item.endswith(".yaml") else [item]
    log = REPO / "runs" / "results-logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLORLAB_DATA": os.environ.get("COLORLAB_DATA", str(REPO.parent / "shared/data/photos"))}
    command = [sys.executable, "-m", "colorlab", "experiment", "--config", f"experiments/{name}.yaml", *args]
    with log.open("w") as f:
        code = subprocess.call(command, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    print(f"{name}: exit {code}, log {log}", flush=True)
    return code


def protocol_results(name: str) -> dict | None:
    """results.json of the run this script made for ``name`` (its log names the run folder)."""
    log = REPO / "runs" / "results-logs" / f"{name}.log"
    folders = [line.split(":", 1)[1].strip() for line in log.read_text().splitlines()
               if line.startswith("run folder:")] if log.is_file() else []  # fmt: skip
    path = REPO / folders[-1] / "results.json" if folders else None
    return json.loads(path.read_text()) if path and path.is_file() else None


def _cell(values: dict, key: str, digits: int) -> str:
    value = values.get(key)
    return "" if value is None else f"{value:.{digits}f}"


def _learning(results: dict) -> str:
    """``yes (+0.42)`` / ``no (-0.10)`` on ΔE00 against the best baseline of the same run and test split."""
    verdict = (results.get("learning") or {}).get("delta_e00")
    if not verdict:
        return ""
    best = BASELINE_NAMES.get(verdict["best_baseline"], verdict["best_baseline"])
    return f"{'yes' if verdict['learning'] else 'no'} ({verdict['margin']:+.2f} vs {best})"


def table(names: list[str]) -> str:
    """The Markdown results table: test metrics of every run, whether it beats the best trivial baseline of the
    same test split, then the baselines' and the truth's own rows and the splits they were measured on."""
    lines = [
        (
            "| experiment | approach | PSNR (dB) ↑ | SSIM ↑ | ΔE00 ↓ | learning (ΔE00 vs best baseline) | "
            "colorfulness | colorfulness gap ↓ | Fréchet EffNet ↓ | selected on | epochs / steps | train time | "
            "hardware |"
        ),
        "|---" * 13 + "|",
    ]
    reference, splits = None, {}
    for name in names:
        results = protocol_results(name)
        if results is None:
            continue
        test = results["test"]
        reference = reference or results["reference"]
        splits = splits or results.get("splits", {})
        monitor = results.get("selection", {}).get("monitor", "val/delta_e00")
        lines.append(
            f"| `{name}` | {results['model_class']} | {_cell(test, 'psnr', 2)} | {_cell(test, 'ssim', 3)} | "
            f"{_cell(test, 'delta_e00', 2)} | {_learning(results)} | {_cell(test, 'colorfulness', 1)} | "
            f"{_cell(test, 'colorfulness_gap', 1)} | {_cell(test, 'frechet_effnet', 3)} | `{monitor}` | "
            f"{results['epochs']} / {results['steps']} | {results['fit_seconds'] / 60:.1f} min | "
            f"{results['hardware']} |"
        )
    if reference:
        for key, label in BASELINE_NAMES.items():
            values = reference.get(key)
            if values:
                lines.append(
                    f"| {label} | baseline | {_cell(values, 'psnr', 2)} | {_cell(values, 'ssim', 3)} | "
                    f"{_cell(values, 'delta_e00', 2)} | | {_cell(values, 'colorfulness', 1)} | "
                    f"{_cell(values, 'colorfulness_gap', 1)} | {_cell(values, 'frechet_effnet', 3)} | | - | - | - |"
                )
        truth = reference["truth"]["colorfulness"]
        lines.append(f"| ground truth | - | | | | | {truth:.1f} | | | | - | - | - |")
    lines += ["", *(f"- {name}: {split['size']} images, {split['role']}" for name, split in splits.items())]
    return "\n".join(lines) + "\n"


def verdicts(names: list[str]) -> str:
    """One learning line per run (the report sentence), for the README text under the table."""
    lines = []
    for name in names:
        results = protocol_results(name)
        verdict = (results or {}).get("learning", {}).get("delta_e00")
        if results is not None:
            lines.append(f"- `{name}`: {verdict_line(verdict)}")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the chosen experiments (two at a time) and write docs/results.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(EXPERIMENTS), help="experiments to run")
    parser.add_argument("--jobs", type=int, default=2, help="experiments at a time (one thread each)")
    parser.add_argument("--table-only", action="store_true", help="only rebuild docs/results.md")
    args = parser.parse_args()
    unknown = set(args.names) - set(EXPERIMENTS)
    if unknown:
        parser.error(f"unknown experiments {sorted(unknown)}; choose from {list(EXPERIMENTS)}")
    if not args.table_only:
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(run, args.names))
    out = REPO / "docs" / "results.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(table(list(EXPERIMENTS)) + "\n" + verdicts(list(EXPERIMENTS)))
    print(f"table: {out}")


if __name__ == "__main__":
    main()
