"""The experiment pipeline: fit every phase of an experiment, test the checkpoint each phase hands on, report.

A YAML without ``run.phases`` is a run of one phase; one whose ``run.phases`` lists several fits (e.g.
DeOldify's NoGAN) runs them in order, each in ``runs/NAME/VERSION/PHASE/`` and starting from the previous
phase's checkpoint (see :mod:`colorlab.training.phases`). Either way, every phase's checkpoint is tested by
its own trainer right after its fit (the test rows land in that phase's CSV log), and the run folder
``runs/NAME/VERSION`` ends up with ``report.md``, ``test_metrics.csv``, ``results.json`` (one schema, written by
:func:`colorlab.report.write_experiment_report`), ``test_grid.png`` (input gray | prediction | truth) and
``baselines.json`` (the trivial baselines fitted on the training split, see :mod:`colorlab.baselines`).
The report states the three splits (train fits, val selects, test only reports), scores the model and every
baseline on the test split, and says whether the model beats the best baseline ("learning: yes/no").
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_only

from colorlab.approaches.base import ColorizationModule
from colorlab.baselines import BASELINE_NAMES, Baselines, fit_on_datamodule, learning_verdict
from colorlab.data.datamodule import LabDataModule
from colorlab.metrics import FRECHET_KEY, FrechetEffNetDistance, colorfulness
from colorlab.report import write_experiment_report
from colorlab.runs.checkpoints import allowed_globals
from colorlab.runs.folder import BASELINES_FILE, NothingToResume, RunFolder
from colorlab.training.config import config_args, load_config
from colorlab.training.phases import Phase, PhaseRecord, load_phase_weights, parse_phases
from colorlab.training.runs import HeadlineCheckpoint, RunSettings, finish_wandb_run
from colorlab.visualize import save_png

# The headline metric (README table, issue targets): every report's learning verdict is on it.
HEADLINE = "delta_e00"
rank_zero_print = rank_zero_only(print)


@torch.no_grad()
def test_set_metrics(
    datamodule: LabDataModule,
    model: ColorizationModule,
    colorize: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    frechet: FrechetEffNetDistance | None = None,
) -> tuple[dict[str, float], float]:
    """Test-set metrics of ``colorize`` (a Lab batch -> sRGB in [0, 1]) and the truth's mean colorfulness,
    scored as ``model`` is (its metrics against its evaluation target, on its device).

    ``frechet``, when given, adds the Fréchet distance; its truth statistics are kept after the first call, so
    one instance scores several colorizers on the same (fixed) test split for the price of one truth pass.
    Runs in this process alone (under DDP: on rank 0, over the whole test set, with no collective calls).
    """
    datamodule.setup("test")
    device = model.device
    metrics = model.new_metrics("test/", sync=False).to(device)
    truth_colorfulness, count = 0.0, 0
    for batch in datamodule.whole_test_dataloader():  # not the rank's share: the process group is still up
        batch = datamodule.on_after_batch_transfer({k: v.to(device) for k, v in batch.items()}, 0)
        pred, target = colorize(batch).float(), model.evaluation_target(batch).float()
        metrics.update(pred, target)
        if frechet is not None:
            frechet.update(pred, target)
        truth_colorfulness += colorfulness(batch["rgb"]).sum().item()
        count += batch["rgb"].shape[0]
    values = {k.removeprefix("test/"): v.item() for k, v in metrics.compute().items()}
    if frechet is not None:
        values[FRECHET_KEY] = frechet.compute().item()
        frechet.freeze_target()
        frechet.reset()
    return values, truth_colorfulness / max(count, 1)


def reference_metrics(
    datamodule: LabDataModule,
    model: ColorizationModule,
    baselines: Baselines,
    frechet: FrechetEffNetDistance | None,
) -> dict[str, dict[str, float]]:
    """Test-set metrics of every trivial baseline of ``model`` (keyed ``gray``, ``mean_ab``, ``lookup``; an
    upscaler's ``bicubic``) and, when colour is scored, the ground truth's own colorfulness (``truth``)."""
    reference: dict[str, dict[str, float]] = {}
    truth_colorfulness = 0.0
    for key, baseline in model.trivial_baselines(baselines).items():

        def colorize(batch: dict[str, torch.Tensor], baseline=baseline) -> torch.Tensor:
            return baseline.colorize_rgb(batch.get("L_input", batch["L"]))

        reference[key], truth_colorfulness = test_set_metrics(datamodule, model, colorize, frechet)
    scores_colour = any("colorfulness" in values for values in reference.values())
    reference["truth"] = {"colorfulness": truth_colorfulness} if scores_colour else {}
    return reference


def fit_and_save_baselines(datamodule: LabDataModule, run_dir: Path) -> Baselines:
    """Fit the trivial baselines on the training split and save them as ``run_dir/baselines.json`` (which
    ``evaluate`` reads for the run's checkpoints)."""
    baselines = fit_on_datamodule(datamodule, seed=datamodule.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    baselines.save(run_dir / BASELINES_FILE)
    return baselines


def baseline_frechet(run: Any, device: torch.device) -> FrechetEffNetDistance | None:
    """The Fréchet distance for scoring baselines on the test split, when the run logs it (``run.frechet_effnet``)."""
    # sync_on_compute=False: under DDP only rank 0 scores the baselines, so there is no one to sync with.
    if not getattr(run, "frechet_effnet", False):
        return None
    return FrechetEffNetDistance(sync_on_compute=False).to(device)


def evaluation_summary(datamodule: LabDataModule, run: Any, baselines: Baselines) -> dict[str, Any]:
    """results.json entries that say how the run was judged: splits, selection metric, baselines' fit."""
    fit = {k: v for k, v in baselines.to_json().items() if k not in ("lookup", "mean_ab")}
    return {
        "splits": datamodule.splits(),
        "selection": {"monitor": run.monitor, "mode": run.monitor_mode},
        "baselines": {**fit, "file": BASELINES_FILE},
    }


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Learning verdicts of the tested model against the best baseline: on the headline metric and, when the
    run selects its checkpoint on another metric, on that one too."""
    baselines = {k: v for k, v in results["reference"].items() if k in BASELINE_NAMES}
    out = {}
    if HEADLINE in results["test"]:  # an upscaler scores luminance only: it is judged on its selection metric
        out[HEADLINE] = learning_verdict(results["test"], baselines, HEADLINE)
    selected = results.get("selection", {}).get("monitor", "").removeprefix("val/")
    if selected and selected != HEADLINE:
        out[selected] = learning_verdict(results["test"], baselines, selected)
    return out


def hardware() -> str:
    """A one-line description of where the run happened."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def fit(
    trainer: Any, model: ColorizationModule, datamodule: LabDataModule, ckpt_path: str | None
) -> dict[str, Any]:
    """Fit (from ``ckpt_path`` when resuming); returns epochs, steps, seconds and the best checkpoint."""
    start = time.perf_counter()
    with allowed_globals():  # a resumed fit reads its checkpoint as data only
        trainer.fit(model, datamodule, ckpt_path=ckpt_path, weights_only=True)
    return {
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "fit_seconds": time.perf_counter() - start,
        "best_checkpoint": own_best_checkpoint(trainer),
        "delta_e00_checkpoint": headline_checkpoint(trainer),
    }


def headline_checkpoint(trainer: Any) -> str | None:
    """The lowest-val-ΔE00 checkpoint a run that selects on another metric keeps beside its own (None if none)."""
    kept = [c.best_model_path for c in trainer.callbacks if isinstance(c, HeadlineCheckpoint) and c.best_model_path]
    return kept[0] if kept and Path(kept[0]).is_file() else None


def own_best_checkpoint(trainer: Any) -> str | None:
    """The best checkpoint in this run's own checkpoint folder. A run folder copied elsewhere and resumed
    restores the callback's ``best_model_path`` of the original folder: the copy's file of that name is meant."""
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") or ""
    dirpath = getattr(callback, "dirpath", None)
    if not best or dirpath is None or Path(best).resolve().parent == Path(dirpath).resolve():
        return best or None
    own = Path(dirpath) / Path(best).name
    return str(own) if own.is_file() else None


def test_checkpoint(cli: Any, checkpoint: str | None) -> dict[str, float]:
    """Test metrics of ``checkpoint`` (None: the weights in memory, e.g. after fast_dev_run saved nothing)."""
    with allowed_globals():
        test = cli.trainer.test(
            cli.model, cli.datamodule, ckpt_path=checkpoint, verbose=False, weights_only=True
        )[0]
    return {k.removeprefix("test/"): float(v) for k, v in test.items()}


def open_run(run: Any, phases: list[Phase], resume: bool) -> PhaseRecord:
    """The run folder (the ``run:`` section's version, the newest interrupted run, or a new one) and its record
    of finished phases. Resuming never picks a finished run (:class:`NothingToResume` says why there is none)."""
    names = [phase.name for phase in phases]
    if run.version:
        folder = RunFolder(Path(run.root) / run.name / run.version)
    elif resume:
        folder = RunFolder.interrupted(run.root, run.name)
        if names == [""] and folder.phases is None and folder.resume_checkpoint() is None:
            raise NothingToResume(f"nothing to resume: the newest unfinished run of {run.name!r}, {folder.path}, "
                                  "was interrupted before it saved a readable checkpoint; start a new run")  # fmt: skip
        if names != [""] and folder.phases is None and not folder.checkpoints:
            raise NothingToResume(f"nothing to resume: the newest unfinished run {folder.path} was interrupted "
                                  f"before it wrote {RunFolder.PHASES}; start a new run")  # fmt: skip
    else:
        folder = RunFolder(
            Path(run.root) / run.name / RunSettings(name=run.name, root=run.root).shared_version()
        )
    return PhaseRecord.open(folder, names, resume)


def run_experiment(configs: list[str], overrides: list[str], resume: bool = False) -> dict[str, Any]:
    """Fit every phase of the experiment (one, unless its YAML lists ``run.phases``), test each phase's
    checkpoint, and write the report and ``test_grid.png`` into the run folder; returns the results (see
    :func:`results_of`).

    With ``resume``, the latest run continues: finished phases are skipped and the interrupted one goes on
    from its ``last.ckpt``.
    """
    from colorlab.training.cli import lightning_main

    run = load_config(configs, overrides).run
    phases = parse_phases(run.phases) if run.phases else [Phase("")]
    record = open_run(run, phases, resume)

    def build(phase: Phase) -> Any:
        finish_wandb_run()  # each phase's logger starts its own W&B run
        version = f"{record.run.version}/{phase.name}" if phase.name else record.run.version
        argv = [*config_args(configs), *phase.argv(), *overrides, f"--run.version={version}"]
        return lightning_main(argv, run=False)

    handover: str | dict[str, torch.Tensor] | None = None  # what the next phase starts from
    cli = None
    for previous, phase in zip([None, *phases], phases):
        if phase.name in record.finished:
            rank_zero_print(f"phase {phase.name}: finished in an earlier run, skipped")
            handover = record.handover_checkpoint(phase.name)
            continue
        cli = build(phase)
        folder = record.run.phase_folder(phase.name)
        resume_from = folder.resume_checkpoint() if resume else None
        ckpt_path = str(resume_from) if resume_from else None
        if ckpt_path is None and previous is not None:
            if handover is None:
                raise FileNotFoundError(f"phase {phase.name!r} starts from phase {previous.name!r}, "
                                        f"which left no checkpoint in {record.run.phase_folder(previous.name).path}")  # fmt: skip
            load_phase_weights(cli.model, handover, phase.name)
        record.save()  # from now on --resume finds this run
        summary = fit(cli.trainer, cli.model, cli.datamodule, ckpt_path)
        last = folder.last_checkpoint
        summary.update(last_checkpoint=str(last) if last is not None else None, folder=str(folder.path))
        checkpoint = summary["best_checkpoint"] or summary["last_checkpoint"]
        summary["test"] = test_checkpoint(cli, checkpoint)
        record.finish(phase.name, summary)
        handover = record.handover_checkpoint(phase.name) or cli.model.state_dict()
        if phase.name:
            rank_zero_print(
                f"phase {phase.name}: {summary['epochs']} epochs, {summary['steps']} steps in {folder.path}"
            )

    if cli is None:  # every phase finished earlier: only the report is left
        cli = build(phases[-1])
        test_checkpoint(cli, record.handover_checkpoint(phases[-1].name))
    if not cli.trainer.is_global_zero:  # under DDP rank 0 alone writes the report; test metrics are synced
        return {
            "name": run.name,
            "version": record.run.version,
            "test": record.finished[phases[-1].name]["test"],
        }
    save_png(cli.model.grid_image("test"), record.run.report_file("grid"))
    results = results_of(record, phases, cli, run.name)
    write_experiment_report(record.run_dir, results)
    return results


def results_of(record: PhaseRecord, phases: list[Phase], cli: Any, name: str) -> dict[str, Any]:
    """The one results schema: the run, its totals, the last phase's checkpoint and test metrics, the
    references (trivial baselines fitted on the training split, the truth), per phase its training and test
    metrics, how the run was judged (splits, selection) and the learning verdicts."""
    run, datamodule, device = cli.config_init["run"], cli.datamodule, cli.model.device
    baselines = fit_and_save_baselines(datamodule, record.run_dir)
    rows = []
    for phase in phases:
        summary = record.finished[phase.name]
        rows.append({"name": phase.name or name, **{k: summary[k] for k in ("epochs", "steps", "fit_seconds", "folder")},
                     "handover_checkpoint": record.handover_checkpoint(phase.name), "test": summary["test"]})  # fmt: skip
    results = {
        "name": name,
        "version": record.run.version,
        "run_dir": str(record.run_dir),
        "model_class": type(cli.model).__name__,
        "data_class": type(cli.datamodule).__name__,
        "epochs": sum(row["epochs"] for row in rows),
        "steps": sum(row["steps"] for row in rows),
        "fit_seconds": sum(row["fit_seconds"] for row in rows),
        "hardware": hardware(),
        "best_checkpoint": rows[-1]["handover_checkpoint"],
        "delta_e00_checkpoint": record.finished[phases[-1].name].get("delta_e00_checkpoint"),
        "test": rows[-1]["test"],
        "reference": reference_metrics(datamodule, cli.model, baselines, baseline_frechet(run, device)),
        "phases": rows,
        **evaluation_summary(datamodule, run, baselines),
    }
    results["learning"] = verdicts(results)
    return results
