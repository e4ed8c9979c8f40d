"""``make bench``: measure and print throughput of the hot paths, next to the speed targets we aim for.

Benchmarks only measure; nothing here fails on a slow machine. Targets are for the 2-core CPU reference
machine (see README) and are printed for comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from colorlab.approaches.regression import RegressionColorizer
from colorlab.color import lab_batch
from colorlab.inference.pipeline import colorize_full_resolution
from colorlab.models.unet import UNet

# (name, target, unit): what we consider acceptable on 2 CPU cores.
TARGETS = {
    "lab_conversion": (2000.0, "images/s (64x64 uint8 RGB -> L/ab)"),
    "train_step": (25.0, "images/s (quickstart U-Net, 64x64, batch 16, forward+backward+step)"),
    "full_res_colorize": (1.0, "photos/s (3000x2000, model at 192 px longer side, ab upsampled, L kept)"),
}


def timed(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median seconds per call of ``fn``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    """Run every benchmark and print measured vs target."""
    torch.manual_seed(0)
    rgb = torch.randint(0, 256, (64, 3, 64, 64), dtype=torch.uint8)
    results = {"lab_conversion": 64 / timed(lambda: lab_batch(rgb), repeats=10)}

    model = RegressionColorizer(UNet(base_channels=16, depth=3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = lab_batch(rgb[:16])

    def step() -> None:
        optimizer.zero_grad()
        model.training_loss(batch)["loss"].backward()
        optimizer.step()

    results["train_step"] = 16 / timed(step, repeats=5)

    model.eval()
    photo = torch.randint(0, 256, (1, 3, 2000, 3000), dtype=torch.uint8)
    with torch.no_grad():
        results["full_res_colorize"] = 1 / timed(lambda: colorize_full_resolution(model, photo, 192), repeats=3)

    print(f"threads: {torch.get_num_threads()}")
    for name, value in results.items():
        target, unit = TARGETS[name]
        status = "ok" if value >= target else "BELOW TARGET"
        print(f"{name:18s} {value:10.1f}  target >= {target:g} {unit}  [{status}]")


if __name__ == "__main__":
    main()
