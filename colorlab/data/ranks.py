"""Compute something once on rank 0 and hand it to the other DDP ranks (one broadcast), e.g. a folder's file
lists: listing and screening stat every file, which on ImageNet is ~2.5 M system calls per rank."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def from_rank_zero(compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0; under DDP the other ranks receive its (picklable) result instead of computing it.

    An error on rank 0 is raised on every rank, so none waits forever for a result that will not come.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return compute()
    box: list = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = (compute(), None)
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks got it
            box[0] = (None, exc)
    dist.broadcast_object_list(box, src=0)
    result, error = box[0]
    if error is not None:
        raise error
    return result
