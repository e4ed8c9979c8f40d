"""The evaluation's report: ``metrics.csv`` (per image and mean), ``summary.md``, ``evaluation.json`` and an
``index.html`` page (gray | models | truth thumbnails linking to the full-size images), from
:func:`colorlab.inference.evaluation.evaluate`'s result."""

from __future__ import annotations

import csv
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from colorlab.baselines import verdict_line
from colorlab.inference.evaluation import TRUTH
from colorlab.metrics import METRIC_TITLES
from colorlab.report import html_page, html_table, markdown_table
from colorlab.runs.folder import EVALUATION_JSON


def _columns(means: dict[str, dict[str, float]]) -> list[str]:
    present = {k for values in means.values() for k in values}
    return [k for k in METRIC_TITLES if k in present]


def _code_spans(text: str) -> str:
    """Markdown's `code` spans as HTML <code> (the notes are written for both formats)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def write_reports(result: dict[str, Any], out: Path, notes: Sequence[str]) -> dict[str, Path]:
    """Write metrics.csv, summary.md, evaluation.json and index.html into ``out``; return their paths."""
    means, columns = result["means"], _columns(result["means"])
    headers = [METRIC_TITLES[k] for k in columns]
    table_rows = [[name, *(means[name].get(k) for k in columns)] for name in [*result["models"], TRUTH]]
    paths = {k: out / f for k, f in [("csv", "metrics.csv"), ("markdown", "summary.md"),
                                      ("json", EVALUATION_JSON), ("html", "index.html")]}  # fmt: skip
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "model", *columns])
        writer.writeheader()
        writer.writerows(result["rows"])
        writer.writerows(
            {"image": "mean", "model": name, **means[name]} for name in [*result["models"], TRUTH]
        )
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
