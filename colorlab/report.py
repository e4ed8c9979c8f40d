"""Small writers shared by the evaluation and comparison reports: Markdown tables and plain HTML pages."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

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


def html_table(header: Sequence[str], rows: Sequence[Sequence[Cell]], digits: int = 3, raw: bool = False) -> str:
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
