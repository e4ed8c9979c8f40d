"""``python -m colorlab data pack SRC OUT``: screen a photo folder once and write LitData shards for streaming."""

from __future__ import annotations

import argparse
import time

from colorlab.data.streaming import pack_folder


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
    args = parser.parse_args(argv)

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
