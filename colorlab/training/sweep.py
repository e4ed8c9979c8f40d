"""Hyperparameter search over any experiment YAML (``python -m colorlab sweep --config sweeps/NAME.yaml``).

A sweep YAML names the experiment, the search space (dotted config keys, as on the command line), the
validation metric to optimise and its direction. Two backends read the same file:

* ``optuna`` (default): trials are short fits in this process; bad ones are pruned after any validation
  by ``optuna_integration.PyTorchLightningPruningCallback``. The study lives in an RDB (a local SQLite file
  by default, or any URL such as ``postgresql://...``), so workers on several machines share one study and a
  new run continues it. Writes ``trials.csv``, ``summary.md`` and ``best.yaml``: the experiment with the
  best trial's values, runnable with ``python -m colorlab experiment --config .../best.yaml``.
  A trial trains in one process on one device; N GPUs take N workers on one study, one GPU each
  (``CUDA_VISIBLE_DEVICES=i python -m colorlab sweep ...`` in N shells: see the README).
* ``wandb``: the same space as a W&B sweep config (written out), run by ``wandb.agent``; needs a W&B server.

Sweep YAML keys: ``experiment`` (path), ``params`` ({key: {type: float|int|categorical, low, high, log,
step, choices}}), ``metric``, ``direction`` (minimize|maximize), ``n_trials`` (per worker run),
``study_name``, ``report`` (more validation metrics shown beside the objective, taken at its best
validation), ``storage`` (RDB URL), ``output`` (folder), ``overrides`` ({key: value} for trials only,
e.g. fewer epochs; not written into best.yaml), ``sampler`` ({type: tpe|random|grid, seed}: grid tries every
combination of categorical params once; a seeded sampler is
re-seeded per trial from (seed, trial number), so a rerun continues the search), ``pruner``
({type: median|hyperband|threshold|none, ...its arguments}), ``baseline_trial`` (first try the experiment's own
values), ``heartbeat_seconds`` (trials of a worker silent for twice this long are marked FAIL; default 60).
"""

from __future__ import annotations

import csv
import os
import random
import sys
import time
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from colorlab.report import markdown_table
from colorlab.runs.folder import RUNS_ROOT
from colorlab.training.config import load_config, override_args

DEFAULTS: dict[str, Any] = {
    "metric": "val/delta_e00",
    "direction": "minimize",
    "n_trials": 10,
    "overrides": {},
    "sampler": {"type": "tpe"},
    "pruner": {"type": "median", "n_startup_trials": 3, "n_warmup_steps": 1},
    "baseline_trial": False,
    "report": [],
    "storage": None,
    "output": None,
    "heartbeat_seconds": 60,
}


# ---- the sweep file -----------------------------------------------------------------------------------


