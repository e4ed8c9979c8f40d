"""Export a checkpoint as one ONNX or TorchScript graph (``python -m colorlab export`` is its command).

The exported graph is the approach's ``predict_lab`` with its padding built in. Contract:

* input ``L``: float32 ``(B, 1, H, W)``, normalised lightness ``L / 50 - 1`` in [-1, 1];
* outputs ``L_out`` ``(B, 1, H, W)`` (the input L for plain colorizers, the restored L for restoration
  approaches) and ``ab`` ``(B, 2, H, W)``, normalised ``ab / 110`` (multiply by 110 for Lab units);
* ``--size S`` fixes H = W = S (batch stays free); ``--dynamic`` accepts any H, W of at least the
  net's downsampling factor (stored as ``multiple`` in the metadata), padded inside the graph.

To colorize a photo at full resolution with it, do what :mod:`colorlab.inference.pipeline` does: resize L to the
model size, run the graph, upsample ``ab`` bilinearly to the photo and merge it with the photo's own L.
The metadata (ONNX ``metadata_props``, TorchScript extra file ``colorlab.json``) repeats this contract.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colorlab.colorizers.base import DeployableColorizer
from colorlab.colorizers.loading import load_colorizer
from colorlab.inference.pipeline import size_multiple
from colorlab.runs.checkpoints import first_line

ExportFormat = Literal["onnx", "torchscript"]
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
METADATA_FILE = "colorlab.json"
ONNX_OPSET = 17
# float32 graphs vs PyTorch on the same input: only op ordering differs, so far below one Lab unit (1/110).
TOLERANCE = 1e-4


class ExportableColorizer(nn.Module):
    """``predict_lab`` as one traceable graph: normalised L ``(B, 1, H, W)`` -> (L_out, ab), any H and W.

    The input is reflect-padded to the nets' multiple here, with shape arithmetic the tracers record,
    because the nets' own padding branches on the size and would be frozen at the example's size.
    """

    def __init__(self, colorizer: DeployableColorizer) -> None:
        super().__init__()
        self.colorizer = colorizer
        self.multiple = size_multiple(colorizer)
        self.scale = int(getattr(colorizer, "scale", 1))
        # Exporters put the wrapper back in the mode it had: it must be eval, or BatchNorm ends up training.
        self.eval()

    def forward(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = L.shape[-2], L.shape[-1]
        padded = F.pad(L, (0, (-w) % self.multiple, 0, (-h) % self.multiple), mode="reflect")
        L_out, ab = self.colorizer.predict_lab(padded)
        # An upscaler's outputs are ``scale`` times the input: crop its padding at that scale, not to (h, w).
        k = self.scale
        return L_out[..., : k * h, : k * w], ab[..., : k * h, : k * w]


def metadata(
    colorizer: DeployableColorizer, ckpt: Path | None, size: int | None, multiple: int
) -> dict[str, str]:
    """The contract and provenance stored with an exported model (string values, as ONNX wants)."""
    return {
        "colorlab_colorizer": f"{type(colorizer).__module__}.{type(colorizer).__qualname__}",
        "colorlab_checkpoint": str(ckpt or ""),
        "input": "L: float32 (B, 1, H, W), L / 50 - 1 in [-1, 1]",
        "outputs": "L_out: (B, 1, H, W) like the input; ab: (B, 2, H, W), ab / 110",
        "size": "dynamic" if size is None else str(size),
        "multiple": str(multiple),
    }


def example_input(size: int | None, multiple: int) -> torch.Tensor:
    """A seeded L batch to trace with (dynamic export: a small size that is not a multiple)."""
    side = size if size is not None else 3 * multiple + 5
    return torch.rand(2, 1, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1


def export_onnx(
    colorizer: DeployableColorizer, path: Path, size: int | None, ckpt: Path | None = None
) -> Path:
    """Write an ONNX graph (fixed ``size`` x ``size``, or dynamic H, W when ``size`` is None)."""
    import onnx

    wrapper = ExportableColorizer(colorizer)
    axes = {0: "batch"} if size is not None else {0: "batch", 2: "height", 3: "width"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        # The TorchScript-based exporter: the dynamo one needs the onnxscript package, which is not a dependency.
        torch.onnx.export(
            wrapper,
            (example_input(size, wrapper.multiple),),
            str(path),
            dynamo=False,
            input_names=["L"],
            output_names=["L_out", "ab"],
            dynamic_axes={"L": axes, "L_out": axes, "ab": axes},
            opset_version=ONNX_OPSET,
        )
    model = onnx.load(str(path))
    for key, value in metadata(colorizer, ckpt, size, wrapper.multiple).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def export_torchscript(
    colorizer: DeployableColorizer, path: Path, size: int | None, ckpt: Path | None = None
) -> Path:
    """Write a traced TorchScript module (padding and cropping follow the input's size at run time)."""
    wrapper = ExportableColorizer(colorizer)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, (example_input(size, wrapper.multiple),), check_trace=False)
    extra = {METADATA_FILE: json.dumps(metadata(colorizer, ckpt, size, wrapper.multiple))}
    torch.jit.save(traced, str(path), _extra_files=extra)
    return path


