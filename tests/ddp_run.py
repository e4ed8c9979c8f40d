"""Run experiment YAMLs, shrunk to a few steps at 32 px, under 2-process CPU DDP (gloo), one after another.

``python tests/ddp_run.py OUT CONFIG [CONFIG ...]``: Lightning's DDP launcher re-runs this script for rank 1,
so both ranks run every experiment; each rank writes ``OUT/<stem>.rank<R>.json`` with what it returned and
``OUT/<stem>.weights.rank<R>.pt`` with its trained weights (every parameter; BigColor's whole EMA generator).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import yaml
from lightning.pytorch import Callback

from colorlab.training.experiment import run_experiment
from tests.helpers import fake_cifar
from tests.tiny_experiment import SIZE

DDP = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]


class DumpWeights(Callback):
    """Saves this rank's parameters (and the whole state of BigColor's EMA generator) when fitting ends."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_end(self, trainer, pl_module) -> None:
        weights = {name: p.detach().clone() for name, p in pl_module.named_parameters()}
        if hasattr(pl_module, "ema"):
            weights.update({f"ema.{k}": v.clone() for k, v in pl_module.colorizer.generator.state_dict().items()})
        torch.save(weights, f"{self.path}.rank{trainer.global_rank}.pt")


def tiny_overrides(config: Path, out: Path) -> list[str]:
    """A couple of optimizer steps at 32 px (64 for DeOldify's critic), batches of 2, no loader workers, W&B offline."""
    spec = yaml.safe_load(config.read_text())
    data = (spec.get("data") or {}).get("class_path", "")  # composed YAMLs (config: base.yaml) may lack it
    size = 64 if "DeOldifyCritic" in config.read_text() else SIZE  # DeOldify's critic needs 64 px
    overrides = [
        f"--run.root={out / 'runs'}", "--run.wandb=offline", "--trainer.max_steps=2", "--trainer.max_epochs=2",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.num_sanity_val_steps=0", "--trainer.log_every_n_steps=1",
        "--data.init_args.batch_size=2", f"--data.init_args.image_size={size}", "--data.init_args.resize=null",
        "--data.init_args.num_workers=0", "--data.init_args.persistent_workers=false",
    ]  # fmt: skip
    if data.endswith("SamplesDataModule"):
        overrides += ["--data.init_args.crops_per_epoch=8", "--data.init_args.val_crops=5"]
    if data.endswith("CIFARDataModule"):
        variant = spec["data"].get("init_args", {}).get("variant", "cifar10")
        fake_cifar(out / "cifar", variant, n=10)
        overrides += [f"--data.init_args.root={out / 'cifar'}", "--data.init_args.download=false"]
    return overrides


def main(out: Path, configs: list[Path]) -> None:
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    for config in configs:
        callback = {"class_path": "tests.ddp_run.DumpWeights", "init_args": {"path": str(out / f"{config.stem}.weights")}}
        argv = [*tiny_overrides(config, out), *DDP, f"--trainer.callbacks+={json.dumps(callback)}"]
        results = run_experiment([str(config)], argv)
        (out / f"{config.stem}.rank{rank}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(c) for c in sys.argv[2:]])
