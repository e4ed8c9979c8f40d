"""``python -m colorlab data pack SRC OUT``: screen a photo folder once and write LitData shards for streaming.
``python -m colorlab data clips PHOTOS OUT``: synthetic colour clips (known camera motion, a scene cut) from photos."""

from __future__ import annotations

import argparse
import time

from colorlab.data.streaming import pack_folder
from colorlab.inference.film_options import MISSING_EXTRA


def main(argv: list[str]) -> None:
    """CLI: ``python -m colorlab data pack SRC OUT [--max-side N] [--workers N] [--chunk-bytes 64MB]``."""
    parser = argparse.ArgumentParser(prog="python -m colorlab data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="screen SRC's photos and write them as shards to OUT")
    pack.add_argument("source", help="folder of photos (searched recursively)")
    pack.add_argument("output", help="shard folder: a local path or s3://bucket/prefix")
    pack.add_argument("--max-side", type=int, default=None, help="shrink photos whose longer side is larger")
    pack.add_argument("--workers", type=int, default=None, help="screening threads and packing processes")
    pack.add_argument("--chunk-bytes", default="64MB", help="target size of one shard file")
    clips = commands.add_parser("clips", help="synthetic colour clips from SRC's photos (pans, zooms, rotations, a cut)")
    clips.add_argument("source", help="folder of colour photos")
    clips.add_argument("output", help="folder for clip_NNN.mp4 (+ .json with the motion)")
    clips.add_argument("--count", type=int, default=4, help="number of clips (%(default)s)")
    clips.add_argument("--frames", type=int, default=24, help="frames per shot; two shots a clip (%(default)s)")
    clips.add_argument("--size", default="320x180", help="WIDTHxHEIGHT (%(default)s)")
    clips.add_argument("--fps", type=int, default=24, help="frame rate (%(default)s)")
    args = parser.parse_args(argv)
    if args.command == "clips":
        try:
            from colorlab.inference.clips import write_clips
        except ImportError as exc:
            parser.exit(2, f"error: {MISSING_EXTRA} ({exc})\n")
        try:
            width, height = (int(n) for n in args.size.lower().split("x"))
            written = write_clips(args.source, args.output, args.count, args.frames, (height, width), args.fps)
        except ValueError as exc:  # VideoError is a ValueError
            parser.exit(2, f"error: {exc}\n")
        print(f"wrote {len(written)} clips to {args.output}")
        return

    start = time.perf_counter()
    try:
        summary = pack_folder(args.source, args.output, args.max_side, args.workers, args.chunk_bytes)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        parser.exit(2, f"error: {exc}\n")
    for path, reason in summary.skipped.items():
        print(f"skipped {path}: {reason}")
    print(f"packed {summary.packed} photos into {summary.output} ({len(summary.skipped)} skipped) "
          f"in {time.perf_counter() - start:.1f} s")  # fmt: skip
    print(f"train from it with: --data=colorlab.data.streaming.StreamingDataModule "
          f"--data.init_args.train_dir={summary.output}")  # fmt: skip