def load_spec(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a sweep YAML; fills defaults (study name from the file name, output under runs/sweeps)."""
    path = Path(path)
    spec = {**DEFAULTS, **(yaml.safe_load(path.read_text()) or {})}
    for key in ("experiment", "params"):
        if not spec.get(key):
            raise ValueError(f"{path}: the sweep needs '{key}'")
    if spec["direction"] not in ("minimize", "maximize"):
        raise ValueError(f"{path}: direction must be minimize or maximize, got {spec['direction']!r}")
    unknown = sorted(set(spec) - set(DEFAULTS) - {"experiment", "params", "study_name"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; a sweep has "
                         f"{', '.join(sorted([*DEFAULTS, 'experiment', 'params', 'study_name']))}")  # fmt: skip
    if not isinstance(spec["params"], dict):
        raise ValueError(f"{path}: params must map config keys to search spaces")  # noqa: TRY004 - bad file content
    for key, space in spec["params"].items():
        check_space(path, key, space)
    if not isinstance(spec["report"], list) or not all(isinstance(name, str) for name in spec["report"]):
        raise ValueError(f"{path}: report must be a list of metric names, e.g. [val/colorfulness]")
    spec.setdefault("study_name", path.stem)
    spec["output"] = Path(spec["output"] or RUNS_ROOT / "sweeps" / spec["study_name"])
    spec["storage"] = spec["storage"] or f"sqlite:///{spec['output'] / 'study.db'}"
    return spec


SPACE_KEYS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"},
              "categorical": {"choices"}}  # fmt: skip


def check_space(path: Path, key: str, space: Any) -> None:
    """A search space that Optuna accepts: its type, its keys (a typo is named), numbers in order."""
    if not isinstance(space, dict):
        raise ValueError(f"{path}: params.{key} must be a mapping like {{type: float, low: 0.1, high: 1}}")  # noqa: TRY004 - bad file content
    kind = space.get("type")
    if kind not in SPACE_KEYS:
        raise ValueError(f"{path}: params.{key}.type must be float, int or categorical, got {kind!r}")
    unknown = sorted(set(space) - SPACE_KEYS[kind] - {"type"})
    if unknown:
        raise ValueError(f"{path}: params.{key} ({kind}) has unknown key(s) {', '.join(unknown)}; "
                         f"allowed: type, {', '.join(sorted(SPACE_KEYS[kind]))}")  # fmt: skip
    if kind == "categorical":
        if not isinstance(space.get("choices"), list) or not space["choices"]:
            raise ValueError(f"{path}: params.{key} (categorical) needs a non-empty list of choices")
        return
    low, high = space.get("low"), space.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise ValueError(f"{path}: params.{key} ({kind}) needs low and high (numbers), got {low!r} and {high!r}")
    if not low <= high:
        raise ValueError(f"{path}: params.{key}: low {low} is above high {high}")
    if space.get("log") and low <= 0:
        raise ValueError(f"{path}: params.{key}: a log scale needs low > 0, got {low}")
    step = space.get("step")
    if step is not None and (not isinstance(step, (int, float)) or step <= 0):
        raise ValueError(f"{path}: params.{key}: step must be a positive number, got {step!r}")


# ---- Optuna backend -----------------------------------------------------------------------------------


def suggest(trial: Any, params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Draw one value per search-space entry from an Optuna trial."""
    values = {}
    for key, space in params.items():
        if space["type"] == "categorical":
            values[key] = trial.suggest_categorical(key, space["choices"])
        else:
            draw = trial.suggest_float if space["type"] == "float" else trial.suggest_int
            step = space.get("step", None if space["type"] == "float" else 1)
            values[key] = draw(key, space["low"], space["high"], log=space.get("log", False), step=step)
    return values


def run_trial(spec: dict[str, Any], values: dict[str, Any], version: str, extra_callbacks: Sequence[Any] = (),
              study_uid: str | None = None):  # fmt: skip
    """Fit the experiment with ``values`` (and the sweep's trial overrides) as run ``{study}/{version}``.

    With ``study_uid`` the trial folder is claimed for that study (:func:`claim_trial_folder`); a folder of
    another study with the same name gets ``{version}-{uid}`` instead.

    Returns ``(scores, run_dir, best_checkpoint)``: after every validation, in order, the metric and the
    sweep's ``report`` metrics (``{name: value}``).
    """
    import lightning as L

    from colorlab.training.cli import lightning_main
    from colorlab.training.runs import finish_wandb_run

    class Scores(L.Callback):
        def __init__(self) -> None:
            self.values: list[dict[str, float]] = []

        def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            logged = trainer.callback_metrics
            if logged.get(spec["metric"]) is not None and not trainer.sanity_checking:
                names = [spec["metric"], *spec["report"]]
                self.values.append({name: float(logged[name]) for name in names if name in logged})

    def build(version: str) -> Any:
        argv = ["--config", str(spec["experiment"]), *override_args(spec["overrides"]), *override_args(values),
                f"--run.name={spec['study_name']}", f"--run.version={version}"]  # fmt: skip
        try:
            return lightning_main(argv, run=False)
        except SystemExit as exc:  # jsonargparse exits on a bad key or value: fail this trial, not the process
            raise ValueError(f"the experiment refused the trial's values {values}: see the message above "
                             f"(exit status {exc.code})") from None  # fmt: skip

    cli = build(version)
    if study_uid is not None and not claim_trial_folder(cli.config_init["run"].run_dir, study_uid):
        # Another study (e.g. the same name after its database was deleted) owns trial-NNNN: never reuse it.
        cli = build(f"{version}-{study_uid[:8]}")
        claim_trial_folder(cli.config_init["run"].run_dir, study_uid)
    if cli.trainer.world_size > 1:  # its ranks would each draw their own trial inside one process group
        raise ValueError(f"a sweep trial trains in one process, but trainer.devices asks for {cli.trainer.world_size}; "
                         "to use N GPUs, start N workers on the same study, one per GPU (CUDA_VISIBLE_DEVICES=i)")  # fmt: skip
    scores = Scores()
    cli.trainer.callbacks[:0] = [scores, *extra_callbacks]  # before the pruner raises, the score is kept
    try:
        cli.trainer.fit(cli.model, cli.datamodule)
    finally:
        finish_wandb_run()
    if not scores.values:
        logged = ", ".join(sorted(cli.trainer.callback_metrics))
        raise ValueError(f"the sweep metric {spec['metric']!r} was never logged at validation; logged: {logged}")
    best = getattr(cli.trainer.checkpoint_callback, "best_model_path", "") or None
    return scores.values, cli.config_init["run"].run_dir, best


STUDY_FILE = "study.uid"


def claim_trial_folder(run_dir: str | os.PathLike, study_uid: str) -> bool:
    """Create ``run_dir`` for the study ``study_uid`` (its id in the folder); False when another study owns it."""
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(run_dir)
    except FileExistsError:
        owner = run_dir / STUDY_FILE
        return owner.is_file() and owner.read_text().strip() == study_uid
    (run_dir / STUDY_FILE).write_text(study_uid)
    return True


def study_uid(study: Any) -> str:
    """A random id stored in the study (once): trial folders carry it, so a new study of the same name never
    writes into an old one's trial folders."""
    if "uid" not in study.user_attrs:
        study.set_user_attr("uid", uuid.uuid4().hex)
    return str(study.user_attrs["uid"])


def best_validation(scores: Sequence[dict[str, float]], metric: str, direction: str) -> dict[str, float]:
    """The metrics of a trial's best validation by ``metric`` (what its best checkpoint holds)."""
    pick = min if direction == "minimize" else max
    return pick(scores, key=lambda logged: logged[metric])


STALE_NOTES = "stale_trial_notes"  # study user attr: {trial number: why it was failed}


def open_storage(url: str, engine_kwargs: dict[str, Any], heartbeat: int, attempts: int = 5) -> Any:
    """Optuna's RDB storage with heartbeats: a trial whose worker stops beating for ``2 * heartbeat`` seconds
    (killed, machine lost) is marked FAIL by the next worker. Workers that start together race to create the
    tables, and the losers retry."""
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError

    def open_once() -> Any:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9; used on purpose
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=note_stale_trial,
            )

    for _ in range(attempts - 1):
        try:
            return open_once()
        except (IntegrityError, OperationalError):
            time.sleep(0.5 + random.random())  # the winner finishes creating the schema meanwhile
    return open_once()


