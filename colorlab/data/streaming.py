"""Photos as LitData shards: pack a folder once, then stream it to every rank from a local folder or ``s3://``.

:func:`pack_folder` screens the photos once (in parallel, see :mod:`colorlab.data.screening`), optionally
shrinks each so its longer side is at most ``max_side``, and writes shards with ``litdata.optimize``; each
sample is the encoded image file (the original bytes when not resized), so shards stay the size of the photos.
:class:`StreamingDataModule` trains from such shards with LitData's ``StreamingDataset``: under DDP every rank
(and every loader worker) reads its own chunks, disjoint from the others', and the ``StreamingDataLoader``
state rides in Lightning's checkpoints, so a resumed fit continues mid-epoch where it stopped. Validation and
test shards are read by index (a map-style view), so they get the same exact, unpadded DDP split as folders.

Needs the ``stream`` extra (``pip install 'colorlab[stream]'``).
"""

from __future__ import annotations

import ctypes
import io
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import DataLoader, Dataset

from colorlab.data.datamodule import LabDataModule
from colorlab.data.datasets import Transform, to_chw
from colorlab.data.images import load_rgb, to_rgb
from colorlab.data.screening import screen_folder

try:
    from litdata import StreamingDataLoader, StreamingDataset, optimize
except ImportError:  # the DataModule and `data pack` explain how to install it
    StreamingDataset = StreamingDataLoader = object  # type: ignore[assignment,misc]


def _require_litdata() -> None:
    if StreamingDataset is object:
        raise ImportError("streaming shards need LitData: pip install 'colorlab[stream]' (litdata)")


# ---- packing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackSummary:
    """What :func:`pack_folder` did."""

    output: str
    packed: int
    skipped: dict[Path, str]


def die_with_parent() -> None:
    """Ask Linux to kill this worker process when the process that started it dies (kill -9 of ``data pack``
    left LitData's workers running, about 1 GB each); a no-op elsewhere and when already set."""
    global _PARENT_WATCHED
    if _PARENT_WATCHED or not sys.platform.startswith("linux"):
        return
    _PARENT_WATCHED = True
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1
_PARENT_WATCHED = False


def check_empty_output(output: str) -> None:
    """Refuse to pack into anything that holds files: LitData's writer deletes what is there (a local folder's
    shards, a whole ``s3://`` prefix) and the user's files would go without a word."""
    if "://" in output:
        from litdata.streaming.resolver import _get_fs_provider

        if not _get_fs_provider(output, {}).is_empty(output):
            raise ValueError(f"{output} is not empty; pack into a new prefix (nothing was written or deleted)")
        return
    folder = Path(output)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"{output} is not an empty folder; pack into a new one (nothing was written or deleted)")


class _Encoder:
    """``litdata.optimize``'s per-file function (a picklable object, so worker processes can run it)."""

    def __init__(self, root: Path, max_side: int | None) -> None:
        self.root, self.max_side = root, max_side

    def __call__(self, path: str) -> dict[str, Any]:
        die_with_parent()
        path_obj = Path(path)
        data = path_obj.read_bytes()
        if self.max_side is not None:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                if max(img.size) > self.max_side:
                    rgb = to_rgb(img)
                    rgb.thumbnail((self.max_side, self.max_side), Image.Resampling.LANCZOS)
                    # JPEG stays JPEG (quality 95); anything else becomes a lossless PNG.
                    jpeg = path_obj.suffix.lower() in (".jpg", ".jpeg")
                    buffer = io.BytesIO()
                    rgb.save(buffer, "JPEG" if jpeg else "PNG", **({"quality": 95} if jpeg else {}))
                    data = buffer.getvalue()
        return {"image": data, "name": str(path_obj.relative_to(self.root))}


