"""``python -m colorlab evaluate``: compare checkpoints of any approach on colour photos at full resolution.

Each model sees a gray copy of every photo at the size ``colorize`` and ``serve`` use (its run's training
scale), its ab is upsampled and merged with the photo's own L (:class:`colorlab.inference.pipeline.Colorizer`),
and the result is scored against the photo. The trivial baselines are rows too: gray (ab = 0) always, and
the training split's mean ab and L->ab lookup of the first checkpoint's run (its ``baselines.json``, else
fitted from its config); the summary says whether each model beats the best of them ("learning: yes/no" on
ΔE00). A folder of clips (films) is evaluated for flicker instead (warp error, CDC, ΔE00 per frame vs
stabilised: :mod:`colorlab.inference.film_evaluation`). Writes into the output folder: ``metrics.csv`` (per image and mean), ``summary.md``, ``evaluation.json``, ``index.html`` (gray |
models | truth, thumbnails linking to full-size images) and ``grid.png`` (a few center crops side by side).

Guidance instead (:mod:`colorlab.inference.guided_evaluation`): ``--hints [N ...]`` scores every model with N
seeded hints sampled from the truth (``hint_curve.csv``/``.png``); ``--reference`` scores every model with the
truth and with the most similar other photo as reference (``reference_scores.csv``). ``--ckpt levin``, ``welsh``
and ``reinhard`` name the classical methods.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from colorlab.commands.arguments import megapixels, positive_int
from colorlab.commands.options import (
    add_film_arguments,
    add_model_options,
    checkpoints,
    film_options,
    load_models,
)
from colorlab.inference.evaluation import (
    INCEPTION_FILE,
    SEMANTIC_NOTE,
    evaluate,
    load_baselines,
    load_inception,
    load_lpips,
)
from colorlab.inference.evaluation_report import write_reports
from colorlab.inference.film_options import MISSING_EXTRA, find_clips
from colorlab.inference.guided_evaluation import (
    HINT_COUNTS,
    curve_means,
    hint_curve,
    reference_scores,
    write_curve,
    write_reference_table,
)
from colorlab.inference.pictures import MAX_MEGAPIXELS, PictureError, check_output_dir, collect_inputs
from colorlab.inference.pipeline import Colorizer
from colorlab.runs.folder import RUNS_ROOT, RunFolder


def build_parser() -> argparse.ArgumentParser:
    """The ``evaluate`` command's options."""
    parser = argparse.ArgumentParser(prog="python -m colorlab evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_model_options(parser)
    parser.add_argument(
        "--data", required=True, help="folder of colour photos (recursive), at any resolution"
    )
    parser.add_argument("-o", "--out", help="output folder (default runs/evaluate/DATA-TIMESTAMP)")
    parser.add_argument("--names", nargs="+", help="row names, one per checkpoint (default: run names)")
    parser.add_argument("--limit", type=positive_int, help="evaluate only the first N files")
    parser.add_argument("--max-megapixels", type=megapixels, default=MAX_MEGAPIXELS, help="skip larger photos")
    parser.add_argument("--lpips-backbone", help="local torchvision vgg16-397923af.pth for LPIPS")
    parser.add_argument("--fid-weights", help=f"local {INCEPTION_FILE} for FID")
    parser.add_argument("--baselines-from", help="run folder whose training split fits the mean-ab and lookup "
                        "baselines (default: the first checkpoint's run)")  # fmt: skip
    parser.add_argument("--no-frechet", action="store_true", help="skip the Fréchet EfficientNet distance")
    parser.add_argument("--hints", type=int, nargs="*", metavar="N",
                        help="instead: score every model with N hints sampled from the truth (seeded), at each N "
                        f"given (none: {' '.join(map(str, HINT_COUNTS))}); writes hint_curve.csv/png")  # fmt: skip
    parser.add_argument(
        "--hint-patch", type=int, default=1, help="hint patch side in model pixels (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled hints (photo i: seed + i)")
    parser.add_argument("--reference", action="store_true", help="instead: score every model with the truth "
                        "and with the most similar other photo as reference; writes reference_scores.csv")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (clips)")
    add_film_arguments(parser)
    return parser


def guided_main(args: argparse.Namespace, colorizers: list[Colorizer], files: list[Path], out: Path) -> None:
    """``--hints`` / ``--reference``: the guidance scores of :mod:`colorlab.inference.guided_evaluation`."""
    if args.hints is not None:
        rows = hint_curve(colorizers, files, args.hints or HINT_COUNTS, args.seed, args.hint_patch,
                          args.max_megapixels)  # fmt: skip
        paths = write_curve(rows, out)
        for row in curve_means(rows):
            extra = f", at the hints {row['hint_delta_e00']:.2f}" if "hint_delta_e00" in row else ""
            print(f"{row['model']:>24} {row['hints']:>3} hints: ΔE00 {row['delta_e00']:.2f}, "
                  f"PSNR {row['psnr']:.2f} dB{extra}")  # fmt: skip
        print(f"curve: {paths['png']}\nmetrics: {paths['csv']}")
    if args.reference:
        path = write_reference_table(reference_scores(colorizers, files, args.max_megapixels), out)
        print(path.read_text())
        print(f"metrics: {path}")


def main(argv: Sequence[str]) -> dict[str, Any]:
    """CLI: ``python -m colorlab evaluate --ckpt A.ckpt [B.ckpt ...] --data DIR [-o OUT]``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not Path(args.data).is_dir():
        parser.exit(2, f"error: data folder not found: {args.data}\n")
    try:
        ckpts = checkpoints(args)
        if args.names is not None and len(args.names) != len(ckpts):
            parser.error(f"{len(ckpts)} checkpoints but {len(args.names)} names")
        clips = find_clips(args.data) if Path(args.data).is_dir() else []
        files = [] if clips else [path for path, _ in collect_inputs([args.data])][: args.limit]
        colorizers = load_models(args, ckpts, args.names)
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    default_out = (
        RUNS_ROOT / "evaluate" / f"{Path(args.data).resolve().name}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    out = Path(args.out or default_out)
    try:  # renders written among the photos would be scored as truth by the next evaluate
        check_output_dir(out, [args.data])
    except PictureError as exc:
        parser.exit(2, f"error: {exc}\n")
    if clips:
        return evaluate_films(args, parser, colorizers, clips[: args.limit], out)
    out.mkdir(parents=True, exist_ok=True)
    if args.hints is not None or args.reference:
        try:
            guided_main(args, colorizers, files, out)
        except (PictureError, ValueError) as exc:
            parser.exit(2, f"error: {exc}\n")
        return {}
    lpips, lpips_note = load_lpips(args.lpips_backbone)
    inception, fid_note = load_inception(args.fid_weights)
    baselines, baselines_note = load_baselines(args.baselines_from or RunFolder.of(ckpts[0]).path)
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


def evaluate_films(
    args: argparse.Namespace, parser: argparse.ArgumentParser, colorizers: list[Colorizer], clips: list[Path],
    out: Path,
) -> dict[str, Any]:  # fmt: skip
    """A folder of clips: flicker per frame vs stabilised (the photo metrics need photos)."""
    try:
        from colorlab.inference.film_evaluation import evaluate_clips
    except ImportError as exc:
        parser.exit(2, f"error: {MISSING_EXTRA} ({exc})\n")
    options = film_options(args)
    try:
        result = evaluate_clips(colorizers, clips, out, options["strength"], options["window"],
                                options["max_minutes"], progress=options["progress"])  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:  # VideoError is a ValueError
        parser.exit(2, f"error: {exc}\n")
    for path, reason in result["skipped"].items():
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print((out / "summary.md").read_text())
    print(f"report: {out / 'summary.md'}\nstrip: {out / 'strip.png'}\nplot: {out / 'flicker.png'}")
    return result
