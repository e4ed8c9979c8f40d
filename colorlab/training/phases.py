"""Multi-phase experiments: a YAML's ``run.phases`` lists fits that run in order, each from the last one's weights.

Each phase is a name plus config overrides in dotted form, applied on top of the YAML (and under the
command line's own overrides), e.g. DeOldify's NoGAN::

    run:
      phases:
        - name: generator
          overrides: {model.init_args.phase: generator, trainer.max_epochs: 4}
        - name: critic
          overrides: {model.init_args.phase: critic, trainer.max_epochs: 1}

Phase ``name`` runs in ``{run_dir}/{name}/`` (its own checkpoints, CSV log and config.yaml). The run folder's
``phases.json`` records the finished phases, so ``--resume`` skips them and continues the interrupted one.
A YAML without ``run.phases`` is a run of one phase, named ``""``, whose folder is the run folder itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorlab.report import write_text_atomic
from colorlab.runs.checkpoints import load_checkpoint
from colorlab.runs.folder import RunFolder
from colorlab.training.config import override_args
from colorlab.training.runs import is_rank_zero


@dataclass(frozen=True)
class Phase:
    """One fit of a multi-phase experiment: a folder name and the config overrides it applies."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def argv(self) -> list[str]:
        """The overrides as command-line arguments (strings as they are, other values JSON-encoded)."""
        return override_args(self.overrides)


def parse_phases(raw: list[dict[str, Any]]) -> list[Phase]:
    """Validate the YAML's ``run.phases`` entries (``{name, overrides}``) and build :class:`Phase` objects."""
    phases = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise TypeError(f"run.phases[{i}] needs a 'name' (and optional 'overrides'), got {entry!r}")
        unknown = set(entry) - {"name", "overrides"}
        if unknown:
            raise ValueError(f"run.phases[{i}] ({entry['name']}) has unknown keys {sorted(unknown)}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", entry["name"]):
            raise ValueError(
                f"phase name {entry['name']!r} must be a plain folder name (letters, digits, _ . -)"
            )
        overrides = entry.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise TypeError(f"run.phases[{i}].overrides must map dotted keys to values, got {overrides!r}")
        phases.append(Phase(entry["name"], dict(overrides)))
    names = [phase.name for phase in phases]
    if len(set(names)) != len(names):
        raise ValueError(f"phase names must be unique, got {names}")
    return phases


class PhaseRecord:
    """The phase names in order and, per finished phase, its summary (checkpoints, counts, test metrics).

    A multi-phase run keeps it in its ``phases.json``; a single-phase run (one phase named ``""``, whose folder
    is the run folder) keeps it in memory only, so ``phases.json`` marks a multi-phase run.
    """

    def __init__(
        self, run: RunFolder, names: list[str], finished: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self.run = run
        self.names = names
        self.finished = finished or {}

    @property
    def run_dir(self) -> Path:
        return self.run.path

    @property
    def path(self) -> Path:
        return self.run.path / RunFolder.PHASES

    @property
    def stored(self) -> bool:
        """Whether the record lives in ``phases.json`` (a multi-phase run)."""
        return self.names != [""]

    @classmethod
    def open(cls, run: RunFolder, names: list[str], resume: bool) -> PhaseRecord:
        """A fresh record (saved by the first :meth:`save`), or with ``resume`` the saved one, whose phases
        must match ``names``."""
        saved = run.phases if resume else None
        if saved is None:
            if resume and names != [""]:
                raise ValueError(f"{run.path} is a single-phase run, but the config now has phases {names}; "
                                 "resume with the config the run started with")  # fmt: skip
            return cls(run, names)
        if saved["phases"] != names:
            raise ValueError(f"{run.path / RunFolder.PHASES} lists phases {saved['phases']}, but the config now "
                             f"has {names or 'a single phase'}; resume with the config the run started with")  # fmt: skip
        return cls(run, names, saved["finished"])

    def save(self) -> None:
        # Under DDP every rank keeps the record in memory; rank 0 alone writes it.
        if not self.stored or not is_rank_zero():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps({"phases": self.names, "finished": self.finished}, indent=2))

    def finish(self, name: str, summary: dict[str, Any]) -> None:
        """Mark phase ``name`` finished with its summary (checkpoints, epochs, steps, seconds) and save."""
        self.finished[name] = summary
        self.save()

    def handover_checkpoint(self, name: str) -> str | None:
        """The checkpoint the phase after ``name`` starts from: its best, else its last (None if neither)."""
        summary = self.finished.get(name, {})
        for key in ("best_checkpoint", "last_checkpoint"):
            if summary.get(key) and Path(summary[key]).is_file():
                return summary[key]
        return None


def load_phase_weights(model: nn.Module, source: str | dict[str, torch.Tensor], phase: str) -> None:
    """Start ``model`` from a checkpoint file (or a state dict) of the previous phase; same architecture."""
    state = source
    if isinstance(source, str):
        state = load_checkpoint(source)["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"phase {phase!r} cannot start from the previous phase's weights; phases of one "
                         f"experiment must keep the same nets ({exc})") from exc  # fmt: skip
