"""The experiment pipeline: fit every phase of an experiment, test the checkpoint each phase hands on, report.

A YAML without ``run.phases`` is a run of one phase; one whose ``run.phases`` lists several fits (e.g.
DeOldify's NoGAN) runs them in order, each in ``runs/NAME/VERSION/PHASE/`` and starting from the previous
phase's checkpoint (see :mod:`colorlab.training.phases`). Either way, every phase's checkpoint is tested by
its own trainer right after its fit (the test rows land in that phase's CSV log), and the run folder
``runs/NAME/VERSION`` ends up with ``report.md``, ``test_metrics.csv``, ``results.json`` (one schema, written by
:func:`colorlab.report.write_experiment_report`) and ``test_grid.png`` (input gray | prediction | truth).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from colorlab.approaches.base import ColorizationModule
from colorlab.color import lab_normalized_to_rgb
from colorlab.data.datamodule import LabDataModule
from colorlab.metrics import colorfulness, colorization_metrics
from colorlab.report import write_experiment_report
from colorlab.training.config import config_args, load_config
from colorlab.training.phases import Phase, PhaseRecord, load_phase_weights, parse_phases
from colorlab.training.runs import RunFolder, RunSettings, finish_wandb_run
from colorlab.visualize import save_png


@torch.no_grad()
def test_set_metrics(
    datamodule: LabDataModule,
    device: torch.device,
    colorize: Callable[[dict[str, torch.Tensor]], torch.Tensor],
) -> tuple[dict[str, float], float]:
    """Test-set metrics of ``colorize`` (a Lab batch -> sRGB in [0, 1]) and the truth's mean colorfulness."""
    datamodule.setup("test")
    metrics = colorization_metrics("test/").to(device)
    truth_colorfulness, count = 0.0, 0
    for batch in datamodule.test_dataloader():
        batch = datamodule.on_after_batch_transfer({k: v.to(device) for k, v in batch.items()}, 0)
        metrics.update(colorize(batch), batch["rgb"])
        truth_colorfulness += colorfulness(batch["rgb"]).sum().item()
        count += batch["rgb"].shape[0]
    values = {k.removeprefix("test/"): v.item() for k, v in metrics.compute().items()}
    return values, truth_colorfulness / max(count, 1)


def reference_metrics(datamodule: LabDataModule, device: torch.device) -> dict[str, dict[str, float]]:
    """Test-set metrics of the gray baseline (ab = 0) and the ground truth's own colorfulness."""

    def gray(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return lab_normalized_to_rgb(batch.get("L_input", batch["L"]), torch.zeros_like(batch["ab"]))

    gray_values, truth_colorfulness = test_set_metrics(datamodule, device, gray)
    return {"gray": gray_values, "truth": {"colorfulness": truth_colorfulness}}


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
    trainer.fit(model, datamodule, ckpt_path=ckpt_path)
    return {
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "fit_seconds": time.perf_counter() - start,
        "best_checkpoint": getattr(trainer.checkpoint_callback, "best_model_path", "") or None,
    }


def test_checkpoint(cli: Any, checkpoint: str | None) -> dict[str, float]:
    """Test metrics of ``checkpoint`` (None: the weights in memory, e.g. after fast_dev_run saved nothing)."""
    test = cli.trainer.test(cli.model, cli.datamodule, ckpt_path=checkpoint, verbose=False)[0]
    return {k.removeprefix("test/"): float(v) for k, v in test.items()}


def open_run(run: Any, phases: list[Phase], resume: bool) -> PhaseRecord:
    """The run folder (the ``run:`` section's version, the latest resumable run, or a new one) and its record
    of finished phases."""
    names = [phase.name for phase in phases]
    if run.version:
        folder = RunFolder(Path(run.root) / run.name / run.version)
    elif resume:
        folder = RunFolder.latest_resumable(run.root, run.name)
    else:
        folder = RunFolder(
            Path(run.root) / run.name / RunSettings(name=run.name, root=run.root).new_version()
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
            print(f"phase {phase.name}: finished in an earlier run, skipped")
            handover = record.handover_checkpoint(phase.name)
            continue
        cli = build(phase)
        folder = record.run.phase_folder(phase.name)
        last = folder.checkpoint_dir / "last.ckpt"
        ckpt_path = str(last) if resume and last.is_file() else None
        if ckpt_path is None and previous is not None:
            if handover is None:
                raise FileNotFoundError(f"phase {phase.name!r} starts from phase {previous.name!r}, "
                                        f"which left no checkpoint in {record.run.phase_folder(previous.name).path}")  # fmt: skip
            load_phase_weights(cli.model, handover, phase.name)
        record.save()  # from now on --resume finds this run
        summary = fit(cli.trainer, cli.model, cli.datamodule, ckpt_path)
        summary.update(last_checkpoint=str(last) if last.is_file() else None, folder=str(folder.path))
        checkpoint = summary["best_checkpoint"] or summary["last_checkpoint"]
        summary["test"] = test_checkpoint(cli, checkpoint)
        record.finish(phase.name, summary)
        handover = record.handover_checkpoint(phase.name) or cli.model.state_dict()
        if phase.name:
            print(
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
    save_png(cli.model.grid_image("test"), record.run_dir / "test_grid.png")
    results = results_of(record, phases, cli, run.name)
    write_experiment_report(record.run_dir, results)
    return results


def results_of(record: PhaseRecord, phases: list[Phase], cli: Any, name: str) -> dict[str, Any]:
    """The one results schema: the run, its totals, the last phase's checkpoint and test metrics, the
    references (gray baseline, truth) and per phase its training and test metrics."""
    rows = []
    for phase in phases:
        summary = record.finished[phase.name]
        rows.append({"name": phase.name or name, **{k: summary[k] for k in ("epochs", "steps", "fit_seconds", "folder")},
                     "handover_checkpoint": record.handover_checkpoint(phase.name), "test": summary["test"]})  # fmt: skip
    return {
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
        "test": rows[-1]["test"],
        "reference": reference_metrics(cli.datamodule, cli.model.device),
        "phases": rows,
    }
