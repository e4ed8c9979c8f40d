"""Reading a run folder back (``{root}/{name}/{version}``): its config, checkpoints, metrics and report.

Plain files and YAML only, so inference commands read a run's training scale without importing Lightning.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from colorlab.runs.checkpoints import CheckpointError, load_checkpoint

log = logging.getLogger(__name__)

# Where runs, sweeps, evaluations and comparisons go unless a command is told otherwise (relative to the
# working directory).
RUNS_ROOT = Path("runs")

# Checkpoint names in a run's checkpoints/ folder: the best by the run's monitor (Lightning's format string)
# and the always-fresh one that resume reads.
CHECKPOINT_DIR = "checkpoints"
BEST_CHECKPOINT_PREFIX = "best-"
BEST_CHECKPOINT = BEST_CHECKPOINT_PREFIX + "{epoch:03d}-{step:06d}"
LAST_CHECKPOINT = "last"
# The lowest-val-ΔE00 checkpoint, kept beside the run's own selection when that is another metric.
DELTA_E00_CHECKPOINT = "val_delta_e00-{epoch:03d}-{step:06d}"
CHECKPOINT_SUFFIX = ".ckpt"
# The trivial baselines fitted on a run's training split (colorlab.baselines).
BASELINES_FILE = "baselines.json"
# What ``evaluate`` writes as JSON: a different schema from a run's results.json, so a different name.
EVALUATION_JSON = "evaluation.json"

# The files an experiment's report consists of, in its run folder (colorlab.report writes them).
REPORT_FILES = {
    "report": "report.md",
    "csv": "test_metrics.csv",
    "json": "results.json",
    "grid": "test_grid.png",
}


class NothingToResume(FileNotFoundError):
    """``--resume`` found no interrupted run (or only one without a readable checkpoint)."""


class RunFolder:
    """Reads a run folder (``{root}/{name}/{version}``, or a phase's ``.../{version}/{phase}``).

    Built from the folder or from any checkpoint inside it; every command that looks into a run uses this
    instead of re-deriving the layout.
    """

    CONFIG, METRICS, RESULTS, PHASES = "config.yaml", "metrics.csv", REPORT_FILES["json"], "phases.json"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, path: str | os.PathLike) -> RunFolder:
        """The run folder that holds ``path`` (a run folder, a phase folder or a checkpoint file in one)."""
        path = Path(path).resolve()
        if path.is_file() or path.suffix == ".ckpt":
            path = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return cls(path)

    @property
    def name(self) -> str:
        """The experiment name (for a phase folder: the experiment's, with the phase appended)."""
        if self.path.parent.joinpath(self.PHASES).is_file():
            return f"{self.path.parents[1].name}/{self.path.name}"
        return self.path.parent.name

    @property
    def version(self) -> str:
        """The run's version folder name."""
        return self.path.parent.name if self.path.parent.joinpath(self.PHASES).is_file() else self.path.name

    @property
    def config(self) -> dict[str, Any]:
        """The run's saved ``config.yaml`` (empty when the run wrote none, e.g. a bare checkpoint)."""
        path = self.path / self.CONFIG
        if not path.is_file():
            return {}
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DamagedRunFile(f"{path} is damaged ({reason}); restore it or remove it") from None
        if not isinstance(config, dict):
            kind = type(config).__name__
            raise DamagedRunFile(f"{path} is damaged: it holds a {kind}, not a run configuration")
        return config

    def data_arg(self, key: str) -> Any:
        """``data.init_args.<key>`` of the saved config (None when absent)."""
        data = self.config.get("data") or {}
        args = data.get("init_args", data) if isinstance(data, dict) else {}
        return args.get(key) if isinstance(args, dict) else None

    @property
    def checkpoint_dir(self) -> Path:
        """The run's ``checkpoints/`` folder."""
        return self.path / CHECKPOINT_DIR

    @property
    def checkpoints(self) -> list[Path]:
        """Every checkpoint of the run, oldest first."""
        return sorted(self.checkpoint_dir.glob(f"*{CHECKPOINT_SUFFIX}"), key=lambda p: p.stat().st_mtime)

    @property
    def best_checkpoint(self) -> Path | None:
        """The newest ``best-*.ckpt`` (None if there is none)."""
        best = [p for p in self.checkpoints if p.name.startswith(BEST_CHECKPOINT_PREFIX)]
        return best[-1] if best else None

    @property
    def last_checkpoint(self) -> Path | None:
        """``last.ckpt`` when present."""
        path = self.checkpoint_dir / (LAST_CHECKPOINT + CHECKPOINT_SUFFIX)
        return path if path.is_file() else None

    @property
    def metrics_csv(self) -> Path:
        return self.path / self.METRICS

    def report_file(self, key: str) -> Path:
        """A file of the experiment report: ``report``, ``csv``, ``json`` or ``grid`` (see REPORT_FILES)."""
        return self.path / REPORT_FILES[key]

    @property
    def results(self) -> dict[str, Any] | None:
        """``results.json`` written when the experiment finished (None while running or interrupted)."""
        return _read_json(self.path / self.RESULTS)

    @property
    def phases(self) -> dict[str, Any] | None:
        """``phases.json`` of a multi-phase run (None for a single-phase run)."""
        return _read_json(self.path / self.PHASES)

    @property
    def finished(self) -> bool:
        """Whether the experiment ran to its report."""
        return self.results is not None

    def phase_folder(self, phase: str) -> RunFolder:
        """The folder of phase ``phase`` of a multi-phase run; ``""`` is the run folder itself."""
        return RunFolder(self.path / phase) if phase else self

    def resume_checkpoint(self) -> Path | None:
        """``last.ckpt`` when it loads, else the newest other checkpoint of the run that does; warns about
        each one skipped because it is empty, truncated or unsafe. None when no checkpoint is readable.

        ``last.ckpt`` comes first even when a ``best-*`` file is newer: it is written mid-epoch, where a
        resume continues bitwise, while Lightning restores end-of-epoch checkpoints one logging step off.
        """

        newest_first = sorted(
            self.checkpoints, key=lambda p: (p.name == "last.ckpt", p.stat().st_mtime), reverse=True
        )
        for path in newest_first:
            try:
                load_checkpoint(path)
            except (OSError, CheckpointError) as exc:
                log.warning("skipping %s: %s", path, exc)
                continue
            if path != newest_first[0]:
                log.warning("resuming from %s, the newest readable checkpoint of %s", path.name, self.path)
            return path
        return None

    @classmethod
    def interrupted(cls, root: str | os.PathLike, name: str) -> RunFolder:
        """The newest run of ``name`` that did not finish (no ``results.json``); :class:`NothingToResume` if
        every run finished or there is none."""
        runs = cls.runs_of(root, name)
        unfinished = [run for run in runs if not run.finished]
        if not unfinished:
            detail = f"all {len(runs)} run(s) finished" if runs else "no runs"
            raise NothingToResume(f"nothing to resume: {detail} under {Path(root) / name}")
        return unfinished[-1]

    @classmethod
    def runs_of(cls, root: str | os.PathLike, name: str) -> list[RunFolder]:
        """Every run of experiment ``name`` under ``root``, oldest first (versions sort by time)."""
        folder = Path(root) / name
        dirs = (
            sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name)
            if folder.is_dir()
            else []
        )
        return [cls(p) for p in dirs]


class DamagedRunFile(ValueError):
    """A run folder's own file (results.json, phases.json, config.yaml) that cannot be read back."""


def _read_json(path: Path) -> Any:
    """The JSON in ``path`` (None when there is no file; a clear error when it is damaged)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DamagedRunFile(f"{path} is not valid JSON ({exc}); was the run killed while writing it? "
                         "Delete the file to treat the run as unfinished.") from exc  # fmt: skip
