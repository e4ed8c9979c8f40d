"""``make gpu-check``: one prepared check that colorlab works on the GPU a user has (at most ~8 minutes on one).

On a CUDA GPU:

* every approach family (one experiment YAML each) trains a few steps at 256 px under bf16 and under fp16:
  every logged loss is finite and the trained weights change; images/s and peak VRAM per family and precision;
* the photo loader's images/s (workers as ``num_workers: auto`` picks them on a GPU) against the images/s
  the ``unet_effnet`` training step consumes;
* ``colorize`` of a 12 MP photo on the GPU equals the CPU result within 2 levels (of 255) per channel, in
  strict fp32 (the difference with TF32, cuDNN's default, is reported beside it);
* ``python -m colorlab experiment`` end to end under DDP with NCCL, on every visible GPU.

Without CUDA (or with ``--tiny``) the same checks run on the CPU, shrunk: 32 px crops, 2 steps under bf16, a
0.3 MP photo (CPU against CPU), the experiment under DDP with gloo on one process. That mode is what the test suite runs, so the
script keeps working between GPU runs. Each check prints a line; everything goes into one JSON; the exit
status is 1 when a check failed.

    python scripts/gpu_check.py [--tiny] [--out runs/gpu_check/gpu_check.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import colorlab  # noqa: F401  (first: it sets the OpenMP wait policy, which torch reads when it loads)

# isort: split
import lightning as L
import numpy as np
import torch
from PIL import Image

from colorlab.data.datamodule import DATA_ENV, FolderDataModule, default_loader_workers, usable_cores
from colorlab.inference.pipeline import colorize_full_resolution
from colorlab.training.cli import lightning_main

REPO = Path(__file__).resolve().parents[1]
# One experiment per approach family.
FAMILIES = {
    "regression": "unet_effnet",
    "classification": "zhang_cic",
    "nogan": "nogan_artistic",
    "pix2pix": "pix2pix",
    "vae": "vae_unet",
    "bigcolor": "bigcolor_ema",
    "chromagan": "chromagan",
    "restoration": "restore_colorize",
    "upscale": "upscale_x2",
}


# ---- set-up -------------------------------------------------------------------------------------------


class Mode:
    """What one run checks and at which size: the GPU run, or the tiny CPU run."""

    def __init__(self, tiny: bool) -> None:
        self.tiny = tiny
        self.device = "cpu" if tiny else "cuda"
        self.accelerator = "cpu" if tiny else "gpu"
        # fp32 is what the test suite trains everywhere; the tiny mode checks the mixed-precision path.
        self.precisions = ("bf16-mixed",) if tiny else ("bf16-mixed", "16-mixed")
        self.size, self.batch_size, self.steps = (32, 2, 2) if tiny else (256, 16, 12)
        self.megapixels = 0.3 if tiny else 12.0
        self.loader_batches = 3 if tiny else 30


def photos_folder(scratch: Path) -> Path:
    """``$COLORLAB_DATA`` when it holds train/ and val/, else 12 real photos (scikit-image's samples, enlarged
    to about 1 MP) written under ``scratch``."""
    given = Path(os.environ.get(DATA_ENV, "/nonexistent"))
    if (given / "train").is_dir() and (given / "val").is_dir():
        return given
    from colorlab.data.datasets import SAMPLE_TEST, SAMPLE_TRAIN, SAMPLE_VAL, load_samples

    names = SAMPLE_TRAIN + SAMPLE_VAL + SAMPLE_TEST
    for split, picked in (("train", names), ("val", names[:3])):
        (scratch / split).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(load_samples(picked)):
            photo = Image.fromarray(image.permute(1, 2, 0).numpy())
            photo.resize((1200, 900), Image.Resampling.BICUBIC).save(scratch / split / f"{i}.jpg", quality=92)
    return scratch


def overrides(mode: Mode, config: Path, root: Path, precision: str) -> list[str]:
    """Shrink an experiment to a few steps at ``mode.size`` px (64 for DeOldify's critic), no checkpoints."""
    size = max(mode.size, 64) if "DeOldifyCritic" in config.read_text() else mode.size
    return [
        "--config", str(config), f"--run.root={root}", "--run.wandb=disabled", "--trainer.logger=false",
        "--trainer.enable_checkpointing=false", "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
        "--trainer.max_epochs=1000", f"--trainer.max_steps={mode.steps * 4}", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", f"--trainer.accelerator={mode.accelerator}", "--trainer.devices=1",
        f"--trainer.precision={precision}", f"--data.init_args.batch_size={mode.batch_size}",
        f"--data.init_args.image_size={size}", f"--data.init_args.resize={size + size // 4}",
        f"--data.init_args.num_workers={0 if mode.tiny else 'auto'}",
    ]  # fmt: skip


# ---- every family trains ------------------------------------------------------------------------------


class Probe(L.Callback):
    """Stops after ``steps`` batches; keeps every logged ``train/`` value and times the batches after the first."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.losses: list[float] = []
        self.stamps: list[float] = []
        self.images = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())
        if len(self.stamps) > 1:
            self.images += len(batch["rgb"])
        self.losses += [float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")]
        if len(self.stamps) >= self.steps:
            trainer.should_stop = True

    @property
    def images_per_second(self) -> float:
        return self.images / (self.stamps[-1] - self.stamps[0]) if len(self.stamps) > 1 else float("nan")


def train_family(mode: Mode, family: str, precision: str, root: Path) -> tuple[dict[str, Any], Any]:
    """A few training steps of ``family`` under ``precision``: finite losses, changed weights, speed, memory."""
    config = REPO / "experiments" / f"{FAMILIES[family]}.yaml"
    argv = overrides(mode, config, root, precision)
    if family == "nogan":
        argv.append("--model.init_args.phase=gan")  # both nets train in the gan phase
    cli = lightning_main(argv, run=False)
    probe = Probe(mode.steps)
    cli.trainer.callbacks.append(probe)
    before = {name: p.detach().clone() for name, p in cli.model.named_parameters() if p.requires_grad}
    resident = 0
    if mode.device == "cuda":  # the peak counts this fit alone, not what earlier families left allocated
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        resident = torch.cuda.memory_allocated()
    start = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    after = dict(cli.model.named_parameters())
    changed = sum(not torch.equal(tensor, after[name].detach().to(tensor.device)) for name, tensor in before.items())
    row = {
        "experiment": config.stem,
        "steps": len(probe.stamps),
        "losses_finite": bool(probe.losses) and all(math.isfinite(v) for v in probe.losses),
        "tensors_changed": f"{changed}/{len(before)}",
        "weights_changed": changed > 0,
        "images_per_second": probe.images_per_second,
        "peak_vram_gib": (torch.cuda.max_memory_allocated() - resident) / 2**30 if mode.device == "cuda" else None,
        "seconds": time.perf_counter() - start,
        "image_size": cli.datamodule.image_size,
    }
    row["ok"] = row["losses_finite"] and row["weights_changed"]
    return row, cli


# ---- loader vs step, colorize, experiment -------------------------------------------------------------


def loader_images_per_second(mode: Mode, photos: Path) -> dict[str, Any]:
    """The photo loader alone, with the workers and pinning ``auto`` picks for one GPU process."""
    workers = 0 if mode.tiny else default_loader_workers(usable_cores(), 1, gpu=True)
    data = FolderDataModule(root=str(photos), batch_size=mode.batch_size, image_size=mode.size,
                            resize=mode.size + mode.size // 4, num_workers=workers,
                            pin_memory=mode.device == "cuda")  # fmt: skip
    data.setup("fit")
    loader = iter(data.train_dataloader())
    next(loader)  # worker start-up excluded
    start, images = time.perf_counter(), 0
    for _, batch in zip(range(mode.loader_batches), loader):
        images += len(batch["rgb"])
    return {"workers": workers, "images_per_second": images / (time.perf_counter() - start)}


def colorize_matches_cpu(mode: Mode, model: L.LightningModule, photos: Path) -> dict[str, Any]:
    """``colorize`` of a ``mode.megapixels`` photo on ``mode.device`` against the CPU, in fp32, in levels."""
    source = min((photos / "val").glob("*.*"))
    width = round((mode.megapixels * 1e6 * 4 / 3) ** 0.5)
    image = Image.open(source).convert("RGB").resize((width, width * 3 // 4), Image.Resampling.BICUBIC)
    rgb = torch.from_numpy(np.asarray(image)).permute(2, 0, 1)[None]
    model = model.float().eval()

    def colorize(device: str, tf32: bool) -> tuple[torch.Tensor, float]:
        # TF32 (cuDNN's default for convs on Ampere and newer) rounds to 10 mantissa bits: the strict check
        # runs without it; the default's difference is reported beside it.
        cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            start = time.perf_counter()
            with torch.no_grad():
                out = colorize_full_resolution(model.to(device), rgb.to(device))
            return (out.cpu() * 255).round(), time.perf_counter() - start
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul

    cpu, cpu_seconds = colorize("cpu", False)
    strict, seconds = colorize(mode.device, False)
    default, _ = colorize(mode.device, True)
    difference = (strict - cpu).abs()
    return {
        "megapixels": rgb.shape[-1] * rgb.shape[-2] / 1e6,
        "devices": f"{mode.device} vs cpu",
        "max_level_difference": float(difference.max()),
        "share_of_pixels_differing": float((difference > 0).float().mean()),
        "max_level_difference_with_tf32": float((default - cpu).abs().max()),
        "seconds": {mode.device: seconds, "cpu": cpu_seconds},
        "ok": float(difference.max()) <= 2,
    }


def experiment_end_to_end(mode: Mode, photos: Path, root: Path) -> dict[str, Any]:
    """``python -m colorlab experiment`` (the quickstart, shrunk) under DDP: NCCL on every GPU, or gloo on CPU."""
    devices = torch.cuda.device_count() if mode.device == "cuda" else 1
    command = [
        sys.executable, "-m", "colorlab", "experiment", "--config", str(REPO / "experiments" / "quickstart.yaml"),
        f"--run.root={root}", "--run.wandb=disabled", f"--trainer.accelerator={mode.accelerator}",
        f"--trainer.devices={devices}", "--trainer.strategy=ddp", f"--trainer.max_steps={mode.steps * 2}",
        "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", f"--data.init_args.image_size={mode.size}",
        f"--data.init_args.resize={mode.size + mode.size // 4}", f"--data.init_args.batch_size={mode.batch_size}",
        "--data.init_args.num_workers=0", "--data.init_args.persistent_workers=false",
    ]  # fmt: skip
    env = {**os.environ, DATA_ENV: str(photos), "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    results = sorted(root.glob("quickstart/*/results.json"))
    test = json.loads(results[-1].read_text())["test"] if results else {}
    return {
        "backend": "nccl" if mode.device == "cuda" else "gloo",
        "devices": devices,
        "returncode": done.returncode,
        "seconds": time.perf_counter() - start,
        "test": test,
        "stderr_tail": done.stderr[-2000:] if done.returncode else "",
        "ok": done.returncode == 0 and bool(test) and all(math.isfinite(v) for v in test.values()),
    }


# ---- the run ------------------------------------------------------------------------------------------


def guarded(name: str, check: Callable[[], dict[str, Any]], line: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """Run one check and print its line; a check that raises is a failed row with the traceback's end, so one
    broken check does not hide the others."""
    try:
        row = check()
    except Exception as error:  # noqa: BLE001  (reported as a failed check, the others still run)
        row = {"ok": False, "error": "".join(traceback.format_exception(error))[-3000:]}
        print(f"BAD {name}: {row['error']}")
        return row
    print(line(row))
    return row


def family_line(family: str, precision: str, row: dict[str, Any]) -> str:
    """The printed line of one family's training check."""
    vram = f", peak VRAM {row['peak_vram_gib']:.2f} GiB" if row["peak_vram_gib"] is not None else ""
    return (f"{'ok ' if row['ok'] else 'BAD'} {family:14s} {precision:10s} {row['image_size']} px: "
            f"{row['images_per_second']:8.1f} images/s{vram}, losses finite {row['losses_finite']}, "
            f"weights changed {row['tensors_changed']}")  # fmt: skip


def machine(mode: Mode) -> dict[str, Any]:
    """Where the check ran."""
    info = {"torch": torch.__version__, "cuda_build": torch.version.cuda, "tiny": mode.tiny}
    if mode.device == "cuda":
        info.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(),
                    bf16_native=torch.cuda.is_bf16_supported(including_emulation=False))  # fmt: skip
    return info


