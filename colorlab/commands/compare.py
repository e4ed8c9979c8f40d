"""``python -m colorlab compare RUN_DIR...``: one report of several runs from their CSV logs, no W&B needed.

Each ``RUN_DIR`` is a run folder ``runs/NAME/VERSION`` holding the CSVLogger's ``metrics.csv`` (or an
experiment folder ``runs/NAME``, meaning each of its runs). Writes ``compare.md``, ``index.html``,
``final_metrics.csv`` and one PNG of curves per metric (every run on the same axes) into the output folder.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorlab.metrics import FRECHET_KEY, HIGHER_IS_BETTER
from colorlab.report import html_page, html_table, markdown_table

# Metric name endings and whether a larger value is better; others (colorfulness, lr, adversarial losses
# such as loss_critic) have no "best". Only the total loss the optimizer minimises ("loss") has one.
_DIRECTIONS = {**HIGHER_IS_BETTER, "agree": True, "/loss": False}
TABLE_METRICS = ("psnr", "ssim", "delta_e00", "lpips", "colorfulness", "colorfulness_gap", FRECHET_KEY)


def higher_is_better(metric: str) -> bool | None:
    """True/False when larger/smaller values of ``metric`` are better, None when neither."""
    return next((better for end, better in _DIRECTIONS.items() if metric.endswith(end)), None)


@dataclass
class RunLog:
    """One run's CSV log: per metric the ``(step, value)`` points, plus test results when the run has them."""

    name: str
    folder: Path
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    epochs: int = 0
    steps: int = 0
    test: dict[str, float] = field(default_factory=dict)

    def last(self, metric: str) -> float | None:
        """The last logged value of ``metric``."""
        points = self.series.get(metric)
        return points[-1][1] if points else None

    def best(self, metric: str) -> float | None:
        """The best logged value of ``metric`` (None when it has no direction or was not logged)."""
        points, better = self.series.get(metric), higher_is_better(metric)
        if not points or better is None:
            return None
        values = [v for _, v in points]
        return max(values) if better else min(values)


def read_run(folder: Path, name: str | None = None) -> RunLog:
    """Parse ``folder/metrics.csv`` (sparse rows: each metric is logged at its own steps)."""
    path = folder / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.csv in {folder} (is it a run folder runs/NAME/VERSION?)")
    run = RunLog(name or "/".join(folder.resolve().parts[-2:]), folder)
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            run.steps = max(run.steps, step)
            values = {k: float(v) for k, v in row.items() if k not in ("epoch", "step") and v not in ("", None)}
            if row.get("epoch") and any(not k.startswith("test/") for k in values):  # test rows: epoch after fit
                run.epochs = max(run.epochs, int(float(row["epoch"])) + 1)
            for key, value in values.items():
                run.series.setdefault(key, []).append((step, value))
    # Test metrics: the experiment runner's results.json (best checkpoint), else the test rows of the log.
    run.test = {m.removeprefix("test/"): points[-1][1] for m, points in run.series.items() if m.startswith("test/")}
    results = folder / "results.json"
    if results.is_file():
        run.test.update({k: float(v) for k, v in json.loads(results.read_text()).get("test", {}).items()})
    return run


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders: each path itself when it holds metrics.csv, else its sub-folders that do (sorted)."""
    folders: list[Path] = []
    for path in map(Path, paths):
        if (path / "metrics.csv").is_file():
            folders.append(path)
            continue
        children = sorted(p.parent for p in path.glob("*/metrics.csv"))
        if not children:
            raise FileNotFoundError(f"no metrics.csv in {path} or its sub-folders")
        folders.extend(children)
    return folders


def plot_curves(runs: Sequence[RunLog], out: Path) -> dict[str, Path]:
    """One PNG per metric with a line per run (x: optimizer step); returns ``{metric: png}``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    order = {"val": 0, "train": 1}  # then anything else (learning rates); test values are one point: table only
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


def final_table(runs: Sequence[RunLog]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows: per run its length, the last and best validation values and any test metrics."""
    val = [m for m in TABLE_METRICS if any(f"val/{m}" in run.series for run in runs)]
    test = [m for m in TABLE_METRICS if any(m in run.test for run in runs)]
    header = ["run", "epochs", "steps"]
    header += [f"val/{m} {'last' if higher_is_better(m) is None else 'last / best'}" for m in val]
    header += [f"test/{m}" for m in test]
    rows = []
    for run in runs:
        cells: list[Any] = [run.name, run.epochs, run.steps]
        for m in val:
            last, best = run.last(f"val/{m}"), run.best(f"val/{m}")
            cells.append("" if last is None else f"{last:.3f}" + ("" if best is None else f" / {best:.3f}"))
        cells += [run.test.get(m) for m in test]
        rows.append(cells)
    return header, rows


def write_report(runs: Sequence[RunLog], out: Path) -> dict[str, Path]:
    """Curves, ``final_metrics.csv``, ``compare.md`` and ``index.html`` in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    pngs = plot_curves(runs, out / "curves")
    header, rows = final_table(runs)
    paths = {"csv": out / "final_metrics.csv", "markdown": out / "compare.md", "html": out / "index.html"}
    with paths["csv"].open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    sources = [f"- `{run.name}`: {run.folder.resolve()}" for run in runs]
    figures = [f"![{m}](curves/{p.name})" for m, p in pngs.items()]
    paths["markdown"].write_text("\n\n".join(
        ["# Run comparison", "\n".join(sources), markdown_table(header, rows), "## Curves", *figures]) + "\n")  # fmt: skip
    body = (
        "<ul>" + "".join(f"<li>{html.escape(run.name)}: {html.escape(str(run.folder.resolve()))}</li>" for run in runs)
        + "</ul>" + html_table(header, rows) + "<h2>Curves</h2>"
        + "".join(f"<img src='curves/{p.name}' alt='{html.escape(m)}'>" for m, p in pngs.items())
    )  # fmt: skip
    paths["html"].write_text(html_page("Run comparison", body))
    return paths


def main(argv: Sequence[str]) -> dict[str, Path]:
    """CLI: ``python -m colorlab compare RUN_DIR [RUN_DIR ...] [-o OUT] [--names ...]``."""
    parser = argparse.ArgumentParser(prog="python -m colorlab compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("runs", nargs="+", help="run folders runs/NAME/VERSION (or runs/NAME for all its runs)")
    parser.add_argument("-o", "--out", help="output folder (default runs/compare/TIMESTAMP)")
    parser.add_argument("--names", nargs="+", help="labels, one per run folder found (default NAME/VERSION)")
    args = parser.parse_args(argv)
    folders = find_runs(args.runs)
    if args.names and len(args.names) != len(folders):
        raise SystemExit(f"{len(folders)} runs found but {len(args.names)} names given")
    runs = [read_run(folder, name) for folder, name in zip(folders, args.names or [None] * len(folders))]
    paths = write_report(runs, Path(args.out or Path("runs") / "compare" / time.strftime("%Y%m%d-%H%M%S")))
    print(paths["markdown"].read_text())
    print(f"report: {paths['html']}")
    return paths
