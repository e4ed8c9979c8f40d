"""Which devices a run trains on: one GPU unless asked for more, and a clear word when a GPU is unusable.

Lightning's ``devices: auto`` takes every visible GPU, so on an 8-GPU box ``make experiment`` would silently
become DDP over all of them (an 8x larger effective batch), and a sweep would draw one trial per rank inside
one process group. Here ``auto`` means one device; more are used when asked for (``--trainer.devices=N``,
``-1`` for all), and the log says how many were left idle.

The pinned torch wheel is a CUDA 13 build, which needs NVIDIA driver 580.65.06 or newer; on an older driver
``torch.cuda.is_available()`` is False although a GPU is plugged in. ``accelerator: auto`` would then train on
the CPU without a word: :func:`check_gpu_usable` warns (``auto``) or stops with the fix (``gpu``/``cuda``).
"""

from __future__ import annotations

import glob
import logging
import shutil
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn

log = logging.getLogger(__name__)

DRIVER_HELP = "see the README's 'GPUs' section for the driver this build needs and how to install a build for an older CUDA"


class GpuUnusable(RuntimeError):
    """A GPU was asked for, one is present, but this torch build cannot use it."""


def gpu_present() -> bool:
    """Whether an NVIDIA GPU seems plugged in (a ``/dev/nvidiaN`` device or ``nvidia-smi``), whatever torch says."""
    return bool(glob.glob("/dev/nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


def unusable_gpu_message() -> str:
    """One line: a GPU is there, this torch cannot use it, and where the fix is."""
    build = f"torch {torch.__version__} (CUDA {torch.version.cuda or 'none'})"
    return f"an NVIDIA GPU is present but {build} cannot use it, probably because the driver is older than it needs; {DRIVER_HELP}"


def check_gpu_usable(accelerator: Any) -> None:
    """Warn (``auto``) or raise :class:`GpuUnusable` (``gpu``/``cuda``) when a GPU is present but unusable."""
    name = str(accelerator or "auto")
    if name not in ("auto", "gpu", "cuda") or torch.cuda.is_available() or not gpu_present():
        return
    if name == "auto":
        rank_zero_warn(unusable_gpu_message() + "; training on the CPU")
    else:
        raise GpuUnusable(unusable_gpu_message())


def default_devices(devices: Any, accelerator: str) -> Any:
    """``devices`` as given, except that ``auto`` (Lightning's default: every GPU) is one device; says so in the
    log when more GPUs are visible. ``accelerator`` is the resolved one (``cuda`` or ``cpu``...)."""
    if str(devices if devices is not None else "auto") != "auto":
        return devices
    visible = torch.cuda.device_count() if accelerator in ("cuda", "gpu") else 1
    if visible > 1:
        log.warning(
            "%d GPUs visible; training on 1. For DDP over several, pass --trainer.devices=N (or -1 for all): "
            "the effective batch grows N-fold", visible
        )  # fmt: skip
    return 1
