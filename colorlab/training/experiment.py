"""``python -m colorlab experiment``: fit an experiment YAML, test its best checkpoint, write a report.

The run folder (``runs/NAME/VERSION``) ends up with ``checkpoints/``, the CSV log, ``report.md``,
``test_metrics.csv``, ``results.json``, ``test_grid.png`` (input gray | prediction | truth) and
``baselines.json`` (the trivial baselines fitted on the training split, see :mod:`colorlab.baselines`).
The report states the three splits (train fits, val selects, test only reports), scores the model and every
baseline on the test split, and says whether the model beats the best baseline ("learning: yes/no").

A YAML whose ``run.phases`` lists several fits (e.g. DeOldify's NoGAN) runs them in order, each in
``runs/NAME/VERSION/PHASE/`` and starting from the previous phase's best checkpoint (see
:mod:`colorlab.training.phases`); the report then sits in ``runs/NAME/VERSION`` and also tests every phase.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from colorlab.approaches.base import ColorizationModule
from colorlab.baselines import (
    BASELINE_NAMES,
    BASELINES_FILE,
    Baselines,
    fit_on_datamodule,
    learning_verdict,
    verdict_line,
)
from colorlab.data.datamodule import LabDataModule
from colorlab.inference.checkpoints import allowed_globals
from colorlab.metrics import FRECHET_KEY, FrechetEffNetDistance, colorfulness, colorization_metrics
from colorlab.training.phases import Phase, PhaseRecord, latest_phased_run, load_phase_weights, parse_phases
from colorlab.training.runs import NothingToResume, RunFolder, RunSettings
from colorlab.visualize import save_png

METRICS = ("psnr", "ssim", "delta_e00", "colorfulness", "colorfulness_gap", FRECHET_KEY)
HEADERS = ("PSNR (dB) ↑", "SSIM ↑", "ΔE00 ↓", "colorfulness", "colorfulness gap ↓", "Fréchet EffNet ↓")
# The headline metric (README table, issue targets): every report's learning verdict is on it.
HEADLINE = "delta_e00"


@torch.no_grad()
def test_set_metrics(
    datamodule: LabDataModule,
    device: torch.device,
    colorize: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    frechet: FrechetEffNetDistance | None = None,
) -> tuple[dict[str, float], float]:
    """Test-set metrics of ``colorize`` (a Lab batch -> sRGB in [0, 1]) and the truth's mean colorfulness.

    ``frechet``, when given, adds the Fréchet distance; its truth statistics are kept after the first call, so
    one instance scores several colorizers on the same (fixed) test split for the price of one truth pass.
    """
    datamodule.setup("test")
    metrics = colorization_metrics("test/").to(device)
    truth_colorfulness, count = 0.0, 0
    for batch in datamodule.test_dataloader():
        batch = datamodule.on_after_batch_transfer({k: v.to(device) for k, v in batch.items()}, 0)
        pred = colorize(batch)
        metrics.update(pred, batch["rgb"])
        if frechet is not None:
            frechet.update(pred, batch["rgb"])
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
    device: torch.device,
    baselines: Baselines,
    frechet: FrechetEffNetDistance | None,
) -> dict[str, dict[str, float]]:
    """Test-set metrics of every trivial baseline (keyed ``gray``, ``mean_ab``, ``lookup``) and the ground
    truth's own colorfulness (``truth``)."""
    reference: dict[str, dict[str, float]] = {}
    truth_colorfulness = 0.0
    for key, baseline in baselines.colorizers().items():

        def colorize(batch: dict[str, torch.Tensor], baseline=baseline) -> torch.Tensor:
            return baseline.colorize_rgb(batch.get("L_input", batch["L"]))

        reference[key], truth_colorfulness = test_set_metrics(datamodule, device, colorize, frechet)
    reference["truth"] = {"colorfulness": truth_colorfulness}
    return reference


def model_colorizer(model: ColorizationModule) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """A Lab batch -> the model's sRGB picture, for :func:`test_set_metrics`."""
    return lambda batch: model.colorize_rgb(model.model_input(batch))