def note_stale_trial(study: Any, trial: Any) -> None:
    """Say (and record in the study, for ``trials.csv``) that a dead worker's RUNNING trial is now FAIL."""
    grace = study._storage.get_heartbeat_interval() * 2
    note = f"left RUNNING by a worker that stopped (no heartbeat for {grace} s): marked FAIL"
    print(f"sweep {study.study_name}: trial {trial.number} {note}", file=sys.stderr)
    study.set_user_attr(STALE_NOTES, {**study.user_attrs.get(STALE_NOTES, {}), str(trial.number): note})


class TrialSeededSampler:
    """Wraps an Optuna sampler and re-seeds it before every trial from ``(seed, trial number)``.

    A seeded sampler alone draws the same values in every new process, so a rerun of a seeded study repeats
    its first trials; with a seed per trial number a rerun continues the search, and concurrent workers
    (which get different trial numbers) draw differently, while a whole study stays reproducible.
    """

    def __init__(self, sampler: Any, seed: int) -> None:
        self.sampler, self.seed = sampler, seed

    def trial_seed(self, number: int) -> int:
        """The seed of trial ``number``: a hash of (study seed, trial number)."""
        import numpy as np

        return int(np.random.SeedSequence([self.seed, number]).generate_state(1)[0])

    def before_trial(self, study: Any, trial: Any) -> None:
        seed = self.trial_seed(trial.number)
        # Optuna's samplers keep their RNG in ``_rng`` (TPE also in its start-up RandomSampler); there is no
        # public seed setter, only reseed_rng(), which draws from the OS.
        for sampler in (self.sampler, getattr(self.sampler, "_random_sampler", None)):
            if sampler is not None and hasattr(sampler, "_rng"):
                sampler._rng.rng.seed(seed)
        self.sampler.before_trial(study, trial)

    def __getattr__(self, name: str) -> Any:  # everything else is the wrapped sampler's
        if name == "sampler":  # not set yet (copy, pickle): no delegation loop
            raise AttributeError(name)
        return getattr(self.sampler, name)