def run_exported_outputs(path: Path, fmt: ExportFormat, L: torch.Tensor) -> list[np.ndarray]:
    """Run an exported model (onnxruntime / torch.jit.load) on L; returns ``[L_out, ab]``."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(["L_out", "ab"], {"L": L.numpy()})
    with torch.no_grad():
        return [x.numpy() for x in torch.jit.load(str(path), map_location="cpu")(L)]


def run_exported(path: Path, fmt: ExportFormat, L: torch.Tensor) -> np.ndarray:
    """Run an exported model on L; returns its ``ab`` output."""
    return run_exported_outputs(path, fmt, L)[1]


def max_difference(colorizer: DeployableColorizer, path: Path, fmt: ExportFormat, L: torch.Tensor) -> float:
    """Largest |exported - PyTorch| of both outputs (L_out and ab, normalised units) on ``L``; a ValueError
    when their shapes differ (an upscaler's graph once returned a cropped quarter and was reported ok).

    PyTorch runs the same padded ``predict_lab`` as the graph (:class:`ExportableColorizer`, eager): at a size
    that is not a multiple, padding before ``predict_lab`` is not the same as the nets padding inside it for
    approaches that pool over the whole picture (ChromaGAN's global features, Zhang's area-mean logits).
    """
    with torch.no_grad():
        reference = ExportableColorizer(colorizer)(L)
    exported = run_exported_outputs(path, fmt, L)
    if any(a.shape != tuple(b.shape) for a, b in zip(exported, reference)):
        shapes = [tuple(a.shape) for a in exported], [tuple(b.shape) for b in reference]
        raise ValueError(f"the exported graph returns shapes {shapes[0]}, PyTorch {shapes[1]}: export refused")
    return max(float(np.abs(a - b.numpy()).max()) for a, b in zip(exported, reference))


def export(
    ckpt: Path, fmt: ExportFormat, size: int | None = 256, output: Path | None = None
) -> tuple[Path, float]:
    """Export ``ckpt`` and check it against PyTorch (a dynamic graph at two sizes: odd, and a multiple of the
    nets' factor); returns (path, max difference of L_out and ab). Never replaces a file: a taken name gets
    ``-1``, ``-2``... A model the exporter cannot express is a ValueError naming the format and the reason.
    """
    if size is not None and size < 1:
        raise ValueError(f"--size must be a positive number of pixels, got {size}")
    colorizer = load_colorizer(ckpt).float()
    path = free_name(output or ckpt.with_suffix(SUFFIXES[fmt]))
    writer = export_onnx if fmt == "onnx" else export_torchscript
    try:
        writer(colorizer, path, size, ckpt)
    except Exception as exc:  # the exporters raise many types, each with pages of detail
        path.unlink(missing_ok=True)
        raise ValueError(f"cannot export {type(colorizer).__name__} as {fmt}: {first_line(exc)}") from exc
    multiple = size_multiple(colorizer)
    odd, round_size = (4 * multiple + 3, 2 * multiple + 7), (2 * multiple, 3 * multiple)
    check_sizes = [(size, size)] if size is not None else [odd, round_size]
    difference = 0.0
    for seed, check_size in enumerate(check_sizes, start=1):
        L = torch.rand(1, 1, *check_size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        difference = max(difference, max_difference(colorizer, path, fmt, L))
    return path, difference


def free_name(path: Path) -> Path:
    """``path``, or ``stem-1.suffix``, ``stem-2.suffix``... when that name is taken."""
    candidate, i = path, 1
    while candidate.exists():
        candidate, i = path.with_name(f"{path.stem}-{i}{path.suffix}"), i + 1
    return candidate
