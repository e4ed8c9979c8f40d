"""Speed switches of a run (the YAML's ``performance:`` section): thread counts, channels_last, bf16, compile.

Threads: the intra-op threads of each training process plus its loader workers never exceed the usable
cores (the CPU affinity mask, so ``taskset`` and container limits count). An oversubscribed OpenMP pool
collapses (measured on 2 cores busy with other runs: a unet_effnet step took 13 s with 2 spinning threads,
4.5 s with 1), so the default leaves one core per loader worker. Override, most specific first: ``performance.threads`` in the
YAML (or ``--performance.threads=N``), then the environment's ``OMP_NUM_THREADS``, then this rule.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from torch import nn

from colorlab.colorizers.base import DeployableColorizer
from colorlab.data.datamodule import usable_cores

log = logging.getLogger(__name__)

Bf16Choice = Literal["auto", "on", "off"]


def default_threads(cores: int, workers: int = 0, processes: int = 1) -> int:
    """Intra-op threads per training process so that ``processes * (threads + workers) <= cores`` (>= 1)."""
    return max(1, cores // max(1, processes) - max(0, workers))


def bf16_native(accelerator: str = "cpu") -> bool:
    """Whether bf16 matrix maths runs natively (a CUDA GPU with bf16 units, or a CPU with AVX512-BF16 / AMX).

    On CUDA, emulated bf16 does not count: a V100 or T4 "supports" it only through slow fp32 kernels.
    """
    if accelerator in ("cuda", "gpu"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return accelerator == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def auto_precision(accelerator: str) -> str | None:
    """``bf16: auto``'s Trainer precision: native bf16, else fp16 with a loss scaler on CUDA, else None (fp32)."""
    if bf16_native(accelerator):
        return "bf16-mixed"
    if accelerator in ("cuda", "gpu") and torch.cuda.is_available():
        return "16-mixed"  # Lightning pairs it with a GradScaler
    return None


class PerformanceSettings:
    """The ``performance:`` section of an experiment YAML.

    Args:
        threads: intra-op threads per process; None picks :func:`default_threads` (after ``OMP_NUM_THREADS``).
        channels_last: store conv weights (and so activations) as NHWC, which oneDNN and cuDNN run faster
            (measured 1.3x on the ``unet_effnet`` step on CPU); results change only by float rounding.
        bf16: ``on`` trains under bf16 autocast (Lightning's ``bf16-mixed``); ``auto`` picks the fastest safe
            mixed precision (:func:`auto_precision`): bf16 where the hardware does it natively, else fp16 with
            a loss scaler on a CUDA GPU, else fp32; ``off`` is fp32. An explicit ``trainer.precision`` always
            wins. Under bf16 on CPU depthwise convs stay fp32 (:class:`CpuFp32DepthwiseConv2d`: oneDNN's bf16
            kernel is the slow one). Metrics are computed in fp32 whatever the training precision.
        compile: wrap the module's nets with ``torch.compile`` (in place: checkpoints keep their keys). The
            first steps are slow while it compiles, so it pays only for long runs.
        compile_options: keyword arguments for ``torch.compile``, e.g. ``{mode: max-autotune}``.
    """

    def __init__(
        self,
        threads: int | None = None,
        channels_last: bool = True,
        bf16: Bf16Choice = "off",
        compile: bool = False,
        compile_options: dict[str, Any] | None = None,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"performance.threads must be at least 1, got {threads}")
        if bf16 not in ("auto", "on", "off"):
            raise ValueError(f"performance.bf16 must be auto, on or off, got {bf16!r}")
        self.threads = threads
        self.channels_last = channels_last
        self.bf16 = bf16
        self.compile = compile
        self.compile_options = dict(compile_options or {})

    def precision(self, accelerator: str) -> str | None:
        """The Trainer precision this section asks for on ``accelerator`` (None: leave it to the trainer)."""
        if self.bf16 == "on":
            return "bf16-mixed"
        return auto_precision(accelerator) if self.bf16 == "auto" else None

    def callback(self) -> PerformanceCallback:
        """The callback that applies the threads, memory format and compile switches in every process."""
        return PerformanceCallback(self)


def resolve_accelerator(accelerator: Any) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; other names pass through."""
    name = str(accelerator or "auto")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def thread_count(settings: PerformanceSettings, workers: int, processes: int = 1) -> int:
    """Threads per process: the YAML's ``threads``, else ``$OMP_NUM_THREADS``, else :func:`default_threads`."""
    if settings.threads is not None:
        return settings.threads
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return default_threads(usable_cores(), workers, processes)


class CpuFp32DepthwiseConv2d(nn.Conv2d):
    """A depthwise ``Conv2d`` that runs in fp32 while CPU bf16 autocast is on (elsewhere a plain ``Conv2d``).

    oneDNN's bf16 depthwise backward is 5-20x slower than fp32 (a stride-2 5x5 over 672 channels at 8 px:
    36 ms vs 2.4 ms), so under autocast the EfficientNet encoder's depthwise layers took 28 % of a
    ``unet_effnet`` step. They hold few FLOPs: in fp32 the whole step ran 1.25x faster, at the same val ΔE00.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
            return super().forward(x)
        with torch.autocast("cpu", enabled=False):
            return super().forward(x.float())


def depthwise_convs_in_fp32(module: nn.Module) -> int:
    """Make every plain depthwise ``Conv2d`` in ``module`` a :class:`CpuFp32DepthwiseConv2d` (same weights and
    state_dict keys); returns how many."""
    count = 0
    for child in module.modules():
        if type(child) is nn.Conv2d and child.groups > 1 and child.groups == child.in_channels:
            child.__class__ = CpuFp32DepthwiseConv2d
            count += 1
    return count


def compilable_children(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The module's sub-nets that hold parameters (its nets, not its metrics or losses' buffers); inside its
    deployable colorizer, whose own forward training does not call, the colorizer's nets."""
    nets = []
    for child in module.children():
        if isinstance(child, DeployableColorizer):
            nets += compilable_children(child)
        elif any(True for _ in child.parameters()):
            nets.append(child)
    return nets


class PerformanceCallback(L.Callback):
    """Applies :class:`PerformanceSettings` when a trainer sets up (in each DDP process)."""

    def __init__(self, settings: PerformanceSettings | None = None) -> None:
        self.settings = settings or PerformanceSettings()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        workers = int(getattr(trainer.datamodule, "num_workers", 0) or 0)
        processes = max(1, trainer.world_size // max(1, trainer.num_nodes))
        threads = thread_count(self.settings, workers, processes)
        torch.set_num_threads(threads)
        log.info("%d intra-op threads, %d loader workers, %d usable cores", threads, workers, usable_cores())
        if self.settings.channels_last:
            pl_module.to(memory_format=torch.channels_last)
        if "bf16" in str(trainer.precision) and isinstance(trainer.accelerator, CPUAccelerator):
            depthwise_convs_in_fp32(pl_module)
        if self.settings.compile and stage == "fit":
            for child in compilable_children(pl_module):
                child.compile(**self.settings.compile_options)