def create_study(spec: dict[str, Any]) -> Any:
    """Create or load (``load_if_exists``) the study in its RDB storage."""
    import optuna

    spec["output"].mkdir(parents=True, exist_ok=True)
    url = spec["storage"]
    # Several workers on one SQLite file wait for each other's writes instead of failing at once.
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    sampler = dict(spec["sampler"]) if isinstance(spec["sampler"], dict) else {"type": spec["sampler"]}
    kind = sampler.pop("type")
    if kind == "grid":  # every combination once: the space must be categorical
        not_listed = [key for key, param in spec["params"].items() if param["type"] != "categorical"]
        if not_listed:
            raise ValueError(f"a grid sampler needs categorical params; {not_listed} are not")
        sampler["search_space"] = {key: param["choices"] for key, param in spec["params"].items()}
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                "grid": optuna.samplers.GridSampler}  # fmt: skip
    built = samplers[kind](**sampler)
    if sampler.get("seed") is not None:
        built = TrialSeededSampler(built, sampler["seed"])
    pruner = dict(spec["pruner"] or {"type": "none"})
    pruners = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
               "threshold": optuna.pruners.ThresholdPruner, "none": optuna.pruners.NopPruner}  # fmt: skip
    study = optuna.create_study(
        study_name=spec["study_name"],
        storage=open_storage(url, engine, spec["heartbeat_seconds"]),
        sampler=built,
        pruner=pruners[pruner.pop("type")](**pruner),
        direction=spec["direction"],
        load_if_exists=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # at start-up, not only when this worker begins a trial
    return study


def baseline_values(spec: dict[str, Any]) -> dict[str, Any]:
    """The experiment's own values of the searched keys (set in its YAMLs or by default)."""
    config = load_config([spec["experiment"]])
    return {key: config[key] for key in spec["params"] if config.get(key) is not None}


def optimize(spec: dict[str, Any], n_trials: int | None = None) -> Any:
    """Run ``n_trials`` (default the spec's) more trials of the study, then write its summary files."""
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    study = create_study(spec)
    uid = study_uid(study)
    if spec["baseline_trial"]:
        study.enqueue_trial(baseline_values(spec), skip_if_exists=True)

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, spec["params"])
        pruning = PyTorchLightningPruningCallback(trial, monitor=spec["metric"])
        scores, run_dir, best = run_trial(spec, values, f"trial-{trial.number:04d}", [pruning], uid)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("best_checkpoint", best)
        chosen = best_validation(scores, spec["metric"], spec["direction"])
        trial.set_user_attr("report", chosen)
        return chosen[spec["metric"]]

    study.optimize(objective, n_trials=n_trials or spec["n_trials"])
    write_summary(study, spec)
    return study


def write_summary(study: Any, spec: dict[str, Any]) -> dict[str, Path]:
    """``trials.csv`` and ``summary.md`` of every trial so far, and ``best.yaml`` (the best trial's experiment)."""
    out = spec["output"]
    keys = list(spec["params"])
    header = ["trial", "state", spec["metric"], *spec["report"], *keys, "seconds", "run", "note"]
    notes = study.user_attrs.get(STALE_NOTES, {})
    rows = []
    for t in study.trials:
        seconds = round((t.datetime_complete - t.datetime_start).total_seconds(), 1) if t.datetime_complete else None
        reported = t.user_attrs.get("report", {})
        rows.append([t.number, t.state.name, t.value, *(reported.get(name) for name in spec["report"]),
                     *(t.params.get(k) for k in keys), seconds,
                     t.user_attrs.get("run_dir", ""), notes.get(str(t.number), "")])  # fmt: skip
    paths = {"csv": out / "trials.csv", "markdown": out / "summary.md", "best": out / "best.yaml"}
    with paths["csv"].open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    states = [r[1] for r in rows]
    lines = [
        f"# Sweep {spec['study_name']}: {spec['direction']} {spec['metric']}",
        "",
        f"- experiment: `{spec['experiment']}`; storage: `{spec['storage']}`",
        f"- trials: {len(rows)} ({states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned)",
    ]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if complete:
        best = study.best_trial
        write_best_config(spec, best.params, paths["best"], f"trial {best.number}: {spec['metric']} = {best.value:.4f}")
        lines += [f"- best: trial {best.number}, {spec['metric']} = {best.value:.4f}, params {best.params}",
                  f"- best config: `{paths['best']}` (run it: `python -m colorlab experiment --config {paths['best']}`)"]  # fmt: skip
    paths["markdown"].write_text("\n".join([*lines, "", markdown_table(header, rows, digits=5), ""]))
    return paths


