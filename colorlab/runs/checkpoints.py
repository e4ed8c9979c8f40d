"""Load checkpoints as data, never as code.

Every checkpoint colorlab reads goes through :func:`load_checkpoint` (or, for Lightning's own loads, the
:func:`allowed_globals` context with ``weights_only=True``): ``torch.load(weights_only=True)`` with an
allow-list of exactly the non-tensor types colorlab checkpoints store. A pickle that asks for anything else
(``os.system``, an arbitrary class) is refused before any of it runs.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

# The only non-tensor globals colorlab checkpoints hold beyond torch's own weights-only set: the default
# optimizer class that ``ColorizationModule`` records in its hyper-parameters when built in Python (under
# the CLI the YAML's class_path/init_args are stored as plain dicts). Found by saving and scanning a
# checkpoint of every experiment YAML with ``torch.serialization.get_unsafe_globals_in_checkpoint``.
SAFE_GLOBALS: list[Any] = [torch.optim.Adam]


class CheckpointError(ValueError):
    """A file that is not a usable colorlab checkpoint (empty, truncated, unsafe, or missing its weights)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose pickle asks for code outside the allow-list; refused before anything ran."""


@contextlib.contextmanager
def allowed_globals() -> Iterator[None]:
    """Within this block ``torch.load(..., weights_only=True)`` (also Lightning's) accepts colorlab's types."""
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        yield


def _refused_global(exc: Exception) -> str | None:
    """What torch's weights-only unpickler refused (``posix.system``...), when that is why loading failed."""
    if "Weights only load failed" not in str(exc):
        return None
    match = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return f"`{match.group(1)}`" if match else "a pickle instruction that only code-bearing files use"


def first_line(exc: Exception) -> str:
    """The first line of an exception's message (its type when empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict in ``path``, loaded as data (``weights_only=True`` and :data:`SAFE_GLOBALS`).

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file would run code or build a type colorlab never stores.
        CheckpointError: an empty, truncated or otherwise unreadable file, or not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): the run that wrote it was probably killed while "
                              "saving; use an older checkpoint of the run")  # fmt: skip
    try:
        with allowed_globals():
            # mmap: checking a big checkpoint reads only what it touches (zip format only, as torch.save writes).
            checkpoint = torch.load(
                path, map_location=map_location, weights_only=True, mmap=zipfile.is_zipfile(path)
            )
    except pickle.UnpicklingError as exc:
        refused = _refused_global(exc)
        if refused is None:
            raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({first_line(exc)})") from exc
        raise UnsafeCheckpointError(
            f"refused to load {path}: it asks for {refused}, which colorlab checkpoints never contain "
            "(nothing from the file was run). Only load checkpoints from sources you trust."
        ) from None
    except Exception as exc:  # torch raises RuntimeError/EOFError/... for truncated or foreign files
        raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({first_line(exc)})") from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return checkpoint


def checkpoint_class_path(checkpoint: dict[str, Any], path: str | os.PathLike) -> str:
    """The ``module.Class`` of the approach a loaded checkpoint (read from ``path``) was trained with."""
    hparams = checkpoint.get("hyper_parameters")
    class_path = hparams.get("_class_path") if isinstance(hparams, dict) else None
    if not class_path:
        raise CheckpointError(f"{path} was not written by a colorlab run (no approach class stored in it)")
    if "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} names the approach {class_path} but holds no weights (no 'state_dict'); "
                              "was it saved with weights stripped?")  # fmt: skip
    return class_path
