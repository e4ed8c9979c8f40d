"""``make bench``: measure and print throughput of the hot paths, next to the speed targets we aim for.

Benchmarks only measure; nothing here fails on a slow machine. Targets are for the 2-core CPU reference
machine (see README) and are printed for comparison.

The loader benchmark reads one epoch of $COLORLAB_DATA/train (crops of 128 px, batches of 16, no workers) from
the folder and from LitData shards of it (packed once into a temporary folder, as they are and shrunk to 320 px
on the longer side), and prints images/s of each; it is skipped when the photos or LitData are missing.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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


def epoch_images_per_second(datamodule: object) -> float:
    """Images/s of one pass over ``datamodule``'s training loader (decode + crop + collate)."""
    datamodule.setup("fit")
    start, count = time.perf_counter(), 0
    for batch in datamodule.train_dataloader():
        count += batch["rgb"].shape[0]
    return count / (time.perf_counter() - start)


def loader_benchmark() -> dict[str, float]:
    """Training-loader images/s from the photo folder vs from LitData shards of it (empty when unavailable)."""
    photos = Path(os.environ.get("COLORLAB_DATA", "")) / "train"
    try:
        from colorlab.data.streaming import StreamingDataModule, pack_folder
    except ImportError:
        print("loader benchmark skipped: LitData is not installed (pip install 'colorlab[stream]')")
        return {}
    if not photos.is_dir():
        print(f"loader benchmark skipped: no photos at {photos} (set COLORLAB_DATA)")
        return {}
    from colorlab.data.datamodule import FolderDataModule

    options = {"batch_size": 16, "image_size": 128, "resize": 160, "num_workers": 0}
    results = {"loader_folder": epoch_images_per_second(FolderDataModule(root=str(photos.parent), **options))}
    with tempfile.TemporaryDirectory() as scratch:
        for name, max_side in (("loader_shards", None), ("loader_shards_320", 320)):
            shards = str(Path(scratch) / name)
            start = time.perf_counter()
            summary = pack_folder(photos, shards, max_side=max_side)
            print(f"packed {summary.packed} photos ({name}) in {time.perf_counter() - start:.1f} s")
            data = StreamingDataModule(train_dir=shards, cache_dir=str(Path(scratch) / "cache"), **options)
            results[name] = epoch_images_per_second(data)
    return results


LOADERS = {
    "loader_folder": "images/s (FolderDataModule, photos/train, 128 px crops, batch 16, 0 workers)",
    "loader_shards": "images/s (StreamingDataModule, the same photos packed as they are)",
    "loader_shards_320": "images/s (StreamingDataModule, packed with --max-side 320)",
}


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
        results["full_res_colorize"] = 1 / timed(
            lambda: colorize_full_resolution(model, photo, 192), repeats=3
        )

    print(f"threads: {torch.get_num_threads()}")
    for name, value in results.items():
        target, unit = TARGETS[name]
        status = "ok" if value >= target else "BELOW TARGET"
        print(f"{name:18s} {value:10.1f}  target >= {target:g} {unit}  [{status}]")
    for name, value in loader_benchmark().items():
        print(f"{name:18s} {value:10.1f}  {LOADERS[name]}  [measured only]")


if __name__ == "__main__":
    main()
