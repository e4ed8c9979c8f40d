"""Comparing runs from their CSV logs, no W&B needed: per run its curves, last/best validation values and
test metrics; one report (``compare.md``, ``index.html``, ``final_metrics.csv``, one PNG of curves per metric)."""

from __future__ import annotations

import csv
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorlab.report import METRIC_TITLES, higher_is_better, html_page, html_table, markdown_table
from colorlab.runs.folder import RunFolder
from colorlab.visualize import plot_curves


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
    """Parse the run's ``metrics.csv`` (sparse rows: each metric is logged at its own steps)."""
    run_folder = RunFolder(folder)
    path = run_folder.metrics_csv
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.csv in {folder} (is it a run folder runs/NAME/VERSION?)")
    run = RunLog(name or "/".join(folder.resolve().parts[-2:]), folder)
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            run.steps = max(run.steps, step)
            values = {
                k: float(v) for k, v in row.items() if k not in ("epoch", "step") and v not in ("", None)
            }
            if row.get("epoch") and any(
                not k.startswith("test/") for k in values
            ):  # test rows: epoch after fit
                run.epochs = max(run.epochs, int(float(row["epoch"])) + 1)
            for key, value in values.items():
                run.series.setdefault(key, []).append((step, value))
    # Test metrics: the experiment runner's results.json (best checkpoint), else the test rows of the log.
    run.test = {
        m.removeprefix("test/"): points[-1][1] for m, points in run.series.items() if m.startswith("test/")
    }
    results = run_folder.results
    if results is not None:
        run.test.update({k: float(v) for k, v in results.get("test", {}).items()})
    return run


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders: each path itself when it holds metrics.csv, else its sub-folders that do (sorted)."""
    folders: list[Path] = []
    for path in map(Path, paths):
        if RunFolder(path).metrics_csv.is_file():
            folders.append(path)
            continue
        children = sorted(p.parent for p in path.glob(f"*/{RunFolder.METRICS}"))
        if not children:
            raise FileNotFoundError(f"no metrics.csv in {path} or its sub-folders")
        folders.extend(children)
    return folders


def final_table(runs: Sequence[RunLog]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows: per run its length, the last and best validation values and any test metrics."""
    val = [m for m in METRIC_TITLES if any(f"val/{m}" in run.series for run in runs)]
    test = [m for m in METRIC_TITLES if any(m in run.test for run in runs)]
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


def compare_runs(runs: Sequence[RunLog], out: Path) -> dict[str, Path]:
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
