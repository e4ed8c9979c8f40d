"""Reports: Markdown tables and plain HTML pages, the shared metric columns, and the experiment report
(``report.md``, ``test_metrics.csv``, ``results.json``)."""

from __future__ import annotations

import csv
import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from colorlab.baselines import BASELINE_NAMES, verdict_line
from colorlab.metrics import HIGHER_IS_BETTER, METRIC_TITLES
from colorlab.runs.folder import REPORT_FILES

Cell = str | float | int | None

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; position: sticky; top: 0; text-align: center; }
figure { margin: 0; }
figure img { display: block; height: 160px; }
figcaption { font-size: 12px; color: #555; text-align: left; }
.note { color: #555; }
"""


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file, so a kill mid-write leaves the old file or none."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path


def format_cell(value: Cell, digits: int = 3) -> str:
    """Numbers to ``digits`` decimals, None/NaN to an empty cell, anything else as text."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Cell]], digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_cell(c, digits) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(
    header: Sequence[str], rows: Sequence[Sequence[Cell]], digits: int = 3, raw: bool = False
) -> str:
    """An HTML table; cells are escaped unless ``raw`` (cells that already hold HTML, e.g. images)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)

    def cell(value: Cell) -> str:
        text = format_cell(value, digits)
        return text if raw else html.escape(text)

    body = "\n".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def html_page(title: str, body: str) -> str:
    """A self-contained HTML page (inline CSS, no scripts, opens from the file system)."""
    return (
        "<!doctype html>\n<html lang='en'>\n<head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


# ---- metrics in reports -------------------------------------------------------------------------------

# Column titles of the shared metrics, in table order; other metrics follow under their own names.
# Metric name endings and whether a larger value is better; others (colorfulness, lr, adversarial losses
# such as loss_critic) have no "best". Only the total loss the optimizer minimises ("loss") has one.
_DIRECTIONS = {**HIGHER_IS_BETTER, "agree": True, "/loss": False}
# Labels of the reference rows an experiment reports next to its model, in report order.
REFERENCE_LABELS = {**BASELINE_NAMES, "truth": "ground truth"}


def higher_is_better(metric: str) -> bool | None:
    """True/False when larger/smaller values of ``metric`` are better, None when neither."""
    return next((better for end, better in _DIRECTIONS.items() if metric.endswith(end)), None)


def metric_columns(rows: Sequence[dict[str, float]]) -> list[str]:
    """The metrics any of ``rows`` has: the shared ones in :data:`METRIC_TITLES` order, then the rest sorted."""
    present = {m for row in rows for m in row}
    return [m for m in METRIC_TITLES if m in present] + sorted(present - set(METRIC_TITLES))


# ---- the experiment report ----------------------------------------------------------------------------


def experiment_rows(results: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """``(label, test metrics)``: the tested model, then every reference (baselines, the truth)."""
    reference = results.get("reference", {})
    keys = [k for k in REFERENCE_LABELS if k in reference] + [
        k for k in reference if k not in REFERENCE_LABELS
    ]
    return [(f"{results['name']} (best checkpoint)", results["test"])] + [
        (REFERENCE_LABELS.get(key, key), reference[key]) for key in keys
    ]


def judgement_lines(results: dict[str, Any]) -> list[str]:
    """Report lines: the three splits with sizes and roles, the selection metric, and learning yes/no."""
    lines = ["## splits", ""]
    for name, split in results.get("splits", {}).items():
        lines.append(f"- **{name}** ({split['size']} images): {split['role']}; {split['source']}")
    selection = results.get("selection")
    if selection:
        lines.append(f"- checkpoint selected on `{selection['monitor']}` ({selection['mode']})")
    fit = results.get("baselines")
    if fit:
        lines.append(
            f"- trivial baselines fitted on {fit['source']} ({fit['pixels']} pixels; `{fit['file']}`)"
        )
    lines += ["", "## verdict", ""]
    lines += [f"- {verdict_line(v)}" for v in results.get("learning", {}).values()]
    return [*lines, ""]


def write_experiment_report(run_dir: Path, results: dict[str, Any]) -> dict[str, Path]:
    """``report.md``, ``test_metrics.csv`` and ``results.json`` of an experiment's results; returns their paths.

    ``results`` is the one results schema of :func:`colorlab.training.experiment.run_experiment`.
    """
    rows = experiment_rows(results)
    metrics = metric_columns([values for _, values in rows])
    paths = {key: run_dir / REPORT_FILES[key] for key in ("report", "csv", "json")}
    with paths["csv"].open("w", newline="") as f:
        csv.writer(f).writerows(
            [["model", *metrics], *([label, *(v.get(m, "") for m in metrics)] for label, v in rows)]
        )
    table = markdown_table(["model (test split)", *(METRIC_TITLES.get(m, m) for m in metrics)],
                           [[label, *(v.get(m) for m in metrics)] for label, v in rows])  # fmt: skip
    lines = [
        f"# {results['name']} / {results['version']}",
        "",
        f"- approach: `{results['model_class']}`; data: `{results['data_class']}`",
        (
            f"- trained {results['epochs']} epochs, {results['steps']} steps in {results['fit_seconds']:.0f} s "
            f"on {results['hardware']}"
        ),
        f"- best checkpoint: `{results['best_checkpoint']}`",
        "",
        table,
        "",
        *judgement_lines(results),
    ]
    phases = results.get("phases", [])
    if len(phases) > 1:
        metrics = metric_columns([phase["test"] for phase in phases])
        header = [
            "phase",
            "epochs",
            "steps",
            "fit (s)",
            *(METRIC_TITLES.get(m, m) for m in metrics),
            "checkpoint",
        ]
        body = [[p["name"], p["epochs"], p["steps"], round(p["fit_seconds"]), *(p["test"].get(m) for m in metrics),
                 f"`{p['handover_checkpoint']}`"] for p in phases]  # fmt: skip
        lines += [
            "## phases (test metrics of the checkpoint each phase hands on)",
            "",
            markdown_table(header, body),
            "",
        ]
    lines += [f"![input | prediction | truth]({REPORT_FILES['grid']})", ""]
    paths["report"].write_text("\n".join(lines))
    write_text_atomic(paths["json"], json.dumps(results, indent=2))
    return paths
