"""The package's layers (pyproject's import-linter contract) and no import circle anywhere, counting imports
inside functions: what `make lint` enforces, checked here too so a circle fails the test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]


def test_layers_contract_is_kept():
    out = subprocess.run([Path(sys.executable).with_name("lint-imports")], capture_output=True, text=True,
                         cwd=REPO, check=False)  # fmt: skip
    assert out.returncode == 0 and "1 kept, 0 broken" in out.stdout, out.stdout[-2000:]


def test_no_import_circle():
    graph = grimp.build_graph("colorlab")
    circles = sorted(
        {tuple(sorted((a, b))) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
         if graph.chain_exists(importer=b, imported=a)}
    )  # fmt: skip
    assert circles == []
