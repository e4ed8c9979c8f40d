"""Run by ``torchrun --nproc_per_node=2``: each rank streams one epoch of ``SHARDS`` and writes what it read.

``python -m torch.distributed.run --nproc_per_node=2 tests/streaming_ranks.py SHARDS OUT``
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from colorlab.data.streaming import ShardImages


def main(shards: str, out: Path) -> None:
    dist.init_process_group("gloo")
    dataset = ShardImages(shards, transform=lambda image: image, shuffle=True, seed=1)
    fingerprints = [hashlib.sha1(item["rgb"].numpy().tobytes()).hexdigest() for item in dataset]
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(fingerprints))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], Path(sys.argv[2]))
