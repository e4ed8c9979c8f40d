"""Before/after figure of an upscaler run for the README: ``python scripts/upscale_figure.py RUN_CKPT OUT.png``.

One photo of the run's test split (``photos/val``), cropped, shrunk and degraded exactly as the run's test set
(seeded), shown as ``input (enlarged) | bicubic | model | truth`` with the measured PSNR of bicubic and model
on that crop (luminance, as in the report). Prints the numbers.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from colorlab.baselines import datamodule_from_config
from colorlab.color import l_to_gray_rgb
from colorlab.colorizers.loading import load_colorizer
from colorlab.metrics import luminance_metrics
from colorlab.runs.folder import RunFolder
from colorlab.visualize import comparison_grid, save_png


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR (dB) of one gray picture against another, with the report's metric."""
    metric = luminance_metrics("")["psnr"]
    return float(metric(pred, target))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", help="the upscaler run's best checkpoint")
    parser.add_argument("output", help="PNG to write")
    parser.add_argument("--index", type=int, default=0, help="which test photo")
    parser.add_argument("--crop", type=int, default=128, help="side of the high-resolution crop (px)")
    args = parser.parse_args()
    model = load_colorizer(args.ckpt)
    data = RunFolder.of(args.ckpt).config["data"]
    data["init_args"].update(image_size=args.crop, num_workers=0)
    datamodule = datamodule_from_config(data)
    datamodule.setup("test")
    item = datamodule.test_set[args.index]
    batch = datamodule.on_after_batch_transfer({k: v[None] for k, v in item.items()}, 0)
    small, truth = batch["L_input"], l_to_gray_rgb(batch["L"])
    with torch.no_grad():
        pred = model.colorize_rgb(small)
    bicubic = model.trivial_baselines(None)["bicubic"].colorize_rgb(small)
    nearest = l_to_gray_rgb(F.interpolate(small, scale_factor=model.scale, mode="nearest"))
    p_bicubic, p_model = psnr(bicubic, truth), psnr(pred, truth)
    labels = [f"input 1/{model.scale}", f"bicubic {p_bicubic:.2f} dB", f"model {p_model:.2f} dB", "truth"]
    save_png(comparison_grid([nearest, bicubic, pred, truth], labels), args.output)
    print(
        f"{args.output}: bicubic {p_bicubic:.2f} dB, model {p_model:.2f} dB ({p_model - p_bicubic:+.2f} dB)"
    )


if __name__ == "__main__":
    main()
