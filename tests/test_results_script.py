"""``make results`` resumes: an unchanged finished run is reused, a changed input or ``--only`` retrains."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def script(tmp_path: Path, monkeypatch):
    """scripts/results.py on a scratch repo with one experiment and one protocol YAML."""
    spec = importlib.util.spec_from_file_location("results_script", REPO / "scripts" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "experiments" / "results").mkdir(parents=True)
    (tmp_path / "experiments" / "tiny.yaml").write_text("model: {}\n")
    (tmp_path / "experiments" / "results" / "p.yaml").write_text("trainer: {max_steps: 10}\n")
    module.REPO, module.LOGS = tmp_path, tmp_path / "runs" / "results-logs"
    module.HEADLINE = module.EXPERIMENTS = {"tiny": ["experiments/results/p.yaml"]}
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path / "photos"))
    return module


def fake_experiment(tmp_path: Path, calls: list[list[str]], killed: bool = False):
    """Stands in for ``python -m colorlab experiment``: writes the run folder ``--run.version`` names, finished
    (results and selected checkpoint), or with ``killed`` only a ``last.ckpt`` and exit status -9."""

    def call(command, cwd, env, stdout, stderr) -> int:
        calls.append(command)
        value = {a.split("=")[0]: a.split("=", 1)[1] for a in command if a.startswith("--") and "=" in a}
        experiment = Path(command[command.index("--config") + 1]).stem
        folder = tmp_path / "runs" / experiment / value["--run.version"]
        (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(f"seed_everything: {value['--seed_everything']}\n")
        if killed:
            torch.save({"state_dict": {}}, folder / "checkpoints" / "last.ckpt")
            return -9
        (folder / "checkpoints" / "best.ckpt").write_bytes(b"weights")
        (folder / "results.json").write_text(json.dumps({"best_checkpoint": str(folder / "checkpoints" / "best.ckpt")}))
        return 0

    return call


def test_an_unchanged_finished_run_is_reused_and_a_changed_input_retrains(script, tmp_path: Path):
    calls: list[list[str]] = []
    with mock.patch.object(script.subprocess, "call", fake_experiment(tmp_path, calls)):
        first = script.run("tiny", 42, None)
        assert script.run("tiny", 42, None) == first and len(calls) == 1  # reused, not retrained
        assert script.run("tiny", 42, 20) != first and len(calls) == 2  # another budget is another run
        assert "--trainer.max_steps=20" in calls[-1]
        second = script.run("tiny", 42, 20)
        assert len(calls) == 2
        (tmp_path / "experiments" / "tiny.yaml").write_text("# why the model is empty\nmodel:   {}\n")
        assert script.run("tiny", 42, 20) == second and len(calls) == 2  # a comment is not a change
        (tmp_path / "experiments" / "tiny.yaml").write_text("model: {changed: 1}\n")  # the experiment changed
        assert script.run("tiny", 42, 20) != second and len(calls) == 3
        assert script.run("tiny", 42, 20, force=True) and len(calls) == 4  # --only forces a retrain
        Path(json.loads((script.recorded_run("tiny", 42, 20) / "results.json").read_text())["best_checkpoint"]).unlink()
        script.run("tiny", 42, 20)  # its selected checkpoint is gone: not finished any more
        assert len(calls) == 5


def test_an_experiment_yaml_that_does_not_parse_stops_with_its_name(script, tmp_path: Path):
    (tmp_path / "experiments" / "tiny.yaml").write_text("model: [unclosed\n")
    with mock.patch.object(script.subprocess, "call") as call, pytest.raises(SystemExit, match="tiny.yaml: not valid YAML"):
        script.run("tiny", 42, None)
    call.assert_not_called()


def test_a_list_moved_to_a_shared_file_is_the_same_run_and_editing_that_file_retrains(script, tmp_path: Path):
    experiments = tmp_path / "experiments"
    (experiments / "tiny.yaml").write_text("data:\n  degradations:\n  - {class_path: Blur, init_args: {p: 0.4}}\n")
    calls: list[list[str]] = []
    with mock.patch.object(script.subprocess, "call", fake_experiment(tmp_path, calls)):
        first = script.run("tiny", 42, None)
        (experiments / "shared").mkdir()
        (experiments / "shared" / "old.yaml").write_text("# shared\n- class_path: Blur\n  init_args: {p: 0.4}\n")
        (experiments / "tiny.yaml").write_text("data:\n  degradations: shared/old.yaml\n")
        assert script.run("tiny", 42, None) == first and len(calls) == 1  # the same list, now in a shared file
        (experiments / "shared" / "old.yaml").write_text("- class_path: Blur\n  init_args: {p: 0.9}\n")
        assert script.run("tiny", 42, None) != first and len(calls) == 2  # the shared file changed


def test_a_yaml_that_includes_itself_stops_with_a_clear_message(script, tmp_path: Path):
    (tmp_path / "experiments" / "tiny.yaml").write_text("data: {degradations: loop.yaml}\n")
    (tmp_path / "experiments" / "loop.yaml").write_text("again: tiny.yaml\n")
    with mock.patch.object(script.subprocess, "call") as call, pytest.raises(SystemExit, match="tiny.yaml: includes itself"):
        script.run("tiny", 42, None)
    call.assert_not_called()


def test_a_damaged_record_or_a_failed_run_is_not_reused(script, tmp_path: Path):
    calls: list[list[str]] = []
    with mock.patch.object(script.subprocess, "call", fake_experiment(tmp_path, calls)):
        script.run("tiny", 7, None)
        script.record_path("tiny", 7).write_text("{not json")
        script.run("tiny", 7, None)
        assert len(calls) == 2
    with mock.patch.object(script.subprocess, "call", return_value=1):
        script.record_path("tiny", 7).unlink()
        assert script.run("tiny", 7, None) is None and script.recorded_run("tiny", 7) is None


def test_only_and_steps_are_checked(script, capsys):
    for argv in (["--only", "nope"], ["--steps", "0"]):
        with mock.patch.object(sys, "argv", ["results.py", *argv]), pytest.raises(SystemExit):
            script.main()
    assert "unknown experiments" in capsys.readouterr().err


def test_an_interrupted_run_continues_in_its_own_folder(script, tmp_path: Path):
    calls: list[list[str]] = []
    with mock.patch.object(script.subprocess, "call", fake_experiment(tmp_path, calls, killed=True)):
        assert script.run("tiny", 42, None) is None  # killed half-way: nothing to reuse yet
    version = script.read_record("tiny", 42)["version"]
    with mock.patch.object(script.subprocess, "call", fake_experiment(tmp_path, calls)):
        folder = script.run("tiny", 42, None)
    assert "--resume" in calls[-1] and f"--run.version={version}" in calls[-1] and folder.name == version
    with mock.patch.object(script.subprocess, "call", fake_experiment(tmp_path, calls, killed=True)):
        script.run("tiny", 42, 99)  # other inputs: a new run, never a resume of the old one
    assert "--resume" not in calls[-1]


def test_every_family_that_beats_the_baselines_gets_a_second_seed(script, tmp_path: Path):
    """Not the best two by val: each family with a run that learns on test, by either of its checkpoints."""
    script.HEADLINE = script.EXPERIMENTS = {name: ["experiments/results/p.yaml"] for name in ("a", "b", "c", "d")}
    script.STUDIES = {}
    for name in script.HEADLINE:
        (tmp_path / "experiments" / f"{name}.yaml").write_text("model: {}\n")
    calls: list[list[str]] = []
    with mock.patch.object(script.subprocess, "call", fake_experiment(tmp_path, calls)):
        for name in ("a", "b", "c"):  # d never finished: nothing to judge
            script.run(name, 42, None)
        script.run("a", 7, None)
    rows = script.finished_rows(None)
    assert [(name, seed) for name, seed, _ in rows] == [("a", 42), ("a", 7), ("b", 42), ("c", 42)]
    learning = {"a s42": {"learning": True}, "a s7": {"learning": True}, "b s42": {"learning": False},
                f"c s42{script.BY_DELTA_E00}": {"learning": True}}  # fmt: skip
    assert script.learning_families(rows, {"learning": learning}) == ["a", "c"]


def test_a_run_left_out_of_the_table_is_named_with_how_to_rerun_it(script, tmp_path: Path, capsys):
    calls: list[list[str]] = []
    with mock.patch.object(script.subprocess, "call", fake_experiment(tmp_path, calls)):
        script.run("tiny", 42, None)
    capsys.readouterr()
    assert [name for name, _, _ in script.finished_rows(None, say_left_out=True)] == ["tiny"]
    assert capsys.readouterr().out == ""  # nothing left out
    (tmp_path / "experiments" / "results" / "p.yaml").write_text("trainer: {max_steps: 99}\n")  # the protocol changed
    assert script.finished_rows(None, say_left_out=True) == []
    out = capsys.readouterr().out
    assert "tiny seed 42: not in the table" in out and "rerun it with --only tiny" in out
