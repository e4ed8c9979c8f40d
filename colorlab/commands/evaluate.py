"""``python -m colorlab evaluate``: compare checkpoints of any approach on colour photos at full resolution.

Each model sees a gray copy of every photo at the size ``colorize`` and ``serve`` use (its run's training
scale), its ab is upsampled and merged with the photo's own L (:class:`colorlab.inference.pipeline.Colorizer`),
and the result is scored against the photo. The trivial baselines are rows too: gray (ab = 0) always, and
the training split's mean ab and L->ab lookup of the first checkpoint's run (its ``baselines.json``, else
fitted from its config); the summary says whether each model beats the best of them ("learning: yes/no" on
ΔE00). Writes into the output folder: ``metrics.csv`` (per image and mean), ``summary.md``, ``results.json``, ``index.html`` (gray |
models | truth, thumbnails linking to full-size images) and ``grid.png`` (a few center crops side by side).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from colorlab.commands.arguments import megapixels, model_side, positive_int
from colorlab.inference.evaluation import (
    INCEPTION_FILE,
    SEMANTIC_NOTE,
    evaluate,
    load_baselines,
    load_inception,
    load_lpips,
    write_reports,
)
from colorlab.inference.pictures import MAX_MEGAPIXELS, PictureError, check_output_dir, collect_inputs
from colorlab.inference.pipeline import DEFAULT_SIDE, Colorizer, model_names
from colorlab.training.run_folder import RunFolder


def build_parser() -> argparse.ArgumentParser:
    """The ``evaluate`` command's options."""
    parser = argparse.ArgumentParser(prog="python -m colorlab evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--ckpt", nargs="+", required=True, help="checkpoints of any approach")
    parser.add_argument(
        "--data", required=True, help="folder of colour photos (recursive), at any resolution"
    )
    parser.add_argument("-o", "--out", help="output folder (default runs/evaluate/DATA-TIMESTAMP)")
    parser.add_argument("--names", nargs="+", help="row names, one per checkpoint (default: run names)")
    parser.add_argument("--size", type=model_side, help="shorter side the models run at (default: each run's "
                        f"training scale from its config.yaml, else {DEFAULT_SIDE})")  # fmt: skip
    parser.add_argument("--limit", type=positive_int, help="evaluate only the first N files")
    parser.add_argument("--max-megapixels", type=megapixels, default=MAX_MEGAPIXELS, help="skip larger photos")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--lpips-backbone", help="local torchvision vgg16-397923af.pth for LPIPS")
    parser.add_argument("--fid-weights", help=f"local {INCEPTION_FILE} for FID")
    parser.add_argument("--baselines-from", help="run folder whose training split fits the mean-ab and lookup "
                        "baselines (default: the first checkpoint's run)")  # fmt: skip
    parser.add_argument("--no-frechet", action="store_true", help="skip the Fréchet EfficientNet distance")
    return parser


def main(argv: Sequence[str]) -> dict[str, Any]:
    """CLI: ``python -m colorlab evaluate --ckpt A.ckpt [B.ckpt ...] --data DIR [-o OUT]``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    names = args.names or model_names(args.ckpt)
    if len(names) != len(args.ckpt):
        parser.error(f"{len(args.ckpt)} checkpoints but {len(names)} names")
    if not Path(args.data).is_dir():
        parser.exit(2, f"error: data folder not found: {args.data}\n")
    try:
        files = [path for path, _ in collect_inputs([args.data])][: args.limit]
        colorizers = [Colorizer.load(p, args.size, args.device, n) for p, n in zip(args.ckpt, names)]
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    default_out = (
        Path("runs") / "evaluate" / f"{Path(args.data).resolve().name}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    out = Path(args.out or default_out)
    try:  # renders written among the photos would be scored as truth by the next evaluate
        check_output_dir(out, [args.data])
    except PictureError as exc:
        parser.exit(2, f"error: {exc}\n")
    out.mkdir(parents=True, exist_ok=True)
    lpips, lpips_note = load_lpips(args.lpips_backbone)
    inception, fid_note = load_inception(args.fid_weights)
    baselines, baselines_note = load_baselines(args.baselines_from or RunFolder.of(args.ckpt[0]).path)
    start = time.perf_counter()
    try:
        result = evaluate(
            colorizers, files, out, args.device, lpips=lpips, fid_extractor=inception, baselines=baselines,
            frechet=not args.no_frechet, max_megapixels=args.max_megapixels,
        )  # fmt: skip
    except (PictureError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    notes = [
        f"data: {Path(args.data).resolve()} ({len(files)} photos at their original resolution"
        + (f"; {len(result['skipped'])} unreadable files skipped" if result["skipped"] else "") + ")",
        *(f"{c.name}: `{c.path}`, runs at {c.describe()}" for c in colorizers),
        SEMANTIC_NOTE,
        baselines_note,
        *(note for note in (lpips_note, fid_note) if note),
        f"{time.perf_counter() - start:.0f} s on {args.device}",
    ]  # fmt: skip
    if result["gray_truths"]:
        gray = f"{result['gray_truths']} of {len(result['views'])} photos are gray themselves"
        notes.append(f"warning: {gray}: colour scores against a gray truth reward gray output")
        print(f"warning: {gray} (colour scores need colour photos)", file=sys.stderr)
    for path, reason in result["skipped"].items():
        print(f"skipped {path}: {reason}", file=sys.stderr)
    paths = write_reports(result, out, notes)
    print((out / "summary.md").read_text())
    print(f"report: {paths['html']}\nmetrics: {paths['csv']}")
    return result
