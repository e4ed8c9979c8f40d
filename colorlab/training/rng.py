"""Save the Python, NumPy and torch RNG states in every checkpoint and restore them on resume.

The CUDA state saved is the current device's (rank 0's, like the CPU states), and it is restored on each
process's own device, so a run saved on 8 GPUs resumes on 1 or 2 (``torch.cuda.set_rng_state_all`` with
8 states fails on a machine with fewer GPUs).
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """The global RNG states as tensors, ints and tuples only (so a ``weights_only`` load accepts them)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # this process's device: one per rank under DDP
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        # One device's state, restored on this process's device, so a run resumes on any number of GPUs
        # (older checkpoints hold a list, one per GPU of the saving machine: the first was rank 0's).
        torch.cuda.set_rng_state(cuda[0] if isinstance(cuda, (list, tuple)) else cuda)


class RngState(L.Callback):
    """Puts the RNG states in each checkpoint; a resumed fit gets them back just before training continues.

    They are restored in ``on_train_start``, after the sanity check and the loader set-up, so everything
    from the next batch on draws the same random numbers as in the uninterrupted run.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return rng_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._loaded is not None:
            set_rng_state(self._loaded)
            self._loaded = None
