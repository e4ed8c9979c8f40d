"""Sweeps: an Optuna study on SQLite completes offline, resumes, is shared by workers, finds a better
learning rate than a bad default, and the same YAML gives a W&B sweep config."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from colorlab.commands.sweep import main
from colorlab.training.sweep import load_spec, wandb_sweep_config
from tests.tiny_experiment import tiny_config, write_photos

REPO = Path(__file__).resolve().parents[1]
LR = "model.init_args.optimizer.init_args.lr"


def write_sweep(tmp_path: Path, experiment: Path, **spec) -> Path:
    """A sweep over the tiny experiment's learning rate, trials of a few epochs, SQLite under tmp_path."""
    sweep = {
        "experiment": str(experiment),
        "study_name": "tiny_sweep",
        "output": str(tmp_path / "sweep"),
        "metric": "val/delta_e00",
        "direction": "minimize",
        "n_trials": 3,
        "overrides": {"trainer.max_steps": -1, "trainer.max_epochs": 2},
        "pruner": {"type": "none"},
        "params": {LR: {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}},
        **spec,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def trials(tmp_path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((tmp_path / "sweep" / "trials.csv").open()))


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    return tiny_config(tmp_path, write_photos(tmp_path / "photos"))


def test_optuna_sweep_writes_a_runnable_best_config_and_resumes(tmp_path, experiment):
    from colorlab.training.cli import lightning_main

    spec = write_sweep(tmp_path, experiment, sampler={"type": "random", "seed": 0}, report=["val/psnr"])
    study = main(["--config", str(spec)])
    assert (tmp_path / "sweep" / "study.db").is_file()
    assert [t["state"] for t in trials(tmp_path)] == ["COMPLETE"] * 3
    for trial in trials(tmp_path):  # the reported metric is the one of the trial's best validation
        logged = [row for row in csv.DictReader((Path(trial["run"]) / "metrics.csv").open()) if row["val/psnr"]]
        best = min(logged, key=lambda row: float(row["val/delta_e00"]))
        assert float(trial["val/psnr"]) == pytest.approx(float(best["val/psnr"]), rel=1e-5)
        assert float(trial["val/delta_e00"]) == pytest.approx(float(best["val/delta_e00"]), rel=1e-5)
    best_yaml = tmp_path / "sweep" / "best.yaml"
    best = yaml.safe_load(best_yaml.read_text())
    assert best["model"]["init_args"]["optimizer"]["init_args"]["lr"] == study.best_params[LR]
    assert (
        best["run"]["name"] == "tiny_sweep_best" and best["trainer"]["max_steps"] == 4
    )  # trial overrides left out
    cli = lightning_main(["--config", str(best_yaml), f"--run.root={tmp_path / 'best_runs'}"], run=False)
    assert cli.model.optimizer_factory(cli.model.parameters()).param_groups[0]["lr"] == study.best_params[LR]
    assert "tiny_sweep" in (tmp_path / "sweep" / "summary.md").read_text()

    main(["--config", str(spec), "--n-trials", "1"])  # same storage: the study goes on
    assert [t["trial"] for t in trials(tmp_path)] == ["0", "1", "2", "3"]


def test_two_workers_share_one_sqlite_study(tmp_path, experiment):
    spec = write_sweep(tmp_path, experiment)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "colorlab", "sweep", "--config", str(spec), "--n-trials", "2"]
    workers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for _ in range(2)]  # fmt: skip
    for worker in workers:
        output = worker.communicate(timeout=300)[0].decode()
        assert worker.returncode == 0, output[-3000:]
    import optuna

    study = optuna.load_study(study_name="tiny_sweep", storage=f"sqlite:///{tmp_path / 'sweep' / 'study.db'}")
    assert len(study.trials) == 4
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    runs = sorted(p.name for p in (tmp_path / "runs" / "tiny_sweep").iterdir())
    assert runs == [f"trial-{i:04d}" for i in range(4)]


def test_sweep_beats_a_bad_default_learning_rate(tmp_path):
    experiment = tiny_config(tmp_path, write_photos(tmp_path / "photos"), lr=1e-7)
    spec = write_sweep(tmp_path, experiment, n_trials=4, baseline_trial=True, sampler={"type": "tpe", "seed": 0},
                       overrides={"trainer.max_steps": -1, "trainer.max_epochs": 6})  # fmt: skip
    study = main(["--config", str(spec)])
    baseline = study.trials[0]
    assert baseline.params[LR] == pytest.approx(1e-7)  # trial 0 is the experiment's own (bad) value
    assert study.best_trial.number != 0 and study.best_params[LR] >= 1e-3
    assert study.best_value < baseline.value - 0.5, [(t.params, t.value) for t in study.trials]  # dE00 units