def fit_and_save_baselines(datamodule: LabDataModule, run_dir: Path) -> Baselines:
    """Fit the trivial baselines on the training split and save them as ``run_dir/baselines.json`` (which
    ``evaluate`` reads for the run's checkpoints)."""
    baselines = fit_on_datamodule(datamodule, seed=datamodule.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    baselines.save(run_dir / BASELINES_FILE)
    return baselines


def baseline_frechet(run: Any, device: torch.device) -> FrechetEffNetDistance | None:
    """The Fréchet distance for scoring baselines on the test split, when the run logs it (``run.frechet_effnet``)."""
    return FrechetEffNetDistance().to(device) if getattr(run, "frechet_effnet", False) else None


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
    out = {HEADLINE: learning_verdict(results["test"], baselines, HEADLINE)}
    selected = results.get("selection", {}).get("monitor", "").removeprefix("val/")
    if selected and selected != HEADLINE:
        out[selected] = learning_verdict(results["test"], baselines, selected)
    return out


def judgement_lines(results: dict[str, Any]) -> list[str]:
    """Report lines: the three splits with sizes and roles, the selection metric, and learning yes/no."""
    lines = ["## splits", ""]
    for name, split in results.get("splits", {}).items():
        lines.append(f"- **{name}** ({split['size']} images): {split['role']}; {split['source']}")
    selection = results.get("selection")
    if selection:
        lines.append(f"- checkpoint selected on `{selection['monitor']}` ({selection['mode']})")
    fit = results.get("baselines")
    if fit:
        lines.append(
            f"- trivial baselines fitted on {fit['source']} ({fit['pixels']} pixels; `{fit['file']}`)"
        )
    lines += ["", "## verdict", ""]
    lines += [f"- {verdict_line(v)}" for v in results.get("learning", {}).values()]
    return [*lines, ""]


def hardware() -> str:
    """A one-line description of where the run happened."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def write_report(run_dir: Path, results: dict[str, Any]) -> dict[str, Path]:
    """Write report.md, test_metrics.csv and results.json into ``run_dir``; return their paths."""
    rows = [
        (f"{results['name']} (best checkpoint)", results["test"]),
        *(
            (name, results["reference"][key])
            for key, name in BASELINE_NAMES.items()
            if key in results["reference"]
        ),
        ("ground truth", results["reference"]["truth"]),
    ]
    paths = {"report": run_dir / "report.md", "csv": run_dir / "test_metrics.csv", "json": run_dir / "results.json"}
    with paths["csv"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", *METRICS])
        for label, values in rows:
            writer.writerow([label, *(values.get(m, "") for m in METRICS)])
    table = ["| model (test split) | " + " | ".join(HEADERS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for label, values in rows:
        cells = [f"{values[m]:.3f}" if m in values else "" for m in METRICS]
        table.append(f"| {label} | " + " | ".join(cells) + " |")
    lines = [
        f"# {results['name']} / {run_dir.name}",
        "",
        f"- approach: `{results['model_class']}`; data: `{results['data_class']}`",
        (
            f"- trained {results['epochs']} epochs, {results['steps']} steps in {results['fit_seconds']:.0f} s "
            f"on {results['hardware']}"
        ),
        f"- best checkpoint: `{results['best_checkpoint']}`",
        "",
        *table,
        "",
        *judgement_lines(results),
        *phase_table(results.get("phases", [])),
        "![input | prediction | truth](test_grid.png)",
        "",
    ]
    paths["report"].write_text("\n".join(lines))
    paths["json"].write_text(json.dumps(results, indent=2))
    return paths


def phase_table(phases: list[dict[str, Any]]) -> list[str]:
    """Report lines for a multi-phase run: per phase its training and the test metrics of its checkpoint."""
    if not phases:
        return []
    lines = [
        "## phases (test metrics of the checkpoint each phase hands on)",
        "",
        "| phase | epochs | steps | fit (s) | " + " | ".join(HEADERS) + " | checkpoint |",
        "|---" * (len(METRICS) + 5) + "|",
    ]
    for phase in phases:
        test = phase.get("test", {})
        cells = [f"{test[m]:.3f}" if m in test else "" for m in METRICS]
        lines.append(f"| {phase['name']} | {phase['epochs']} | {phase['steps']} | {phase['fit_seconds']:.0f} | "
                     + " | ".join(cells) + f" | `{phase['handover_checkpoint']}` |")  # fmt: skip
    return [*lines, ""]


def fit(trainer: Any, model: ColorizationModule, datamodule: LabDataModule, ckpt_path: str | None) -> dict[str, Any]:
    """Fit (from ``ckpt_path`` when resuming); returns epochs, steps, seconds and the best checkpoint."""
    start = time.perf_counter()
    with allowed_globals():  # a resumed fit reads its checkpoint as data only
        trainer.fit(model, datamodule, ckpt_path=ckpt_path, weights_only=True)
    return {
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "fit_seconds": time.perf_counter() - start,
        "best_checkpoint": getattr(trainer.checkpoint_callback, "best_model_path", "") or None,
    }


def parse_run_section(argv: list[str]) -> Any:
    """The ``run:`` section as ``fit`` would parse the YAMLs and overrides, without building anything
    (``version`` stays None unless given)."""
    from colorlab.training.cli import ColorlabCLI

    class ParseOnly(ColorlabCLI):
        def before_instantiate_classes(self) -> None:
            return None

        def instantiate_classes(self) -> None:
            return None

    return ParseOnly(args=argv, run=False).config["run"]


def finish_wandb_run() -> None:
    """End the active W&B run, if any, so that the next phase's logger starts its own run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def run_experiment(configs: list[str], overrides: list[str], resume: bool = False) -> dict[str, Any]:
    """Fit the experiment (every phase of it, when its YAML lists ``run.phases``), test the best checkpoint,
    and write the report; returns the results."""
    from colorlab.training.cli import lightning_main

    config_args = [arg for config in configs for arg in ("--config", config)]
    run_section = parse_run_section(config_args + overrides)
    if run_section.phases:
        return run_phases(config_args, overrides, run_section, resume)
    argv = config_args + overrides
    if resume:
        argv.append("--run.resume=true")
    cli = lightning_main(argv, run=False)
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    run = cli.config_init["run"]
    resume_from = RunFolder(run.run_dir).resume_checkpoint() if resume else None
    summary = fit(trainer, model, datamodule, ckpt_path=str(resume_from) if resume_from else None)
    best = summary["best_checkpoint"]
    with allowed_globals():
        test = trainer.test(model, datamodule, ckpt_path=best, verbose=False, weights_only=True)[0]
    run_dir = Path(trainer.log_dir or run.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    grid = save_png(model.grid_image("test"), run_dir / "test_grid.png")
    baselines = fit_and_save_baselines(datamodule, run_dir)
    results = {
        "name": run.name,
        "version": run.version,
        "model_class": type(model).__name__,
        "data_class": type(datamodule).__name__,
        "epochs": summary["epochs"],
        "steps": summary["steps"],
        "fit_seconds": summary["fit_seconds"],
        "hardware": hardware(),
        "best_checkpoint": best,
        "test": {k.removeprefix("test/"): float(v) for k, v in test.items()},
        "reference": reference_metrics(datamodule, model.device, baselines, baseline_frechet(run, model.device)),
        **evaluation_summary(datamodule, run, baselines),
    }
    results["learning"] = verdicts(results)
    paths = write_report(run_dir, results)
    print(f"\nrun folder:  {run_dir}\nreport:      {paths['report']}\nmetrics:     {paths['csv']}\n"
          f"image grid:  {grid}\ncheckpoint:  {best}")  # fmt: skip
    return results


def run_phases(config_args: list[str], overrides: list[str], run_section: Any, resume: bool) -> dict[str, Any]:
    """Run the YAML's phases in order (a resumed run skips finished ones and continues the interrupted one
    from its ``last.ckpt``), then test every phase's checkpoint and write the report into the run folder."""
    from colorlab.training.cli import lightning_main

    phases = parse_phases(run_section.phases)
    experiment_dir = Path(run_section.root) / run_section.name
    if run_section.version:
        run_dir = experiment_dir / run_section.version
    elif resume:
        run_dir = latest_phased_run(experiment_dir)
    else:
        run_dir = experiment_dir / RunSettings(name=run_section.name, root=run_section.root).new_version()
    record = PhaseRecord.open(run_dir, [phase.name for phase in phases], resume)

    def build(phase: Phase) -> Any:
        finish_wandb_run()
        argv = [*config_args, *phase.argv(), *overrides, f"--run.version={run_dir.name}/{phase.name}"]
        return lightning_main(argv, run=False)

    handover: str | dict[str, torch.Tensor] | None = None  # what the next phase starts from
    cli = None
    for previous, phase in zip([None, *phases], phases):
        if phase.name in record.finished:
            print(f"phase {phase.name}: finished in an earlier run, skipped")
            handover = record.handover_checkpoint(phase.name)
            continue
        cli = build(phase)
        last = cli.config_init["run"].checkpoint_dir / "last.ckpt"
        resume_from = RunFolder(run_dir / phase.name).resume_checkpoint() if resume else None
        ckpt_path = str(resume_from) if resume_from else None
        if ckpt_path is None and previous is not None:
            if handover is None:
                raise FileNotFoundError(f"phase {phase.name!r} starts from phase {previous.name!r}, "
                                        f"which left no checkpoint in {run_dir / previous.name}")  # fmt: skip
            load_phase_weights(cli.model, handover, phase.name)
        record.save()  # from now on --resume finds this run
        summary = fit(cli.trainer, cli.model, cli.datamodule, ckpt_path)
        summary.update(last_checkpoint=str(last) if last.is_file() else None, folder=str(run_dir / phase.name))
        record.finish(phase.name, summary)
        handover = record.handover_checkpoint(phase.name) or cli.model.state_dict()
        print(f"phase {phase.name}: {summary['epochs']} epochs, {summary['steps']} steps in {run_dir / phase.name}")

    if cli is None:  # every phase finished earlier: only the evaluation is left
        if handover is None:
            raise FileNotFoundError(f"the last phase of {run_dir} left no checkpoint to test")
        cli = build(phases[-1])
    return report_phases(cli, phases, record, run_section.name)


def report_phases(cli: Any, phases: list[Phase], record: PhaseRecord, name: str) -> dict[str, Any]:
    """Test the last phase's checkpoint (logged like a single-phase run) and, on the same test set, the
    checkpoint every earlier phase handed on; write the report into the run folder and print the paths."""
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    final_checkpoint = record.handover_checkpoint(phases[-1].name)
    with allowed_globals():
        test = trainer.test(model, datamodule, ckpt_path=final_checkpoint, verbose=False, weights_only=True)[0]
    grid = save_png(model.grid_image("test"), record.run_dir / "test_grid.png")
    run = cli.config_init["run"]
    baselines = fit_and_save_baselines(datamodule, record.run_dir)
    frechet = baseline_frechet(run, model.device)
    reference = reference_metrics(datamodule, model.device, baselines, frechet)
    rows = []
    for phase in phases:
        summary, checkpoint = record.finished[phase.name], record.handover_checkpoint(phase.name)
        if phase is phases[-1]:
            values = {k.removeprefix("test/"): float(v) for k, v in test.items()}
        elif checkpoint is None:  # e.g. fast_dev_run saves nothing
            values = {}
        else:
            load_phase_weights(model, checkpoint, phase.name)
            model.eval()
            values, _ = test_set_metrics(datamodule, model.device, model_colorizer(model), frechet)
        keys = ("epochs", "steps", "fit_seconds", "folder")
        rows.append({"name": phase.name, **{k: summary[k] for k in keys}, "handover_checkpoint": checkpoint,
                     "test": values})  # fmt: skip
    results = {
        "name": name,
        "version": record.run_dir.name,
        "model_class": type(model).__name__,
        "data_class": type(datamodule).__name__,
        "epochs": sum(row["epochs"] for row in rows),
        "steps": sum(row["steps"] for row in rows),
        "fit_seconds": sum(row["fit_seconds"] for row in rows),
        "hardware": hardware(),
        "best_checkpoint": final_checkpoint,
        "test": rows[-1]["test"],
        "reference": reference,
        "phases": rows,
        **evaluation_summary(datamodule, run, baselines),
    }
    results["learning"] = verdicts(results)
    paths = write_report(record.run_dir, results)
    for row in rows:
        print(f"\nphase {row['name']}:\n  metrics:     {Path(row['folder']) / 'metrics.csv'}\n"
              f"  checkpoint:  {row['handover_checkpoint']}")  # fmt: skip
    print(f"\nrun folder:  {record.run_dir}\nreport:      {paths['report']}\nmetrics:     {paths['csv']}\n"
          f"image grid:  {grid}\ncheckpoint:  {final_checkpoint}")  # fmt: skip
    return results


def main(argv: list[str]) -> dict[str, Any]:
    """CLI: ``python -m colorlab experiment --config X.yaml [--resume] [--trainer.max_epochs=1 ...]``."""
    parser = argparse.ArgumentParser(prog="python -m colorlab experiment", description=__doc__)
    parser.add_argument("--config", action="append", required=True, help="experiment YAML (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the latest run from its last.ckpt")
    args, overrides = parser.parse_known_args(argv)
    try:
        return run_experiment(args.config, overrides, resume=args.resume)
    except NothingToResume as exc:
        raise SystemExit(f"error: {exc}") from None