def pack_folder(
    source: str | os.PathLike,
    output: str,
    max_side: int | None = None,
    workers: int | None = None,
    chunk_bytes: str = "64MB",
) -> PackSummary:
    """Screen the images under ``source`` once and write the readable ones as LitData shards to ``output``
    (a local folder or ``s3://bucket/prefix``), each shrunk to ``max_side`` px (longer side) when larger."""
    _require_litdata()
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, got {max_side}")
    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(f"photo folder not found: {root}")
    check_empty_output(output)
    good, bad = screen_folder(root, workers)
    if not good:
        raise ValueError(f"no readable images under {root}")
    workers = max(1, min(workers or os.cpu_count() or 1, len(good)))
    optimize(fn=_Encoder(root, max_side), inputs=[str(p) for p in good], output_dir=output, num_workers=workers,
             chunk_bytes=chunk_bytes, verbose=False)  # fmt: skip
    return PackSummary(output=output, packed=len(good), skipped=bad)


# ---- reading ------------------------------------------------------------------------------------------


def decode_sample(sample: dict[str, Any]) -> Any:
    """A packed sample -> ``(3, H, W)`` uint8 tensor."""
    return to_chw(load_rgb(io.BytesIO(sample["image"])))


class ShardImages(StreamingDataset):
    """Streams packed photos as ``{"rgb": uint8 (3, S, S)}`` items (each rank and worker its own chunks)."""

    def __init__(self, input_dir: str, transform: Transform, **kwargs: Any) -> None:
        _require_litdata()
        super().__init__(input_dir, **kwargs)
        self.image_transform = transform

    def __getitem__(self, index: Any) -> dict[str, Any]:
        return {"rgb": self.image_transform(decode_sample(super().__getitem__(index)))}


class ShardItems(Dataset):
    """Map-style view of packed photos (for validation/test: Lightning's samplers split it across ranks)."""

    def __init__(self, input_dir: str, transform: Transform, **kwargs: Any) -> None:
        _require_litdata()
        self.shards = StreamingDataset(input_dir, shuffle=False, **kwargs)
        self.transform = transform
        self._length: int | None = None

    def __len__(self) -> int:
        # StreamingDataset's own len() is this rank's share; the view needs the total, from the shards' index.
        if self._length is None:
            self.shards[0]  # LitData opens the index on first access
            self._length = len(self.shards.cache)
        return self._length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} packed photos")
        return {"rgb": self.transform(decode_sample(self.shards[index]))}


class ResumableStreamingLoader(StreamingDataLoader):  # type: ignore[misc,valid-type]
    """LitData's loader, plus: a restored epoch that was read to its end does not swallow the next epoch.

    LitData clears its ``restore`` flag only when a for-loop exhausts the iterator; Lightning stops after the
    epoch's last batch without asking for one more, so after a mid-epoch resume the flag stayed set and the
    next epoch replayed the finished position: no batches, one epoch lost (10 steps instead of 15).
    """

    def __iter__(self) -> Any:
        if self.restore and self._num_samples_yielded_streaming >= len(self.dataset):
            self.restore = False
        return super().__iter__()


class StreamingDataModule(LabDataModule):
    """Train, validate and test from shards written by ``python -m colorlab data pack``.

    Args:
        train_dir: training shards, a local folder or ``s3://bucket/prefix``.
        val_dir: validation (and test) shards; None validates on ``train_dir``'s shards.
        cache_dir: where remote chunks are cached (LitData's default when None).
        max_cache_size: cap of that cache, e.g. ``"50GB"``.
        **kwargs: see :class:`LabDataModule` (batch_size, image_size, num_workers, seed...).
    """

    def __init__(
        self,
        train_dir: str,
        val_dir: str | None = None,
        cache_dir: str | None = None,
        max_cache_size: str = "50GB",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _require_litdata()
        self.train_dir = train_dir
        self.val_dir = val_dir or train_dir
        self.shard_options = {"cache_dir": cache_dir, "max_cache_size": max_cache_size}

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset]:
        train = ShardImages(
            self.train_dir, self.transform(True), shuffle=True, seed=self.seed, **self.shard_options
        )
        val = ShardItems(self.val_dir, self.transform(False), **self.shard_options)
        return train, val, val

    def train_dataloader(self) -> DataLoader:
        # LitData's loader: it tracks how many samples each worker yielded, and Lightning saves that state in
        # checkpoints (and restores it), so resuming continues the epoch instead of starting it over.
        return ResumableStreamingLoader(
            self.train_set,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            drop_last=True,
        )