def test_pruned_trials_stop_training_early(tmp_path, experiment):
    # A threshold no colorization meets: every trial is pruned at its first validation, of 3 planned.
    spec = write_sweep(tmp_path, experiment, n_trials=2, pruner={"type": "threshold", "upper": 0.0},
                       overrides={"trainer.max_steps": -1, "trainer.max_epochs": 3})  # fmt: skip
    study = main(["--config", str(spec)])
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    assert all(list(t.intermediate_values) == [0] for t in study.trials)
    assert not (tmp_path / "sweep" / "best.yaml").exists()  # no complete trial, no best configuration
    assert "2 pruned" in (tmp_path / "sweep" / "summary.md").read_text()


def test_wandb_backend_writes_its_config_and_explains_offline(tmp_path, experiment, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    spec_path = write_sweep(tmp_path, experiment, pruner={"type": "median", "n_warmup_steps": 2},
                            params={LR: {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                                    "model.init_args.loss": {"type": "categorical", "choices": ["l1", "mse"]},
                                    "trainer.accumulate_grad_batches": {"type": "int", "low": 1, "high": 4}})  # fmt: skip
    with pytest.raises(SystemExit, match="W&B sweeps need a W&B server"):
        main(["--config", str(spec_path), "--backend", "wandb"])
    written = yaml.safe_load((tmp_path / "sweep" / "wandb_sweep.yaml").read_text())
    assert written == wandb_sweep_config(load_spec(spec_path))
    assert written["metric"] == {"name": "val/delta_e00", "goal": "minimize"}
    assert written["parameters"] == {
        LR: {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "model.init_args.loss": {"values": ["l1", "mse"]},
        "trainer.accumulate_grad_batches": {"distribution": "int_uniform", "min": 1, "max": 4},
    }
    assert written["early_terminate"] == {"type": "hyperband", "min_iter": 2}
    assert not (tmp_path / "runs").exists()  # nothing was trained


@pytest.mark.parametrize(
    ("change", "message"),
    [({"params": {}}, "needs 'params'"), ({"direction": "up"}, "direction"),
     ({"params": {LR: {"type": "float", "low": 1e-3}}}, "needs low and high"),
     ({"params": {LR: {"type": "normal"}}}, "must be float, int or categorical")],
)  # fmt: skip
def test_bad_sweep_files_are_clear_errors(tmp_path, change, message):
    spec = write_sweep(tmp_path, tmp_path / "x.yaml", **change)
    with pytest.raises(ValueError, match=message):
        load_spec(spec)


def test_grid_sampler_draws_every_combination_once(tmp_path):

    from colorlab.training.sweep import create_study

    params = {"a": {"type": "categorical", "choices": [0.1, 1.0]}, "b": {"type": "categorical", "choices": [0, 3]}}
    spec = {"study_name": "grid", "storage": f"sqlite:///{tmp_path / 'study.db'}", "output": tmp_path,
            "sampler": {"type": "grid", "seed": 0}, "pruner": None, "direction": "minimize",
            "heartbeat_seconds": 60, "params": params}  # fmt: skip
    study = create_study(spec)
    study.optimize(lambda t: t.suggest_categorical("a", [0.1, 1.0]) + t.suggest_categorical("b", [0, 3]))
    assert sorted((t.params["a"], t.params["b"]) for t in study.trials) == [(0.1, 0), (0.1, 3), (1.0, 0), (1.0, 3)]
    with pytest.raises(ValueError, match="grid sampler needs categorical"):
        create_study({**spec, "study_name": "g2", "params": {"lr": {"type": "float", "low": 0.1, "high": 1.0}}})


def test_a_trial_refuses_several_devices_and_says_how_to_use_several_gpus(tmp_path, experiment):
    from colorlab.training.sweep import run_trial

    overrides = {"trainer.devices": 2, "trainer.strategy": "ddp"}
    spec = load_spec(write_sweep(tmp_path, experiment, overrides=overrides))
    with pytest.raises(ValueError, match="start N workers on the same study, one per GPU"):
        run_trial(spec, {LR: 0.01}, "trial0")


def test_report_must_list_metric_names(tmp_path, experiment):
    with pytest.raises(ValueError, match="report must be a list of metric names"):
        load_spec(write_sweep(tmp_path, experiment, report="val/psnr"))