def main(argv: list[str] | None = None) -> int:
    """Run every check, print one line each, write the JSON; 0 when all passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the CPU mode (automatic without CUDA)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "gpu_check" / "gpu_check.json")
    args = parser.parse_args(argv)
    mode = Mode(tiny=args.tiny or not torch.cuda.is_available())
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    os.environ.setdefault("COLORLAB_CACHE", str(scratch / "cache"))
    photos = photos_folder(scratch / "photos")
    os.environ[DATA_ENV] = str(photos)
    started = time.perf_counter()
    report: dict[str, Any] = {"machine": machine(mode), "families": {}}
    print(f"gpu-check on {report['machine']}" + (" (tiny CPU mode: NOT a GPU check)" if mode.tiny else ""))
    models: dict[str, L.LightningModule] = {}

    def train(family: str, precision: str) -> dict[str, Any]:
        row, cli = train_family(mode, family, precision, scratch / "runs")
        if family == "regression" and precision == mode.precisions[0]:
            models["regression"] = cli.model  # the model the colorize check uses
        return row

    for family in FAMILIES:
        for precision in mode.precisions:
            report["families"][f"{family}/{precision}"] = guarded(
                f"{family} {precision}", partial(train, family, precision), partial(family_line, family, precision)
            )
    step = report["families"][f"regression/{mode.precisions[0]}"].get("images_per_second", float("nan"))
    report["loader"] = guarded(
        "loader", lambda: {**loader_images_per_second(mode, photos), "step_images_per_second": step},
        lambda r: f"loader {r['images_per_second']:.0f} images/s with {r['workers']} workers; "
                  f"the regression step consumes {step:.0f} images/s",
    )  # fmt: skip

    def colorize() -> dict[str, Any]:
        if "regression" not in models:
            raise RuntimeError("the regression family did not train, so there is no model to colorize with")
        return colorize_matches_cpu(mode, models["regression"], photos)

    report["colorize"] = guarded(
        "colorize", colorize,
        lambda cz: f"{'ok ' if cz['ok'] else 'BAD'} colorize {cz['megapixels']:.1f} MP {cz['devices']}: max "
                   f"difference {cz['max_level_difference']:.0f} levels ({cz['share_of_pixels_differing']:.2%} of "
                   f"values differ; {cz['max_level_difference_with_tf32']:.0f} with TF32); {cz['seconds']}",
    )  # fmt: skip
    report["experiment"] = guarded(
        "experiment", lambda: experiment_end_to_end(mode, photos, scratch / "experiment"),
        lambda ex: f"{'ok ' if ex['ok'] else 'BAD'} experiment under DDP ({ex['backend']}, {ex['devices']} "
                   f"device(s)) in {ex['seconds']:.0f} s: test {ex['test']}{ex['stderr_tail']}",
    )  # fmt: skip
    checks = [*(row["ok"] for row in report["families"].values()), report["colorize"]["ok"],
              report["experiment"]["ok"], "error" not in report["loader"]]  # fmt: skip
    report["ok"] = all(checks)
    report["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"{'all checks passed' if report['ok'] else 'SOME CHECKS FAILED'} in {report['seconds']:.0f} s; wrote {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
