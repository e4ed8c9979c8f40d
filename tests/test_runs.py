"""RunFolder reads any run folder: from the folder or a checkpoint in it, single- or multi-phase, finished,
interrupted or damaged; and finds the run to resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from colorlab.runs.folder import NothingToResume, RunFolder
from colorlab.training.runs import RunSettings


def make_run(root: Path, version: str, *checkpoints: str, phases: list[str] | None = None) -> Path:
    """``root/exp/version`` with empty checkpoint files (in phase folders when ``phases`` is given)."""
    run = root / "exp" / version
    for i, name in enumerate(checkpoints):
        for folder in [run / p for p in phases] if phases else [run]:
            path = folder / "checkpoints" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
            os.utime(path, (1_000_000 + i, 1_000_000 + i))  # written in the order given
    run.mkdir(parents=True, exist_ok=True)
    if phases:
        (run / RunFolder.PHASES).write_text(json.dumps({"phases": phases, "finished": {}}))
    return run


def test_built_from_the_folder_or_any_checkpoint_in_it(tmp_path):
    run = make_run(tmp_path, "v1", "best-000-000004.ckpt", "best-001-000008.ckpt", "last.ckpt")
    for source in (run, run / "checkpoints" / "last.ckpt", run / "checkpoints" / "best-000-000004.ckpt"):
        folder = RunFolder.of(source)
        assert folder.path == run.resolve() and (folder.name, folder.version) == ("exp", "v1")
    folder = RunFolder.of(run)
    assert [p.name for p in folder.checkpoints] == [
        "best-000-000004.ckpt",
        "best-001-000008.ckpt",
        "last.ckpt",
    ]
    assert folder.best_checkpoint.name == "best-001-000008.ckpt"  # the newest best
    assert folder.last_checkpoint.name == "last.ckpt"
    assert folder.metrics_csv == run.resolve() / "metrics.csv"


def test_a_phase_folder_knows_its_run(tmp_path):
    run = make_run(tmp_path, "v1", "last.ckpt", phases=["generator", "gan"])
    phase = RunFolder.of(run / "gan" / "checkpoints" / "last.ckpt")
    assert phase.path == (run / "gan").resolve()
    assert (phase.name, phase.version) == ("exp/gan", "v1")
    assert RunFolder(run).phases == {"phases": ["generator", "gan"], "finished": {}}
    assert (
        RunFolder(run).phase_folder("gan").path == run / "gan" and RunFolder(run).phase_folder("").path == run
    )
    assert RunFolder(run / "gan").phases is None  # phases.json marks the run, not its phases


def test_config_results_and_a_bare_folder(tmp_path):
    run = make_run(tmp_path, "v1", "last.ckpt")
    folder = RunFolder(run)
    assert folder.config == {} and folder.data_arg("resize") is None  # no config.yaml written (yet)
    assert folder.results is None and not folder.finished and folder.best_checkpoint is None
    config = {"data": {"class_path": "colorlab.data.FolderDataModule", "init_args": {"resize": 96}}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "results.json").write_text(json.dumps({"test": {"psnr": 21.0}}))
    assert folder.data_arg("resize") == 96 and folder.data_arg("image_size") is None
    assert folder.finished and folder.results["test"]["psnr"] == 21.0
    empty = RunFolder(tmp_path / "nothing")
    assert empty.checkpoints == [] and empty.last_checkpoint is None and empty.config == {}


def test_a_damaged_results_file_is_a_clear_error(tmp_path):
    run = make_run(tmp_path, "v1", "last.ckpt")
    (run / "results.json").write_text('{"test": {"psnr": 2')  # a run killed while writing
    with pytest.raises(ValueError, match=r"results.json .*not valid JSON"):
        _ = RunFolder(run).results


def test_runs_of_lists_versions_in_time_order(tmp_path):
    for version in ("20260102-000000", "20260101-000000", "20260101-000000-1"):
        make_run(tmp_path, version)
    (tmp_path / "exp" / "notes.txt").write_text("not a run")
    versions = [run.version for run in RunFolder.runs_of(tmp_path, "exp")]
    assert versions == ["20260101-000000", "20260101-000000-1", "20260102-000000"]
    assert RunFolder.runs_of(tmp_path, "missing") == []


def test_resume_picks_the_newest_interrupted_run_never_a_finished_one(tmp_path):
    with pytest.raises(NothingToResume, match="nothing to resume: no runs"):
        RunFolder.interrupted(tmp_path, "exp")
    make_run(tmp_path, "20260101-000000", "last.ckpt")
    finished = make_run(tmp_path, "20260102-000000", "last.ckpt")
    (finished / "results.json").write_text("{}")
    assert RunFolder.interrupted(tmp_path, "exp").version == "20260101-000000"
    make_run(tmp_path, "20260103-000000", phases=["a", "b"])  # phased, interrupted in its first phase
    assert RunFolder.interrupted(tmp_path, "exp").version == "20260103-000000"
    # fit --run.resume continues a single-phase run from its last.ckpt, and explains a phased one
    with pytest.raises(NothingToResume, match="multi-phase run"):
        RunSettings(name="exp", root=str(tmp_path)).latest_resumable()
    make_run(tmp_path, "20260104-000000")  # crashed before it saved anything: said, not skipped
    with pytest.raises(NothingToResume, match="before it saved a readable checkpoint"):
        RunSettings(name="exp", root=str(tmp_path)).latest_resumable()
