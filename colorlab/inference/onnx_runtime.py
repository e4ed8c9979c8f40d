"""ONNX Runtime as a colorize backend: an exported model (``python -m colorlab export``) behind the same
pipeline (size rule, full-resolution merge) as a checkpoint, with ONNX Runtime running the net instead of
PyTorch. :class:`OnnxColorizer` offers what the pipeline uses of an approach: ``predict_lab``, ``multiple``
and (no) parameters, so it drops in wherever a loaded checkpoint goes.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from colorlab.guidance import HintMap, refuse_guidance
from colorlab.inference.pipeline import DEFAULT_SIDE, Colorizer, training_side


class OnnxColorizer(nn.Module):
    """An exported colorlab model run by ONNX Runtime on the CPU.

    Args:
        path: the ``.onnx`` file (its metadata must carry colorlab's export contract).
        threads: ONNX Runtime intra-op threads (default: torch's current thread count, so the
            thread defaults of :mod:`colorlab.training.performance` and ``OMP_NUM_THREADS`` apply).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.path}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for a file that is not a model
            raise ValueError(f"{self.path} is not a loadable ONNX model ({exc})") from exc
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if "multiple" not in self.metadata:
            raise ValueError(f"{self.path} was not exported by colorlab (no 'multiple' in its metadata)")
        self.multiple = int(self.metadata["multiple"])
        size = self.metadata.get("size", "dynamic")
        # A fixed-size export sees every picture squashed to size x size; its ab is stretched back.
        self.fixed_size = None if size == "dynamic" else int(size)

    @property
    def checkpoint(self) -> str | None:
        """The checkpoint the model was exported from (its run folder gives the training size)."""
        return self.metadata.get("colorlab_checkpoint") or None

    def predict_lab(
        self, L: torch.Tensor, hints: HintMap | None = None, reference: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised L ``(B, 1, H, W)`` -> normalised (L_out, ab), float32 on the CPU (no guidance)."""
        refuse_guidance(self, hints, reference)
        h, w = L.shape[-2:]
        L_in = L.detach().float().cpu()
        if self.fixed_size is not None and (h, w) != (self.fixed_size, self.fixed_size):
            L_in = F.interpolate(L_in, size=(self.fixed_size,) * 2, mode="bilinear", antialias=True)
        L_out, ab = (
            torch.from_numpy(x) for x in self.session.run(["L_out", "ab"], {"L": L_in.contiguous().numpy()})
        )
        if tuple(ab.shape[-2:]) != (h, w):
            L_out, ab = (
                F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False) for x in (L_out, ab)
            )
        return L_out, ab

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """Normalised L -> normalised ab (the approaches' contract)."""
        return self.predict_lab(L)[1]


def onnx_colorizer(path: str | os.PathLike, side: int | None = None, name: str | None = None) -> Colorizer:
    """The pipeline's :class:`Colorizer` around an exported model; ``side`` overrides the training scale, which
    comes from the run folder of the model (exported next to its checkpoint) or of that checkpoint."""
    backend = OnnxColorizer(path)
    trained = training_side(path) or (training_side(backend.checkpoint) if backend.checkpoint else None)
    source = "given" if side else ("its training scale" if trained else "default")
    return Colorizer(backend, side or trained or DEFAULT_SIDE, name or Path(path).stem, Path(path), source)  # type: ignore[arg-type]
