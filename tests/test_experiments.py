"""Every experiment YAML parses and runs a very short fit + test offline on CPU (the `make smoke` setting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from colorlab.training.config import load_config
from colorlab.training.experiment import run_experiment
from tests.helpers import fake_cifar

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))


def test_the_shipped_experiments_exist():
    names = {p.stem for p in EXPERIMENTS}
    assert {"quickstart", "cifar100_cnn", "unet_l1"} <= names


@pytest.mark.parametrize("config", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_experiment_runs_a_short_fit(config: Path, tiny_photos: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("COLORLAB_DATA", str(tiny_photos))
    spec = load_config([config])
    overrides = [
        f"--run.root={tmp_path / 'runs'}", "--run.wandb=disabled",
        "--trainer.fast_dev_run=2", "--trainer.accelerator=cpu", "--trainer.devices=1",
        "--trainer.enable_progress_bar=false",
        "--data.init_args.num_workers=0", "--data.init_args.batch_size=2",
    ]  # fmt: skip
    if spec["data.class_path"].endswith("CIFARDataModule"):
        variant = spec["data.init_args.variant"]
        fake_cifar(tmp_path / "cifar", variant)
        overrides += [f"--data.init_args.root={tmp_path / 'cifar'}", "--data.init_args.download=false"]
    results = run_experiment([str(config)], overrides)
    # Colorizers report every colour metric; an upscaler is scored on luminance (PSNR, SSIM) only.
    colour = () if spec["model"]["class_path"].endswith("Upscaler") else ("delta_e00", "colorfulness")
    scored = ("psnr", "ssim", *colour)
    for metric in scored:
        assert results["test"][metric] == results["test"][metric], f"{metric} is NaN"