def write_best_config(spec: dict[str, Any], params: dict[str, Any], path: Path, note: str) -> Path:
    """The experiment's whole config with ``params`` applied (the trial-only overrides are not), named
    ``{study}_best``."""
    overrides = override_args({**params, "run.name": f"{spec['study_name']}_best"})
    config = load_config([spec["experiment"]], overrides)
    header = (f"# Best configuration of sweep {spec['study_name']} ({note}), from {spec['experiment']}.\n"
              f"#   python -m colorlab experiment --config {path}\n"
              f"# or copy it to experiments/NAME.yaml and run: make experiment NAME=NAME\n")  # fmt: skip
    path.write_text(header + config.dump())
    return path


# ---- W&B backend --------------------------------------------------------------------------------------


def wandb_sweep_config(spec: dict[str, Any]) -> dict[str, Any]:
    """The sweep as a W&B sweep configuration (method, metric, parameters, early termination)."""
    sampler = spec["sampler"]["type"] if isinstance(spec["sampler"], dict) else spec["sampler"]
    parameters = {}
    for key, space in spec["params"].items():
        if space["type"] == "categorical":
            parameters[key] = {"values": list(space["choices"])}
            continue
        log, step = space.get("log", False), space.get("step")
        if space["type"] == "int":
            distribution = "q_log_uniform_values" if log else "int_uniform"
            step = step or (1 if log else None)
        else:
            distribution = ("q_" if step else "") + ("log_uniform_values" if log else "uniform")
        parameters[key] = {"distribution": distribution, "min": space["low"], "max": space["high"]}
        if step:
            parameters[key]["q"] = step
    config = {
        "name": spec["study_name"],
        "method": "random" if sampler == "random" else "bayes",
        "metric": {"name": spec["metric"], "goal": spec["direction"]},
        "parameters": parameters,
        "run_cap": spec["n_trials"],
    }
    pruner = (spec["pruner"] or {}).get("type", "none")
    if pruner in ("median", "hyperband"):  # W&B's only early-termination rule is Hyperband
        config["early_terminate"] = {"type": "hyperband", "min_iter": max(1, spec["pruner"].get("n_warmup_steps", 1))}
    return config


def run_wandb(spec: dict[str, Any], sweep_id: str | None, n_trials: int | None) -> Path:
    """Write the W&B sweep config; when W&B is online, create (or join) the sweep and run an agent."""
    config = wandb_sweep_config(spec)
    spec["output"].mkdir(parents=True, exist_ok=True)
    path = spec["output"] / "wandb_sweep.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"W&B sweep config: {path}")
    mode = os.environ.get("WANDB_MODE", "online")
    if mode != "online":
        raise SystemExit(
            f"W&B sweeps need a W&B server (wandb.ai or a local server) and WANDB_MODE is {mode!r}: nothing was "
            f"run. The config is written to {path}. Go online (`wandb login`, WANDB_MODE=online) and run this "
            "again, or use the Optuna backend (the default), which works offline."
        )
    import wandb

    project = load_config([spec["experiment"]]).run.wandb_project
    sweep_id = sweep_id or wandb.sweep(config, project=project)
    print(f"W&B sweep {sweep_id}: more machines join with --backend wandb --sweep-id {sweep_id}")

    def trial() -> None:
        run = wandb.init(group=spec["study_name"])  # the agent's run; the WandbLogger attaches to it
        values = {key: run.config[key] for key in spec["params"]}
        run_trial({**spec, "overrides": {**spec["overrides"], "run.wandb": "online"}}, values, f"wandb-{run.id}")

    wandb.agent(sweep_id, function=trial, project=project, count=n_trials or spec["n_trials"])
    return path
