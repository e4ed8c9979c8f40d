"""README figure of guided colorization: ``python scripts/guided_figure.py --auto A.ckpt --guided G.ckpt --data DIR``.

Rows of ``input | hints | automatic | guided | truth`` for the first photos of ``DIR`` at full resolution, with
the same seeded hints ``evaluate --hints`` samples (photo ``i``: seed ``seed + i``), center-cropped to squares.
Prints each photo's ΔE00 of the automatic and the guided model.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from colorlab.color import rgb_to_lab
from colorlab.guidance import sample_picture_hints
from colorlab.inference.evaluation import as_batch
from colorlab.inference.pictures import collect_inputs, read_picture
from colorlab.inference.pipeline import Colorizer, gray_picture
from colorlab.metrics import image_scores
from colorlab.visualize import comparison_grid, save_png


def square(rgb: np.ndarray, side: int) -> torch.Tensor:
    """Center square of ``(H, W, 3)`` (uint8 or float) -> ``(1, 3, side, side)`` float in [0, 1]."""
    image = as_batch(np.ascontiguousarray(rgb), None)
    h, w = image.shape[-2:]
    s = min(h, w)
    crop = image[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return F.interpolate(crop, size=(side, side), mode="bilinear", antialias=True).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--auto", required=True, help="the automatic model's checkpoint")
    parser.add_argument("--guided", required=True, help="the hint model's checkpoint")
    parser.add_argument("--data", required=True, help="folder of colour photos")
    parser.add_argument("--hints", type=int, default=10, help="hints per photo (default %(default)s)")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument(
        "--pick", type=int, nargs="*", help="indices of the photos to show (default: the first)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--side", type=int, default=192)
    parser.add_argument("-o", "--output", default="docs/guided_figure.png")
    args = parser.parse_args()
    auto, guided = Colorizer.load(args.auto), Colorizer.load(args.guided)
    files = [path for path, _ in collect_inputs([args.data])]
    indices = args.pick or list(range(args.images))
    columns: list[list[torch.Tensor]] = [[] for _ in range(5)]
    for index in indices:
        picture = read_picture(files[index])
        truth = as_batch(np.array(picture.rgb), None)
        lab = rgb_to_lab(truth)[0].permute(1, 2, 0).numpy()
        hints = sample_picture_hints(lab, args.hints, args.seed + index)
        gray = gray_picture(picture)
        marked = Image.fromarray(gray)
        draw = ImageDraw.Draw(marked)
        radius = max(3, min(picture.size) // 60)
        for hint in hints:
            colour = tuple(int(v) for v in picture.rgb[int(hint.y), int(hint.x)])
            box = (hint.x - radius, hint.y - radius, hint.x + radius, hint.y + radius)
            draw.ellipse(box, fill=colour, outline="white", width=max(1, radius // 3))
        outputs = [
            auto.guided(picture, dtype=torch.float32),
            guided.guided(picture, hints, 1, dtype=torch.float32),
        ]
        scores = [float(image_scores(as_batch(o, None), truth)["delta_e00"]) for o in outputs]
        print(
            f"{files[index].name}: ΔE00 automatic {scores[0]:.2f}, guided ({args.hints} hints) {scores[1]:.2f}"
        )
        for column, image in zip(columns, [gray, np.asarray(marked), *outputs, picture.rgb]):
            column.append(square(image, args.side))
    labels = ["input", f"{args.hints} hints", "automatic", "guided", "truth"]
    save_png(comparison_grid([torch.cat(c) for c in columns], labels), args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
