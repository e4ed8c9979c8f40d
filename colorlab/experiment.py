"""``python -m colorlab experiment``: fit an experiment YAML, test its best checkpoint, write a report.

The run folder (``runs/NAME/VERSION``) ends up with ``checkpoints/``, the CSV log, ``report.md``,
``test_metrics.csv``, ``results.json`` and ``test_grid.png`` (input gray | prediction | truth).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from colorlab.color import lab_normalized_to_rgb
from colorlab.data.datamodule import LabDataModule
from colorlab.metrics import colorfulness, colorization_metrics
from colorlab.visualize import save_png

METRICS = ("psnr", "ssim", "delta_e00", "colorfulness")


@torch.no_grad()
def reference_metrics(datamodule: LabDataModule, device: torch.device) -> dict[str, dict[str, float]]:
    """Test-set metrics of the gray baseline (ab = 0) and the ground truth's own colorfulness."""
    datamodule.setup("test")
    gray = colorization_metrics("test/").to(device)
    truth_colorfulness, count = 0.0, 0
    for batch in datamodule.test_dataloader():
        batch = datamodule.on_after_batch_transfer({k: v.to(device) for k, v in batch.items()}, 0)
        zeros = torch.zeros_like(batch["ab"])
        gray.update(lab_normalized_to_rgb(batch.get("L_input", batch["L"]), zeros), batch["rgb"])
        truth_colorfulness += colorfulness(batch["rgb"]).sum().item()
        count += batch["rgb"].shape[0]
    gray_values = {k.removeprefix("test/"): v.item() for k, v in gray.compute().items()}
    return {"gray": gray_values, "truth": {"colorfulness": truth_colorfulness / max(count, 1)}}


def hardware() -> str:
    """A one-line description of where the run happened."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def write_report(run_dir: Path, results: dict[str, Any]) -> dict[str, Path]:
    """Write report.md, test_metrics.csv and results.json into ``run_dir``; return their paths."""
    rows = [
        (f"{results['name']} (best checkpoint)", results["test"]),
        ("gray baseline (ab = 0)", results["reference"]["gray"]),
        ("ground truth", results["reference"]["truth"]),
    ]
    paths = {"report": run_dir / "report.md", "csv": run_dir / "test_metrics.csv", "json": run_dir / "results.json"}
    with paths["csv"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", *METRICS])
        for label, values in rows:
            writer.writerow([label, *(values.get(m, "") for m in METRICS)])
    table = ["| model | PSNR (dB) ↑ | SSIM ↑ | ΔE00 ↓ | colorfulness |", "|---|---|---|---|---|"]
    for label, values in rows:
        cells = [f"{values[m]:.3f}" if m in values else "" for m in METRICS]
        table.append(f"| {label} | " + " | ".join(cells) + " |")
    lines = [
        f"# {results['name']} / {run_dir.name}",
        "",
        f"- approach: `{results['model_class']}`; data: `{results['data_class']}`",
        f"- trained {results['epochs']} epochs, {results['steps']} steps in {results['fit_seconds']:.0f} s "
        f"on {results['hardware']}",
        f"- best checkpoint: `{results['best_checkpoint']}`",
        "",
        *table,
        "",
        "![input | prediction | truth](test_grid.png)",
        "",
    ]
    paths["report"].write_text("\n".join(lines))
    paths["json"].write_text(json.dumps(results, indent=2))
    return paths


def run_experiment(configs: list[str], overrides: list[str], resume: bool = False) -> dict[str, Any]:
    """Fit the experiment, test the best checkpoint, and write the report; returns the results."""
    from colorlab.cli import lightning_main

    argv = [arg for config in configs for arg in ("--config", config)] + overrides
    if resume:
        argv.append("--run.resume=true")
    cli = lightning_main(argv, run=False)
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    run = cli.config_init["run"]
    last = run.checkpoint_dir / "last.ckpt"
    start = time.perf_counter()
    trainer.fit(model, datamodule, ckpt_path=str(last) if resume else None)
    fit_seconds = time.perf_counter() - start
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    test = trainer.test(model, datamodule, ckpt_path=best, verbose=False)[0]
    run_dir = Path(trainer.log_dir or run.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    grid = save_png(model.grid_image("test"), run_dir / "test_grid.png")
    results = {
        "name": run.name,
        "version": run.version,
        "model_class": type(model).__name__,
        "data_class": type(datamodule).__name__,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "fit_seconds": fit_seconds,
        "hardware": hardware(),
        "best_checkpoint": best,
        "test": {k.removeprefix("test/"): float(v) for k, v in test.items()},
        "reference": reference_metrics(datamodule, model.device),
    }
    paths = write_report(run_dir, results)
    print(f"\nrun folder:  {run_dir}\nreport:      {paths['report']}\nmetrics:     {paths['csv']}\n"
          f"image grid:  {grid}\ncheckpoint:  {best}")  # fmt: skip
    return results


def main(argv: list[str]) -> dict[str, Any]:
    """CLI: ``python -m colorlab experiment --config X.yaml [--resume] [--trainer.max_epochs=1 ...]``."""
    parser = argparse.ArgumentParser(prog="python -m colorlab experiment", description=__doc__)
    parser.add_argument("--config", action="append", required=True, help="experiment YAML (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the latest run from its last.ckpt")
    args, overrides = parser.parse_known_args(argv)
    return run_experiment(args.config, overrides, resume=args.resume)

